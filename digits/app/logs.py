"""What digits-serve logs: a line per request unless --quiet, and each kind of warning once;
as text ("INFO: 127.0.0.1:5000 - "GET / HTTP/1.1" 200") or, with --log-format json, one JSON
object per line (JsonLines) for a log collector.

A client decides what a request makes the libraries warn about: a JPEG whose EXIF holds 5,000
bad tags makes Pillow warn 5,000 times (1 MB of text), an Upgrade header makes uvicorn log two
warnings. Logged per request, a client could fill the disk; so a warning is logged the first
time its kind is seen (its category and the line that warns, whatever the message), and under
--quiet not at all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from typing import TextIO

LOGGER = logging.getLogger("digits.app")
# uvicorn's logger for protocol warnings ("Invalid HTTP request received.", "Unsupported
# upgrade request.", "Exceeded concurrency limit.") and for errors in the application.
UVICORN_ERRORS = logging.getLogger("uvicorn.error")
PILLOW = r"PIL(\.|$)"  # the modules Pillow warns from


class OncePerMessage(logging.Filter):
    """Lets through the first record of each message (before its arguments are filled in),
    at WARNING and below; errors always."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True
        with self.lock:
            if record.msg in self.seen:
                return False
            self.seen.add(str(record.msg))
        record.msg = f"{record.msg} (logged once; later ones are not)"
        return True


class OncePerKind:
    """A `warnings.showwarning` that logs the first warning from each line of code to LOGGER
    and drops the rest (however their messages differ)."""

    def __init__(self) -> None:
        self.seen: set[tuple[type[Warning], str, int]] = set()
        self.lock = threading.Lock()

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        with self.lock:
            if (category, filename, lineno) in self.seen:
                return
            self.seen.add((category, filename, lineno))
        LOGGER.warning(
            "%s: %s (%s:%d; logged once, later ones from there are not)",
            category.__name__,
            message,
            filename,
            lineno,
        )


LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s: %(message)s"


class JsonLines(logging.Formatter):
    """A record as one line of JSON: {"time", "level", "logger", "message"}; uvicorn's access
    lines also as fields, {"client", "method", "path", "http_version", "status"}. Whatever a
    client sent (the path) is escaped by json.dumps: one record stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            client, method, path, http_version, status = record.args
            entry |= {
                "client": client,
                "method": method,
                "path": path,
                "http_version": http_version,
                "status": status,
            }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(log_format: str, quiet: bool) -> None:
    """Process-wide, from main: warnings and errors, and unless `quiet` a line per request,
    to stderr in `log_format` (one of LOG_FORMATS), when logging has no handler yet (as
    logging.basicConfig); then `limit_logging`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(handlers=[handler], level=logging.WARNING)  # unless set up already
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    limit_logging(quiet)


def limit_logging(quiet: bool) -> None:
    """Process-wide, from main: uvicorn's warnings once per message, Pillow's once per kind;
    with `quiet`, neither (errors only)."""
    if quiet:
        UVICORN_ERRORS.setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=PILLOW)
        return
    UVICORN_ERRORS.addFilter(OncePerMessage())
    # "always": Python's own once-per-message registry would keep every message it has seen
    # (a client can send 65,536 different tag numbers); OncePerKind keeps one entry per line.
    warnings.filterwarnings("always", module=PILLOW)
    warnings.showwarning = OncePerKind()
