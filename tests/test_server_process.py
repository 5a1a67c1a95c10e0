"""digits-serve in its own process (tools/serving.py), with a tiny model, against hostile
clients: costly JPEGs refused or bounded while a drawing is answered, a full queue answered 503,
SIGTERM obeyed within a stated time whatever the clients do, and a log that a client cannot
fill. Every case is bounded in time and stops by itself."""

from __future__ import annotations

import http.client
import io
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from digits.app.server import DECODE_CPU_LIMIT_S, SHUTDOWN_TIMEOUT_S, WAITING_DECODES
from tools.serving import ServerProcess, exif_bomb_jpeg, progressive_jpeg, serving

TIMEOUT_S = 30
UPGRADES = {  # each closes the connection after the answer
    "websocket": b"Connection: Upgrade, close\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    "h2c": b"Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
}


@pytest.fixture(scope="module")
def quiet_server(model_file: Path) -> Iterator[ServerProcess]:
    with serving(model_file, quiet=True) as running:
        yield running


def drawing() -> bytes:
    image = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    ImageDraw.Draw(image).line([(90, 60), (190, 60), (120, 220)], fill=(31, 41, 51, 255), width=22)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def post(
    server: ServerProcess, body: bytes, content_type: str = "image/jpeg"
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT_S)
    try:
        connection.request("POST", "/api/predict", body, {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def upgrade(server: ServerProcess, headers: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT_S) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        return b"".join(iter(lambda: client.recv(65536), b""))


def log_growth(server: ServerProcess, send_requests) -> str:
    """What the server logs while `send_requests()` runs (and half a second after)."""
    before = len(server.log())
    send_requests()
    time.sleep(0.5)
    return server.log()[before:]


# --- work a client can queue -------------------------------------------------------------------


def test_a_jpeg_of_25000_scans_is_refused_at_once(quiet_server: ServerProcess) -> None:
    """1 MB; libjpeg would spend about a minute on it (the old server did, in a decode slot)."""
    started = time.monotonic()
    status, _, body = post(quiet_server, progressive_jpeg(4096, 25_000))
    assert time.monotonic() - started < 1
    assert status == 400
    assert b"a JPEG with more than 64 scans" in body


def test_costly_jpegs_are_bounded_queued_and_refused_past_the_queue_while_a_drawing_is_answered(
    quiet_server: ServerProcess,
) -> None:
    """22 of the costliest JPEGs allowed (64 refinement scans over 4096x4096, 0.6 s of CPU
    each) sent at once: 2 decoded at a time, 16 waiting, the rest 503 with Retry-After; a
    drawing sent meanwhile is answered within a second, and every JPEG within its bound."""
    hostile = progressive_jpeg(4096, 63, refine=True)
    answers: list[tuple[int, http.client.HTTPMessage, float]] = []

    def send() -> None:
        started = time.monotonic()
        status, headers, _ = post(quiet_server, hostile)
        answers.append((status, headers, time.monotonic() - started))

    senders = [threading.Thread(target=send) for _ in range(2 + WAITING_DECODES + 4)]
    for sender in senders:
        sender.start()
    time.sleep(0.5)
    started = time.monotonic()
    status, _, _ = post(quiet_server, drawing(), "image/png")
    drawing_s = time.monotonic() - started
    for sender in senders:
        sender.join(TIMEOUT_S)

    assert status == 200
    assert drawing_s < 1, f"the drawing waited {drawing_s:.1f} s"
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [400] * (2 + WAITING_DECODES) + [503] * 4, statuses  # 400: blank grey
    assert all(headers["Retry-After"] == "2" for status, headers, _ in answers if status == 503)
    slowest = max(seconds for status, _, seconds in answers if status == 400)
    fastest = min(seconds for status, _, seconds in answers if status == 400)
    print(  # pytest -s shows it
        f"drawing answered in {drawing_s:.2f} s; costly JPEGs answered in {fastest:.1f} s "
        f"to {slowest:.1f} s"
    )
    assert slowest < (2 + WAITING_DECODES) / 2 * DECODE_CPU_LIMIT_S


# --- stopping ----------------------------------------------------------------------------------


def test_sigterm_stops_the_server_within_the_stated_time_whatever_the_clients_do(
    model_file: Path,
) -> None:
    """A client that pipelines 1,200 GET /draw.js and reads nothing, one sending headers
    slowly, an idle one, and costly JPEGs decoding and waiting: SIGTERM ends the process within
    SHUTDOWN_TIMEOUT_S plus one decode (the old server was still running 40 s later)."""
    with serving(model_file) as server:
        address = (server.host, server.port)
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(address)
        stuck.sendall(b"GET /draw.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 1200)
        slow = socket.create_connection(address)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        idle = socket.create_connection(address)
        hostile = progressive_jpeg(4096, 63, refine=True)
        senders = [threading.Thread(target=post, args=(server, hostile)) for _ in range(6)]
        for sender in senders:
            sender.start()
        time.sleep(1)
        try:
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            bound = SHUTDOWN_TIMEOUT_S + DECODE_CPU_LIMIT_S
            server.process.wait(bound + 5)
            seconds = time.monotonic() - started
            log = server.log()
        finally:
            for client in (stuck, slow, idle):
                client.close()
            for sender in senders:
                sender.join(TIMEOUT_S)
    print(f"stopped {seconds:.1f} s after SIGTERM")  # pytest -s shows it
    assert seconds < bound, f"stopped after {seconds:.1f} s"
    assert "Traceback" not in log


# --- the log -------------------------------------------------------------------------------------


def test_under_quiet_no_request_writes_to_the_log(quiet_server: ServerProcess) -> None:
    """20 JPEGs whose EXIF makes Pillow warn 5,000 times each (the old server wrote 19.7 MB),
    20 websocket and 20 h2c upgrade requests, 20 malformed requests: not a byte."""
    bomb = exif_bomb_jpeg()

    def send_requests() -> None:
        for _ in range(20):
            assert post(quiet_server, bomb)[0] == 400  # blank: white
            for headers in UPGRADES.values():
                assert upgrade(quiet_server, headers).startswith(b"HTTP/1.1 200 ")
            malformed = upgrade(quiet_server, b"Connection: close\r\nBad header line\r\n")
            assert malformed.startswith(b"HTTP/1.1 400 ")

    assert log_growth(quiet_server, send_requests) == ""


def test_warnings_are_logged_once_per_kind(model_file: Path) -> None:
    """Without --quiet: a line per request, and each kind of warning once."""
    bomb = exif_bomb_jpeg()
    with serving(model_file, quiet=False) as server:

        def send_requests() -> None:
            for _ in range(20):
                post(server, bomb)
                for headers in UPGRADES.values():
                    upgrade(server, headers)

        logged = log_growth(server, send_requests)
    lines = logged.splitlines()
    assert sum("Tag data larger than file" in line for line in lines) == 1, logged[:2000]
    assert sum("Unsupported upgrade request." in line for line in lines) == 1
    assert sum('"POST /api/predict HTTP/1.1" 400' in line for line in lines) == 20
    assert len(logged) < 10_000, f"{len(logged):,} bytes for 60 requests"
