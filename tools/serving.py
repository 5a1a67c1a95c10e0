"""digits-serve in its own process on 127.0.0.1 (port 0), as a person starts it, a client of
its API, and hostile images made byte by byte: for tools/bench_serve.py (latency and memory),
tools/served_accuracy.py and the tests that need a real server process (the browser tests, the
hostile-client tests).

TensorFlow's start-up lines and the server's log go to a file: `ServerProcess.log()` reads it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import socket
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
from PIL import Image

from digits.app.artifacts import (
    APP_MODEL_FILE,
    GET_PIPELINE_MODEL,
    PIPELINE_MODEL,
    get_app_model,
)
from digits.app.server import MAX_BODY_BYTES

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


def abandon_posts(
    server: ServerProcess, body: bytes, content_type: str, clients: int, seconds: float = 60
) -> None:
    """`clients` connections that each send POST /api/predict with `body` and close the
    connection without waiting for the answer, all at once."""

    def post() -> None:
        head = (
            f"POST /api/predict HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        address = (server.host, server.port)
        with contextlib.suppress(OSError), socket.create_connection(address, seconds) as client:
            client.sendall(head + body)  # the server may refuse and close: OSError

    threads = [threading.Thread(target=post) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds)


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


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


class _BitWriter:
    """Huffman-coded bits, most significant first, with JPEG's 0xFF 0x00 byte stuffing."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.byte = self.count = 0

    def put(self, value: int, bits: int) -> None:
        for shift in range(bits - 1, -1, -1):
            self.byte = (self.byte << 1) | (value >> shift) & 1
            self.count += 1
            if self.count == 8:
                self.out += b"\xff\x00" if self.byte == 0xFF else bytes([self.byte])
                self.byte = self.count = 0

    def end(self) -> bytes:
        if self.count:
            self.put((1 << (8 - self.count)) - 1, 8 - self.count)  # pad with ones
        return bytes(self.out)


def _end_of_band_runs(blocks: int) -> bytes:
    """A progressive AC scan in which no block has a coefficient in the band: end-of-band runs
    (symbol 16 * r, the 4-bit code r, then r bits: runs of 2**r to 2**(r + 1) - 1 blocks)."""
    bits = _BitWriter()
    while blocks:
        r = min(14, blocks.bit_length() - 1)
        run = min(blocks, (1 << (r + 1)) - 1)
        bits.put(r, 4)
        bits.put(run - (1 << r), r)
        blocks -= run
    return bits.end()


def progressive_jpeg(side: int = 4096, scans: int = 30_000, refine: bool = False) -> bytes:
    """A side x side grey progressive JPEG: a DC scan, then `scans` AC scans that each visit
    every 8x8 block and say "nothing here" in a few bytes. libjpeg pays per block and scan:
    30,000 tiny scans (coefficient 1 each, about 1 MB) cost about a minute of CPU; refinement
    scans over coefficients 1-63 (`refine`) about 9 ms each at 4096x4096. Decodes to grey."""
    blocks = (-(-side // 8)) ** 2
    dc = _BitWriter()
    for _ in range(blocks):
        dc.put(0, 1)  # DC difference category 0 (the one-bit code 0)
    ac_scan = _end_of_band_runs(blocks)
    band = bytes([1, 63, 0x10]) if refine else bytes([1, 1, 0x00])  # Ss, Se, Ah/Al
    return b"".join(
        [
            b"\xff\xd8",
            jpeg_segment(0xDB, b"\x00" + b"\x01" * 64),  # quantisation table 0: all ones
            jpeg_segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + b"\x01\x11\x00"),
            jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00"),  # DC: symbol 0
            # AC: symbols 16 * r (end-of-band runs), 15 codes of 4 bits
            jpeg_segment(0xC4, b"\x10" + bytes([0, 0, 0, 15, *[0] * 12, *range(0, 240, 16)])),
            jpeg_segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + dc.end(),
            (jpeg_segment(0xDA, b"\x01\x01\x00" + band) + ac_scan) * scans,
            b"\xff\xd9",
        ]
    )


def exif_bomb_jpeg(tags: int = 5000) -> bytes:
    """A small white JPEG whose EXIF (about 60 KB) holds `tags` tags each claiming 4,000 bytes
    of data: Pillow warns once per tag ("Tag data larger than file. Skipping tag N"), about
    1 MB of text per image, when it reads the EXIF orientation."""
    entries = b"".join(struct.pack("<HHII", 0x8000 + n, 4, 1000, 8) for n in range(tags))
    tiff = b"II*\x00" + struct.pack("<IH", 8, tags) + entries + b"\x00" * 4
    image = io.BytesIO()
    Image.new("L", (64, 64), 255).save(image, format="JPEG")
    data = image.getvalue()
    return data[:2] + jpeg_segment(0xE1, b"Exif\x00\x00" + tiff) + data[2:]


def largest_png() -> bytes:
    """The largest body the server takes (MAX_BODY_BYTES): huge_png() padded with a private
    chunk that Pillow skips."""
    png = huge_png()
    end = png_chunk(b"IEND", b"")
    padding = MAX_BODY_BYTES - len(png) - 12  # a chunk's length, type and CRC: 12 bytes
    return png[: -len(end)] + png_chunk(b"pdNg", b"\0" * padding) + end


HOW_TO_GET = {
    APP_MODEL_FILE: get_app_model(),
    PIPELINE_MODEL.path: GET_PIPELINE_MODEL,
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
