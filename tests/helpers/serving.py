"""A recogniser server in its own process on 127.0.0.1 (port 0), as a person starts it: for the
browser tests, the hostile-client tests and tools/bench_serve.py (which compares the two).

    digits-serve   the application's server (FastAPI on uvicorn, digits/app/server.py)
    stdlib         the first server (standard library, tools/stdlib_server.py), for comparison

TensorFlow's start-up lines and the server's log go to a file: `ServerProcess.log()` reads it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).parents[2]
SERVER_COMMANDS = {
    "digits-serve": [
        sys.executable,
        "-c",
        "import sys; from digits.app.cli import serve_main; sys.exit(serve_main())",
    ],
    "stdlib": [sys.executable, str(PROJECT / "tools" / "stdlib_server.py")],
}


@dataclass
class ServerProcess:
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path
    said: str = ""  # what it printed on stdout before its URL

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def memory_mb(self) -> dict[str, float]:
        """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}


@contextlib.contextmanager
def serving(
    model: Path | None,
    server: str = "digits-serve",
    quiet: bool = True,
    cwd: Path | None = None,
) -> Iterator[ServerProcess]:
    """`server [--model MODEL] --port 0 [--quiet]`, run in `cwd`, for the duration of the
    block (without a model, the server's default)."""
    model_args = [] if model is None else ["--model", str(model)]
    argv = [*SERVER_COMMANDS[server], *model_args, "--port", "0"]
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "server.log"
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [*argv, "--quiet"] if quiet else argv,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=cwd,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            # digits-serve says which model it loaded ("model: ..."), then where it listens:
            # "Serving the drawing page on http://HOST:PORT/ ..."; the old server only the latter.
            said = []
            while (line := process.stdout.readline()) and "http://" not in line:
                said.append(line)
            if "http://" not in line:
                raise RuntimeError(
                    f"the server did not start:\n{''.join(said)}{log_path.read_text()}"
                )
            host, port = line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)
            yield ServerProcess(host, int(port), process, log_path, "".join(said))
        finally:
            process.terminate()
            process.wait(timeout=30)
            process.stdout.close()


def post_in_parallel(
    server: ServerProcess, body: bytes, content_type: str, clients: int
) -> list[tuple[int, bytes]]:
    """POST /api/predict `body` from `clients` connections at once: (status, body) of each."""
    answers: list[tuple[int, bytes]] = []

    def post() -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
        try:
            connection.request("POST", "/api/predict", body, {"Content-Type": content_type})
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return answers


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(side: int = 4096) -> bytes:
    """side x side 16-bit RGBA, all white: about 137 KB compressed, 128 MB as 16-bit pixels."""
    row = b"\x00" + b"\xff" * 8 * side  # filter byte, then 4 channels x 2 bytes per pixel
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)  # 16 bits, RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(row * side, 9))
        + png_chunk(b"IEND", b"")
    )
