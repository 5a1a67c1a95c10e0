"""digits-serve's PredictionServer answering in a thread of the test process, and a request
to it."""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator

from digits.app.server import PredictionServer

JOIN_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 10


@contextlib.contextmanager
def running(server: PredictionServer) -> Iterator[PredictionServer]:
    """The server answering in a thread for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(JOIN_TIMEOUT_S)


def request(
    server: PredictionServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a connection of its own: status, headers and body."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()
