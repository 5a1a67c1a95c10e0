"""uvicorn's h11 protocol with the deadlines and limits it has no setting for.

uvicorn closes a connection idle between requests (timeout_keep_alive), but not one that opens
and never sends anything; it waits for ever for a request sent slowly (a header every few
seconds, a body shorter than its Content-Length) and for a client to read its answers (one that
pipelines requests and never reads holds its connection, and a graceful shutdown, for ever);
and past limit_concurrency open connections it answers every new request 503, however many of
those connections are idle. DeadlineProtocol adds the three deadlines, closes the longest idle
connections as the limit nears, and answers malformed HTTP with a JSON 400. It subclasses
H11Protocol, which uvicorn does not document as an extension point: pyproject.toml pins uvicorn
to the minor version it was checked against, and tests/test_deadlines.py fails loudly when what
the subclass relies on changes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# The uvicorn minor version DeadlineProtocol was checked against (pyproject.toml allows no other).
CHECKED_UVICORN = "0.54"
# The parts of H11Protocol this relies on; tests/test_server.py checks each against the
# installed uvicorn. Methods overridden, with their parameters:
OVERRIDDEN = {
    "connection_made": ("self", "transport"),
    "data_received": ("self", "data"),
    "handle_events": ("self",),
    "connection_lost": ("self", "exc"),
    "send_400_response": ("self", "msg"),
    "pause_writing": ("self",),
    "resume_writing": ("self",),
    "shutdown": ("self",),
}
# The keep-alive timer started in connection_made is uvicorn's own: data_received cancels it
# (_unset_keepalive_if_required), timeout_keep_alive_handler closes the connection (also an
# idle one closed to make room). `connections` is the set of open connections that uvicorn
# shares between them, `flow` its flow control (pause_writing/resume_writing).
CALLED = ("timeout_keep_alive_handler", "_unset_keepalive_if_required")
ATTRIBUTES = (
    "loop",
    "conn",
    "cycle",
    "transport",
    "flow",
    "connections",
    "limit_concurrency",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
)
CYCLE_ATTRIBUTES = ("response_started", "response_complete")  # of its RequestResponseCycle

# When a new connection brings the open ones to SHED_AT of uvicorn's limit_concurrency, the
# longest idle are closed until SHED_TO of it are open: one scan of the connections per tenth
# of the limit, and room for new requests below the limit, past which uvicorn answers 503.
SHED_AT = 0.9
SHED_TO = 0.8


def _raw_json_response(status: HTTPStatus, message: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for the protocol level."""
    body = json.dumps({"error": message}).encode()
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines it lacks: a connection that opens and sends
    nothing is closed after uvicorn's timeout_keep_alive (which uvicorn starts only after a
    first answer); a request must be received whole within `request_timeout_s` of its first
    byte, or it gets 408 and the connection is closed; an answer the client does not take is
    dropped (and the connection with it) when the socket has stayed full for `write_timeout_s`.
    Near uvicorn's limit_concurrency open connections, the longest idle ones are closed. When
    the server stops, a connection stuck writing is dropped at once, and so is one that gets
    stuck afterwards. Malformed HTTP gets a JSON 400."""

    def __init__(self, *args: Any, request_timeout_s: float, write_timeout_s: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.request_timeout_s = request_timeout_s
        self.write_timeout_s = write_timeout_s
        self.request_deadline: asyncio.TimerHandle | None = None
        self.write_deadline: asyncio.TimerHandle | None = None
        self.last_active = 0.0  # loop time of the connection or its last bytes received
        self.stopping = False  # the server is shutting down

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.last_active = self.loop.time()
        # Headers and body go out in two writes: without TCP_NODELAY (which the accepted
        # sockets here lack) each answer waits 40 ms for the client's delayed ACK.
        connection = transport.get_extra_info("socket")
        if connection is not None:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) >= limit * SHED_AT:
            self.close_idle_connections(int(limit * SHED_TO))

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        if self.request_deadline is None:
            self.request_deadline = self.loop.call_later(
                self.request_timeout_s, self.request_timed_out
            )
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):  # received whole
            self._cancel_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_write_deadline()
        super().connection_lost(exc)

    def _cancel_deadline(self) -> None:
        if self.request_deadline is not None:
            self.request_deadline.cancel()
            self.request_deadline = None

    def _cancel_write_deadline(self) -> None:
        if self.write_deadline is not None:
            self.write_deadline.cancel()
            self.write_deadline = None

    def request_timed_out(self) -> None:
        self.request_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            message = f"the request was not received within {self.request_timeout_s:g} s"
            self.transport.write(_raw_json_response(HTTPStatus.REQUEST_TIMEOUT, message))
        self.transport.close()

    def pause_writing(self) -> None:
        """The transport's buffer is full (the client reads slower than we write, or not at
        all): it must drain within write_timeout_s."""
        super().pause_writing()
        if self.stopping:  # no time left for a client that does not read
            self.transport.abort()
        elif self.write_deadline is None:
            self.write_deadline = self.loop.call_later(self.write_timeout_s, self.write_timed_out)

    def resume_writing(self) -> None:
        self._cancel_write_deadline()
        super().resume_writing()

    def write_timed_out(self) -> None:
        self.write_deadline = None
        self.transport.abort()  # close() would wait for the buffer to drain

    def is_idle(self) -> bool:
        """Open, and no request under way: none received in part, none being answered."""
        return (
            not self.transport.is_closing()
            and self.request_deadline is None
            and (self.cycle is None or self.cycle.response_complete)
        )

    def close_idle_connections(self, keep: int) -> None:
        """Close the longest idle connections (not this new one) until `keep` are open."""
        still_open = [other for other in self.connections if not other.transport.is_closing()]
        idle = [other for other in still_open if other is not self and other.is_idle()]
        idle.sort(key=lambda other: other.last_active)
        for other in idle[: len(still_open) - keep]:
            other.timeout_keep_alive_handler()

    def shutdown(self) -> None:
        self.stopping = True
        if self.flow is not None and self.flow.write_paused:  # stuck: nobody takes the answer
            self.transport.abort()
        else:
            super().shutdown()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(
            _raw_json_response(HTTPStatus.BAD_REQUEST, "invalid HTTP request: " + msg)
        )
        self.transport.close()
