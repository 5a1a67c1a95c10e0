"""digits.app.logs: a warning logged once per kind, whatever a client makes the libraries say.
The server's log under hostile requests is tested on the real process in
tests/test_server_process.py."""

from __future__ import annotations

import logging
import warnings

import pytest

from digits.app.images import decode_image
from digits.app.logs import PILLOW, OncePerKind, OncePerMessage
from tools.serving import exif_bomb_jpeg


def test_once_per_kind_logs_the_first_warning_from_each_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    show = OncePerKind()
    with caplog.at_level(logging.WARNING, logger="digits.app"):
        for tag in range(100):
            show(UserWarning(f"Skipping tag {tag}"), UserWarning, "plugin.py", 10)
        show(UserWarning("another line"), UserWarning, "plugin.py", 11)
        show(DeprecationWarning("another kind"), DeprecationWarning, "plugin.py", 10)

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert messages[0] == (
        "UserWarning: Skipping tag 0 (plugin.py:10; logged once, later ones from there are not)"
    )


def test_pillows_5000_exif_warnings_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    bomb = exif_bomb_jpeg()
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="digits.app"):
        warnings.filterwarnings("always", module=PILLOW)
        warnings.showwarning = OncePerKind()  # catch_warnings puts the original back
        for number in range(3):
            decode_image(bomb, f"bomb-{number}.jpg")

    assert len(caplog.records) == 1
    assert "Tag data larger than file" in caplog.records[0].getMessage()


def test_once_per_message_lets_each_message_through_once_and_errors_always() -> None:
    once = OncePerMessage()

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, __file__, 1, message, None, None)

    upgrade = "Unsupported upgrade request."
    passed = [once.filter(record(logging.WARNING, upgrade)) for _ in range(20)]
    assert passed == [True] + [False] * 19
    assert once.filter(record(logging.WARNING, "Invalid HTTP request received."))
    bug = "Exception in ASGI application"
    assert all(once.filter(record(logging.ERROR, bug)) for _ in range(3))
