"""Fetch the MNIST files from a list of mirrors, keeping only content that matches its pin.

Mirrors recompress the files, so the pin (data/datasets.yaml) is the size and SHA-256 of each file's
decompressed content, which is the same everywhere. A mirror that answers wrongly (HTTP 4xx, an
HTML page, a bad gzip stream, other content) is skipped at once; a failure that may pass (no
connection, a timeout, HTTP 5xx, a body cut short) is first retried with exponential backoff.
Each read waits at most `timeout_seconds`, and each file has a deadline as a whole (a server
that trickles a byte at a time never trips a per-read timeout). A local mirror serves regular
files only (a FIFO or a device would block or never end). Nothing appears at a final path until
its content is verified. A URL may carry `user:password@` (basic auth, sent only to that host and
never on a redirect); every message shows it as `user:***@`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import math
import os
import socket
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from tqdm import tqdm

from digits.errors import DigitsError
from digits.files import atomic_directory, atomic_open
from digits.params import DatasetSource, DownloadParams, ExpectedFile

CHUNK_BYTES = 1 << 16  # read, decompress, hash and write in pieces this size: memory stays small
MIB = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class DownloadError(DigitsError):
    """No mirror served a file whose decompressed content matches its pinned size and SHA-256."""


class _SkipMirror(Exception):
    """This mirror cannot serve the file: move on to the next mirror."""


class _RetryMirror(Exception):
    """A failure that may pass (no connection, timeout, HTTP 5xx): try the same mirror again."""


def mirror_list(env_value: str | None, mirrors: Sequence[str]) -> list[str]:
    """The mirror from the environment (if set and non-empty) first, then the params mirrors;
    no duplicates."""
    first = [env_value] if env_value else []
    return list(dict.fromkeys([*first, *mirrors]))


def fetch_verified(
    name: str,
    expected: ExpectedFile,
    mirrors: Sequence[str],
    destination: Path,
    *,
    timeout_seconds: float,
    retries: int,
    backoff_seconds: float,
    progress: bool,
    sleep: Callable[[float], object] = time.sleep,
) -> str:
    """Write the verified, decompressed content of `<mirror>/<name>.gz` to `destination`.

    Tries the mirrors in order and returns the one that served the file (its password, if
    any, shown as ***); raises DownloadError, naming every mirror and why it failed, when none
    did.
    """
    failures: list[str] = []
    with tqdm(
        total=expected.bytes, desc=name, unit="B", unit_scale=True, disable=not progress
    ) as bar:
        for mirror in mirrors:
            try:
                source = _source(mirror, name)
                _fetch_with_retries(
                    source,
                    expected,
                    destination,
                    bar,
                    timeout_seconds,
                    retries,
                    backoff_seconds,
                    sleep,
                )
                break
            except _SkipMirror as failure:
                failures.append(redact(f"{mirror}: {failure}", mirror))
        else:  # no mirror served the file
            tried = "\n".join(f"  {failure}" for failure in failures) or "  (no mirrors given)"
            raise DownloadError(f"could not download {name}.gz from any mirror:\n{tried}")
    for skipped in failures:  # say so, or a broken $MNIST_MIRROR would go unnoticed
        print(f"{name}: skipped {skipped}", file=sys.stderr)
    shown = redact(mirror, mirror)
    if not progress:
        print(f"{name}: {expected.bytes:,} bytes, sha256 ok, from {shown}")
    return shown


def redact(text: str, mirror: str) -> str:
    """`text` with the password of `mirror`'s URL (as written and percent-decoded) as ***."""
    try:
        password = urllib.parse.urlsplit(mirror).password if "://" in mirror else None
    except ValueError:
        return text.replace(mirror, "(a URL that is not valid)")
    if not password:
        return text
    for form in {password, urllib.parse.unquote(password)}:
        text = text.replace(form, "***")
    return text


def download_all(
    source: DatasetSource,
    params: DownloadParams,
    mirrors: list[str],
    out_dir: Path,
    *,
    progress: bool,
) -> None:
    """Fetch every file of `source`; `out_dir` appears only once all are verified."""
    with atomic_directory(out_dir) as folder:
        for name, expected in source.files.items():
            fetch_verified(
                name,
                expected,
                mirrors,
                folder / name,
                timeout_seconds=params.timeout_seconds,
                retries=params.retries,
                backoff_seconds=params.backoff_seconds,
                progress=progress,
            )


def _fetch_with_retries(
    source: urllib.request.Request | Path,
    expected: ExpectedFile,
    destination: Path,
    bar: tqdm,
    timeout_seconds: float,
    retries: int,
    backoff_seconds: float,
    sleep: Callable[[float], object],
) -> None:
    """Fetch from one mirror, retrying failures that may pass; raise _SkipMirror if it fails."""
    for attempt in range(retries + 1):
        try:
            return _fetch_once(source, expected, destination, bar, timeout_seconds)
        except _RetryMirror as failure:
            if attempt == retries:
                tries = "retry" if retries == 1 else "retries"
                raise _SkipMirror(f"{failure} after {retries} {tries}") from None
            sleep(backoff_seconds * 2**attempt)  # backoff_seconds, then doubling


def _fetch_once(
    source: urllib.request.Request | Path,
    expected: ExpectedFile,
    destination: Path,
    bar: tqdm,
    timeout_seconds: float,
) -> None:
    """One attempt: stream into a temp file beside `destination`, renamed only once verified."""
    bar.reset()
    deadline_seconds = whole_file_deadline(timeout_seconds, expected.bytes)
    with (
        contextlib.closing(_read_chunks(source, timeout_seconds, deadline_seconds)) as chunks,
        atomic_open(destination, "wb") as target,
    ):
        _write_verified(chunks, target, expected, bar)


def whole_file_deadline(timeout_seconds: float, content_bytes: int) -> float:
    """The seconds one attempt at a file may take in all: `timeout_seconds` to connect, plus
    `timeout_seconds` per started MiB of its (decompressed) content. At the default 30 s that is
    60 s for a labels file and 23 minutes for the 47 MB training images (about 35 KB/s)."""
    return timeout_seconds * (1 + math.ceil(content_bytes / MIB))


def _source(mirror: str, name: str) -> urllib.request.Request | Path:
    """Where `mirror` keeps `<name>.gz`: a request for http(s), with the URL's `user:password@`
    moved into an Authorization header; a local path for file:// or a folder."""
    file_name = f"{name}.gz"
    if "://" not in mirror:
        return Path(mirror) / file_name
    try:
        parts = urllib.parse.urlsplit(mirror)
    except ValueError as error:
        raise _SkipMirror(f"invalid URL ({error})") from None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):  # e.g. file://../mnist, a relative path
            raise _SkipMirror("a file URL needs an absolute path (file:///...); or give a folder")
        return Path(urllib.request.url2pathname(parts.path)) / file_name
    if parts.scheme in ("http", "https"):
        userinfo, _, host = parts.netloc.rpartition("@")
        if userinfo and parts.password is None:
            raise _SkipMirror("a URL with a user name needs user:password@ (basic auth)")
        url = urllib.parse.urlunsplit(parts._replace(netloc=host)).rstrip("/") + "/" + file_name
        request = urllib.request.Request(url)
        if userinfo:
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            # unredirected: a redirect (perhaps to another host) does not carry the password
            request.add_unredirected_header("Authorization", f"Basic {token}")
        return request
    raise _SkipMirror(f"unsupported URL scheme {parts.scheme!r} (use http(s), file or a folder)")


def _read_chunks(
    source: urllib.request.Request | Path, timeout_seconds: float, deadline_seconds: float
) -> Iterator[bytes]:
    """The raw (compressed) bytes of `source`, with each failure sorted into skip or retry."""
    if isinstance(source, Path):
        yield from _read_local(source)
        return
    with _Deadline(deadline_seconds) as deadline:
        yield from _read_url(source, timeout_seconds, deadline)


def _read_local(source: Path) -> Iterator[bytes]:
    """A local mirror's file, which must be a regular file (checked on the open descriptor)."""
    try:
        # O_NONBLOCK: open() of a FIFO with no writer would otherwise wait for one for ever
        descriptor = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:  # a missing file will not appear on a retry
        raise _SkipMirror(f"cannot read {source}: {_format_error(error)}") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise _SkipMirror(
            f"cannot read {source}: it is {_file_kind(mode)}, not a regular file "
            "(a mirror folder holds the .gz files themselves)"
        )
    os.set_blocking(descriptor, True)
    with open(descriptor, "rb") as file:
        try:
            yield from iter(lambda: file.read(CHUNK_BYTES), b"")
        except OSError as error:
            raise _SkipMirror(f"cannot read {source}: {_format_error(error)}") from None


def _file_kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    return next((kind for test, kind in kinds.items() if test(mode)), "not a file")


def _read_url(
    request: urllib.request.Request, timeout_seconds: float, deadline: _Deadline
) -> Iterator[bytes]:
    received = 0
    try:
        response = deadline.opener().open(request, timeout=timeout_seconds)
    except urllib.error.HTTPError as error:
        error.close()
        failure = _RetryMirror if error.code >= 500 else _SkipMirror
        raise failure(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        deadline.check(received)
        raise _RetryMirror(_format_error(error.reason)) from None
    except (OSError, http.client.HTTPException) as error:  # e.g. a timeout awaiting the status line
        deadline.check(received)
        raise _RetryMirror(_format_error(error)) from None
    except ValueError as error:
        raise _SkipMirror(f"invalid URL ({error})") from None
    with response:
        announced = response.headers.get("Content-Length", "")
        while True:
            try:
                # read1: at most one read from the socket, so the deadline is checked between
                # pieces however slowly they come (read() waits for a whole CHUNK_BYTES)
                chunk = response.read1(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                deadline.check(received)
                raise _RetryMirror(
                    f"{_format_error(error)} {received:,} bytes into the body"
                ) from None
            deadline.check(received)
            if not chunk:
                break
            received += len(chunk)
            yield chunk
        # http.client reports a connection closed early as a normal end of the body
        if announced.isdigit() and received < int(announced):
            raise _RetryMirror(
                f"connection closed with {received:,} of {int(announced):,} bytes received"
            )


class _Deadline:
    """A whole-file deadline for one attempt: when it passes, every socket the attempt opened
    (redirects included) is shut down, which ends any read in progress at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def check(self, received: int) -> None:
        """Raise _SkipMirror if the deadline has passed: a mirror this slow is not retried."""
        if self.expired:
            raise _SkipMirror(
                f"too slow: {received:,} bytes in the {self.seconds:g} s allowed for the "
                "whole file (download.timeout_seconds, plus as much again per MiB of content)"
            )

    def opener(self) -> urllib.request.OpenerDirector:
        """urllib's default opener, with every connection it makes watched by this deadline."""
        deadline = self

        class Watched(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
            def do_open(self, http_class: type, request: urllib.request.Request, **kwargs: object):
                def connection(host: str, **options: object) -> http.client.HTTPConnection:
                    made = http_class(host, **options)
                    connect = made.connect

                    def watched_connect() -> None:
                        connect()
                        deadline._watch(made.sock)

                    made.connect = watched_connect
                    return made

                return super().do_open(connection, request, **kwargs)

        return urllib.request.build_opener(Watched)

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut_down(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _write_verified(
    chunks: Iterable[bytes], target: IO[bytes], expected: ExpectedFile, bar: tqdm
) -> None:
    """Decompress into `target`, stopping before the first byte beyond the pinned size."""
    digest = hashlib.sha256()
    size = 0
    # Deflate grows data by a few bytes per block at worst: twice the size is far beyond honest
    for piece in _gunzip(chunks, max_compressed_bytes=2 * expected.bytes + 4096):
        size += len(piece)
        if size > expected.bytes:
            raise _SkipMirror(f"decompressed content exceeds the pinned {expected.bytes:,} bytes")
        digest.update(piece)
        target.write(piece)
        bar.update(len(piece))
    if size != expected.bytes:
        raise _SkipMirror(f"decompressed size {size:,} bytes is not the pinned {expected.bytes:,}")
    if (actual := digest.hexdigest()) != expected.sha256:
        raise _SkipMirror(
            f"content SHA-256 {actual[:12]}... does not match the pinned {expected.sha256[:12]}..."
        )


def _gunzip(chunks: Iterable[bytes], max_compressed_bytes: int) -> Iterator[bytes]:
    """The decompressed content of a gzip stream, in pieces of at most CHUNK_BYTES.

    Like gzip(1), several members back to back concatenate; any other bytes after the last
    member are an error, and so is a stream that ends mid-member.
    """
    decompressor = None  # the current member's; None between members
    members = 0
    pending = b""  # compressed bytes not yet given to a decompressor
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > max_compressed_bytes:
            raise _SkipMirror(f"compressed body exceeds {max_compressed_bytes:,} bytes")
        pending += chunk
        while pending:
            if decompressor is None:
                if len(pending) < len(GZIP_MAGIC):
                    break  # a member's header split across two chunks
                if not pending.startswith(GZIP_MAGIC):
                    raise _unexpected(pending, members)
                decompressor = zlib.decompressobj(wbits=31)  # 31: gzip header and CRC trailer
                members += 1
            piece = _inflate(decompressor, pending)
            pending = decompressor.unconsumed_tail
            if piece:
                yield piece
            if decompressor.eof:
                pending, decompressor = decompressor.unused_data, None
    # The input is used up, but the last call may have stopped at CHUNK_BYTES of output
    while decompressor is not None and not decompressor.eof:
        piece = _inflate(decompressor, b"")
        if not piece:
            raise _SkipMirror("corrupt or truncated gzip stream (it ends before its trailer)")
        yield piece
    if pending or not members:
        raise _unexpected(pending, members)


def _inflate(decompressor: zlib._Decompress, data: bytes) -> bytes:
    try:
        return decompressor.decompress(data, CHUNK_BYTES)
    except zlib.error as error:
        raise _SkipMirror(f"corrupt or truncated gzip stream ({error})") from None


def _unexpected(data: bytes, members: int) -> _SkipMirror:
    if members:
        return _SkipMirror(f"unexpected bytes after the gzip stream (starting {data[:16]!r})")
    if not data:
        return _SkipMirror("empty file, not a gzip file")
    return _SkipMirror(f"not a gzip file (starts with {data[:32]!r})")


def _format_error(error: BaseException) -> str:
    """'connection refused' rather than '<urlopen error [Errno 111] Connection refused>'."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    text = text or type(error).__name__
    return text[:1].lower() + text[1:]
