"""A recogniser server in its own process on 127.0.0.1 (port 0), as a person starts it: for the
browser tests, the hostile-client tests and tools/bench_serve.py (which compares the two).

    digits-serve   the application's server (FastAPI on uvicorn, digits/app/server.py)
    stdlib         the first server (standard library, tools/stdlib_server.py), for comparison

TensorFlow's start-up lines and the server's log go to a file: `ServerProcess.log()` reads it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).parents[1]
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
    model: Path, server: str = "digits-serve", quiet: bool = True
) -> Iterator[ServerProcess]:
    """`server --model MODEL --port 0 [--quiet]` running for the duration of the block."""
    argv = [*SERVER_COMMANDS[server], "--model", str(model), "--port", "0"]
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "server.log"
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [*argv, "--quiet"] if quiet else argv,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            line = process.stdout.readline()  # "Serving the drawing page on http://HOST:PORT/ .."
            if "http://" not in line:
                raise RuntimeError(f"the server did not start:\n{log_path.read_text()}")
            host, port = line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)
            yield ServerProcess(host, int(port), process, log_path)
        finally:
            process.terminate()
            process.wait(timeout=30)
            process.stdout.close()
