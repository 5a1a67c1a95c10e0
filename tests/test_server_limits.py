"""digits.app.server's limits, on the real server on 127.0.0.1 (port 0, in a thread) with a
predict function that can hold its thread: what a client can queue (503 with Retry-After when
the queues are full, nothing decoded for a client that left, a drawing answered while large
images wait), the write deadline, the shutdown, idle connections closed to make room, the Host
header and framing. Each case bounded in time; the server's own process is
tests/test_server_process.py."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import struct
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from helpers.threaded_server import running
from PIL import Image, ImageDraw

from digits.app.server import LOOPBACK_HOSTS, Limits, PredictionServer

TIMEOUT_S = 10


class Gate:
    """A predict function that holds the first `held` calls until opened, and counts calls."""

    def __init__(self, held: int = 1) -> None:
        self.held = held
        self.opened = threading.Event()
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
            hold = self.calls <= self.held
        if hold:
            self.opened.wait(TIMEOUT_S)
        return np.full((len(images), 10), 0.1, np.float32)


def serve(predict: Callable | None = None, **limits: float) -> PredictionServer:
    """The server with `predict` (default: one that never holds) and these Limits."""
    return PredictionServer(
        predict or Gate(0), "127.0.0.1", 0, log_requests=False, limits=Limits(**limits)
    )


def drawing(side: int = 280) -> bytes:
    """A digit drawn like the page does, dark on white, as a PNG `side` pixels square."""
    image = Image.new("L", (side, side), 255)
    scale = side / 280
    ImageDraw.Draw(image).line(
        [(90 * scale, 60 * scale), (190 * scale, 60 * scale), (120 * scale, 220 * scale)],
        fill=30,
        width=int(22 * scale),
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


LARGE = drawing(1200)  # 1.4 megapixels: the large lane
SMALL = drawing()


def post(
    server: PredictionServer, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, dict]:
    host, port = server.server_address
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        connection.request(
            "POST", "/api/predict", body, {"Content-Type": "image/png", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, response.headers, json.loads(response.read())
    finally:
        connection.close()


def get(
    server: PredictionServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    host, port = server.server_address
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def in_background(server: PredictionServer, body: bytes, count: int) -> tuple[list, list]:
    """`count` POSTs of `body`, each in its own thread; (threads, statuses) to join and read."""
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(post(server, body)[0]))
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads, statuses


def wait_until(condition: Callable[[], bool], seconds: float = TIMEOUT_S) -> float:
    """Poll `condition` until true; the seconds it took (fails the test past `seconds`)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "not within the time allowed"
        time.sleep(0.01)
    return time.monotonic() - started


# --- what a client can queue ---------------------------------------------------------------------


def test_a_full_decode_queue_answers_503_with_retry_after_and_drawings_still_pass() -> None:
    """One large image decoding (held), two waiting: the fourth gets 503 at once; a drawing,
    in the small images' lane, is answered meanwhile; then the three are answered."""
    gate = Gate(held=1)
    with running(serve(gate, large_decodes=1, waiting_decodes=2)) as server:
        lane = server.uvicorn.workload.large
        threads, statuses = in_background(server, LARGE, 3)
        wait_until(lambda: lane.held == 3 and gate.calls == 1)

        started = time.monotonic()
        status, headers, answer = post(server, LARGE)
        assert time.monotonic() - started < 1
        assert status == 503
        assert headers["Retry-After"] == "2"
        assert answer == {
            "error": "3 large images are being decoded or waiting, the limit; try again in 2 s"
        }

        started = time.monotonic()
        assert post(server, SMALL)[0] == 200
        assert time.monotonic() - started < 1

        gate.opened.set()
        for thread in threads:
            thread.join(TIMEOUT_S)
        assert statuses == [200, 200, 200]
        assert lane.held == 0


def test_images_whose_clients_left_are_not_decoded() -> None:
    """Five clients send a large image behind a held one and reset their connections: the five
    leave the queue at once, and only the held image reaches the model."""
    gate = Gate(held=1)
    with running(serve(gate, large_decodes=1, waiting_decodes=8)) as server:
        lane = server.uvicorn.workload.large
        threads, statuses = in_background(server, LARGE, 1)
        wait_until(lambda: lane.held == 1 and gate.calls == 1)

        head = (
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: %d\r\n\r\n" % len(LARGE)
        )
        leavers = [socket.create_connection(server.server_address) for _ in range(5)]
        for leaver in leavers:
            leaver.sendall(head + LARGE)
        wait_until(lambda: lane.held == 6)
        for leaver in leavers:
            leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            leaver.close()
        assert wait_until(lambda: lane.held == 1) < 1

        gate.opened.set()
        threads[0].join(TIMEOUT_S)
        assert statuses == [200]
        assert gate.calls == 1
        assert server.uvicorn.workload.bodies.held_bytes == 0


def test_bodies_past_the_budget_are_refused_before_they_are_read() -> None:
    gate = Gate(held=1)
    budget = 2 * len(LARGE)
    with running(serve(gate, body_budget_bytes=budget, large_decodes=1)) as server:
        bodies = server.uvicorn.workload.bodies
        threads, statuses = in_background(server, LARGE, 2)  # one held, one waiting
        wait_until(lambda: bodies.held_bytes == budget and gate.calls == 1)

        status, headers, answer = post(server, SMALL)
        assert status == 503
        assert headers["Retry-After"] == "2"
        assert headers["Connection"] == "close"
        assert answer == {
            "error": f"the server holds {budget:,} bytes of request bodies, its limit; "
            "try again in 2 s"
        }

        gate.opened.set()
        for thread in threads:
            thread.join(TIMEOUT_S)
        assert statuses == [200, 200]
        assert post(server, SMALL)[0] == 200


def test_waiting_images_get_503_when_the_server_stops() -> None:
    gate = Gate(held=1)
    with running(serve(gate, large_decodes=1, shutdown_timeout_s=5)) as server:
        lane = server.uvicorn.workload.large
        threads, statuses = in_background(server, LARGE, 3)
        wait_until(lambda: lane.held == 3 and gate.calls == 1)
        stopper = threading.Thread(target=server.shutdown)
        stopper.start()
        wait_until(lambda: sorted(statuses) == [503, 503])
        gate.opened.set()
        for thread in [*threads, stopper]:
            thread.join(TIMEOUT_S)
        assert sorted(statuses) == [200, 503, 503]


# --- connections ---------------------------------------------------------------------------------

PIPELINED = b"GET /draw.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 1200


def stuck_reader(server: PredictionServer) -> socket.socket:
    """A client that pipelines 1,200 GET /draw.js (8 MB of answers) and reads none of them."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(server.server_address)
    client.settimeout(TIMEOUT_S)
    client.sendall(PIPELINED)
    return client


def test_a_client_that_does_not_read_its_answers_is_dropped_after_the_write_timeout() -> None:
    with running(serve(write_timeout_s=1)) as server:
        connections = server.uvicorn.server_state.connections
        client = stuck_reader(server)
        try:
            wait_until(lambda: any(c.flow.write_paused for c in connections))
            assert wait_until(lambda: not connections) < 1.5
            assert get(server, "/")[0] == 200
        finally:
            client.close()


def test_the_server_stops_within_its_shutdown_timeout_whatever_the_clients_do() -> None:
    """A client stuck not reading, one sending a request slowly, one idle, and an image being
    decoded for 0.5 s: the stuck client is dropped at once, and the server stops when the image
    is answered, well within the graceful timeout (the old server waited for ever)."""
    gate = Gate(held=1)
    server = serve(gate, write_timeout_s=60, request_timeout_s=60, shutdown_timeout_s=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clients = []
    try:
        workers, statuses = in_background(server, LARGE, 1)
        connections = server.uvicorn.server_state.connections
        clients.append(stuck_reader(server))
        wait_until(lambda: any(c.flow.write_paused for c in connections))
        clients.append(socket.create_connection(server.server_address))
        clients[-1].sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
        clients.append(socket.create_connection(server.server_address))
        wait_until(lambda: server.uvicorn.workload.large.held == 1 and gate.calls == 1)

        started = time.monotonic()
        threading.Timer(0.5, gate.opened.set).start()  # the decode ends within its bound
        server.shutdown(timeout_s=TIMEOUT_S)
        assert not thread.is_alive()
        assert time.monotonic() - started < 1.5
        workers[0].join(TIMEOUT_S)
        assert statuses == [200]
    finally:
        gate.opened.set()
        server.server_close()
        for client in clients:
            client.close()
        thread.join(TIMEOUT_S)


def test_idle_connections_are_closed_to_make_room_for_new_requests() -> None:
    """A client keeps opening connections and sends nothing on them (200 against a limit of
    40); every one of 30 normal requests is answered (before, past 40 connections, 503)."""
    with running(serve(max_connections=40)) as server:
        idle: list[socket.socket] = []
        done = threading.Event()

        def open_idle_connections() -> None:
            while not done.is_set() and len(idle) < 200:
                with contextlib.suppress(OSError):
                    idle.append(socket.create_connection(server.server_address))
                time.sleep(0.002)

        opener = threading.Thread(target=open_idle_connections)
        opener.start()
        try:
            wait_until(lambda: len(idle) >= 60)
            statuses = [get(server, "/style.css")[0] for _ in range(30)]
            assert len(server.uvicorn.server_state.connections) < 40
        finally:
            done.set()
            opener.join(TIMEOUT_S)
            for connection in idle:
                connection.close()
        assert statuses == [200] * 30


# --- Host header and framing -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST"])
def test_the_loopback_names_are_answered(host: str) -> None:
    with running(serve()) as server:
        port = server.server_address[1]
        assert get(server, "/api/model", {"Host": f"{host}:{port}"})[0] == 404  # no model_info
        assert get(server, "/", {"Host": host})[0] == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example"])
def test_other_host_names_get_400(host: str) -> None:
    """A page on another site that reaches the server through DNS rebinding sends its own
    name: 400, whatever the path."""
    with running(serve()) as server:
        for path in ("/", "/api/model", "/docs", "/nothing"):
            status, headers, body = get(server, path, {"Host": host})
            assert status == 400
            assert headers["Content-Type"] == "application/json"
            assert json.loads(body) == {
                "error": f"Host {host!r}: this server answers to "
                f"{', '.join(LOOPBACK_HOSTS)} (digits-serve --allowed-hosts)"
            }
        assert post(server, SMALL, {"Host": host})[0] == 400


def test_the_names_answered_can_be_chosen() -> None:
    server = PredictionServer(Gate(0), "127.0.0.1", 0, False, allowed_hosts=["digits.lan"])
    with running(server):
        assert get(server, "/", {"Host": "digits.lan:8000"})[0] == 200
        assert get(server, "/", {"Host": "localhost"})[0] == 400


def test_a_request_without_a_host_gets_400() -> None:
    with running(serve()) as server:
        with socket.create_connection(server.server_address, timeout=TIMEOUT_S) as client:
            client.sendall(b"GET / HTTP/1.0\r\n\r\n")
            response = b"".join(iter(lambda: client.recv(65536), b""))
        assert response.startswith(b"HTTP/1.1 400 ")
        assert b"no Host header: this server answers to localhost" in response


@pytest.mark.parametrize(
    "path", ["/", "/draw.js", "/docs", "/openapi.json", "/api/predict", "/nothing"]
)
def test_no_answer_may_be_framed(path: str) -> None:
    with running(serve()) as server:
        _, headers, _ = get(server, path)
        assert headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert len(headers.get_all("Content-Security-Policy")) == 1


def test_an_image_cut_short_by_the_shutdown_gets_a_json_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A decode still running when the graceful timeout ends: its client gets 503 (uvicorn
    alone would log the cancelled request's traceback and answer a plain-text 500)."""
    gate = Gate(held=1)
    server = serve(gate, shutdown_timeout_s=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        workers, statuses = in_background(server, LARGE, 1)
        wait_until(lambda: server.uvicorn.workload.large.held == 1 and gate.calls == 1)
        started = time.monotonic()
        server.shutdown(timeout_s=TIMEOUT_S)
        assert time.monotonic() - started < 1 + 1
        workers[0].join(TIMEOUT_S)
        assert statuses == [503]
        assert not any(record.exc_info for record in caplog.records)
    finally:
        gate.opened.set()
        server.server_close()
        thread.join(TIMEOUT_S)
