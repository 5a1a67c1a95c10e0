"""digits-serve's PredictionServer answering in a thread of the test process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from digits.app.server import PredictionServer

JOIN_TIMEOUT_S = 10


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
