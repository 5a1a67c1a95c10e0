"""digits-serve in its own process on 127.0.0.1 (port 0), as a person starts it, and a client
of its API: for tools/bench_serve.py (latency and memory), tools/served_accuracy.py and the
tests that need a real server process (the browser tests, the hostile-client tests).

TensorFlow's start-up lines and the server's log go to a file: `ServerProcess.log()` reads it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
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

import numpy as np

from digits.app.artifacts import APP_MODEL, PIPELINE_MODEL

# digits-serve with this interpreter (the console script may not be on PATH).
DIGITS_SERVE = [
    sys.executable,
    "-c",
    "import sys; from digits.app.cli import serve_main; sys.exit(serve_main())",
]


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
    model: Path | None, quiet: bool = True, cwd: Path | None = None
) -> Iterator[ServerProcess]:
    """`digits-serve [--model MODEL] --port 0 [--quiet]`, run in `cwd`, for the duration of the
    block (without a model, the server's default)."""
    model_args = [] if model is None else ["--model", str(model)]
    argv = [*DIGITS_SERVE, *model_args, "--port", "0"]
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
            # "Serving the drawing page on http://HOST:PORT/ ...".
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


HOW_TO_GET = {
    APP_MODEL.path: "`make app-model` or `dvc pull train-app`",
    PIPELINE_MODEL.path: "`make repro` or `dvc pull`",
}


def require_models(paths: list[Path]) -> None:
    """SystemExit naming the first of `paths` that is not a file, and how to get it."""
    for path in paths:
        if not path.is_file():
            how = HOW_TO_GET.get(path, "no such file")
            raise SystemExit(f"error: {path} does not exist: {how}")


class Refused(RuntimeError):
    """An answer other than 200 from the API: its status and JSON error message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Client:
    """One keep-alive connection to the server's API, like a browser tab's."""

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=30)

    def predict(self, body: bytes, content_type: str) -> dict:
        """POST /api/predict: the answer's JSON; Refused for any status but 200."""
        self.connection.request(
            "POST", "/api/predict", body=body, headers={"Content-Type": content_type}
        )
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise Refused(response.status, answer.get("error", str(answer)))
        return answer

    def close(self) -> None:
        self.connection.close()


def pixels_json(image: np.ndarray) -> bytes:
    """(28, 28) float in [0, 1] -> the API's JSON body (3 decimals, as a client would send)."""
    return json.dumps({"pixels": np.round(image, 3).tolist()}).encode()
