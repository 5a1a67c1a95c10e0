"""digits-serve in its own process (tests/serving.py) under a burst of huge PNGs: its memory stays
bounded and is given back. Read from /proc/PID/status: VmHWM (peak) and VmRSS (now)."""

from __future__ import annotations

import http.client
import struct
import threading
import time
import zlib
from collections.abc import Iterator

import pytest
from serving import ServerProcess, serving

from digits.app.images import MAX_IMAGE_SIDE
from digits.model import save_model

pytestmark = pytest.mark.slow

PARALLEL_POSTS = 32
PEAK_LIMIT_MB = 1500  # what the README promises for this test, baseline included
PEAK_GROWTH_LIMIT_MB = 400  # 2 decodes at a time of about 130 MB each, and some slack
KEPT_LIMIT_MB = 100  # still held once the burst is over


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(side: int = MAX_IMAGE_SIDE) -> bytes:
    """side x side 16-bit RGBA, all white: about 137 KB compressed, 128 MB as 16-bit pixels."""
    row = b"\x00" + b"\xff" * 8 * side  # filter byte, then 4 channels x 2 bytes per pixel
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)  # 16 bits, RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(row * side, 9))
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Iterator[ServerProcess]:
    model_path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(tiny_model, model_path)
    with serving(model_path) as running:
        yield running


def test_parallel_huge_pngs_use_bounded_memory_and_give_it_back(server: ServerProcess) -> None:
    png = huge_png()
    assert 100_000 < len(png) < 200_000
    before = server.memory_mb()
    answers: list[tuple[int, bytes]] = []

    def post() -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
        try:
            connection.request("POST", "/api/predict", png, {"Content-Type": "image/png"})
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        finally:
            connection.close()

    clients = [threading.Thread(target=post) for _ in range(PARALLEL_POSTS)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(180)
    time.sleep(1)  # the last decodes finish and are freed
    after = server.memory_mb()

    assert len(answers) == PARALLEL_POSTS
    assert all(status == 400 and b"blank image" in body for status, body in answers), answers[0]
    assert after["VmHWM"] < PEAK_LIMIT_MB, (before, after)
    assert after["VmHWM"] - before["VmRSS"] < PEAK_GROWTH_LIMIT_MB, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < KEPT_LIMIT_MB, (before, after)
    assert "Traceback" not in server.log()
