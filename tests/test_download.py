"""digits/download.py and stages/download.py against real HTTP servers on 127.0.0.1.

Each server plays scripted replies (a status, a body, maybe cut short or stalled), so every
way a mirror can fail is exercised over a real socket. The files are small synthetic IDX-like
bytes whose pins are computed here.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.synthetic import encode_idx

from digits import download
from digits.dataset import RAW_FILE_NAMES
from digits.download import DownloadError, download_all, fetch_verified, mirror_list
from digits.params import DownloadParams, ExpectedFile, load_dataset_source, load_section
from stages import download as download_stage
from stages._cli import run

PROJECT = Path(__file__).parents[1]
NAME = "train-labels-idx1-ubyte"


def idx_bytes(seed: int, count: int = 320) -> bytes:
    """A labels IDX file of `count` random digits (its content is only bytes to download here)."""
    return encode_idx(np.random.default_rng(seed).integers(0, 10, count, dtype=np.uint8))


def pin(content: bytes) -> ExpectedFile:
    return ExpectedFile(bytes=len(content), sha256=hashlib.sha256(content).hexdigest())


CONTENT = idx_bytes(0)
GZIPPED = gzip.compress(CONTENT, mtime=0)
EXPECTED = pin(CONTENT)


@dataclass
class Reply:
    status: int = 200
    body: bytes = GZIPPED
    send_bytes: int | None = None  # send only this much of the body, then hang up
    stall: bool = False  # then send nothing more until the server closes
    trickle_seconds: float = 0  # send the body one byte at a time, this long apart
    authorization: str | None = None  # answer 401 unless the request has this header
    location: str | None = None  # answer a redirect there
    content_type: str = "application/gzip"


class MirrorServer:
    """A real HTTP server: each path plays its replies in order, the last one repeating."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        self.closing = threading.Event()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                replies = mirror.scripts.get(self.path) or [Reply(404, b"<h1>Not Found</h1>")]
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                mirror.authorizations.append(self.headers.get("Authorization"))
                if reply.location:
                    self.send_response(302)
                    self.send_header("Location", reply.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if reply.authorization and self.headers["Authorization"] != reply.authorization:
                    reply = Reply(401, b"<h1>Unauthorized</h1>", content_type="text/html")
                if reply.stall and reply.send_bytes is None:
                    mirror.closing.wait(10)  # not even a status line
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.trickle_seconds:
                    for byte in reply.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if mirror.closing.wait(reply.trickle_seconds):
                            return
                self.wfile.write(reply.body[: reply.send_bytes])
                if reply.stall:
                    mirror.closing.wait(10)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def mirror(self, folder: str, name: str = NAME, *replies: Reply) -> str:
        """The URL of a mirror at /<folder>/ whose `<name>.gz` plays `replies`."""
        self.scripts[f"/{folder}/{name}.gz"] = list(replies)
        return f"http://127.0.0.1:{self.server.server_address[1]}/{folder}/"

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def server():
    mirror_server = MirrorServer()
    yield mirror_server
    mirror_server.close()


@pytest.fixture
def refused_url() -> str:
    """A URL on a port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib would send 127.0.0.1 requests through a proxy named in the environment
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(variable, raising=False)


def wrap_written_files(monkeypatch, wrapper) -> None:
    """Make every file the download writes `wrapper(the real file)`."""
    real_atomic_open = download.atomic_open

    @contextlib.contextmanager
    def wrapped_atomic_open(path, mode):
        with real_atomic_open(path, mode) as file:
            yield wrapper(file)

    monkeypatch.setattr(download, "atomic_open", wrapped_atomic_open)


def fetch(mirrors, destination, expected=EXPECTED, **options):
    """fetch_verified with fast test settings; returns (mirror used, sleeps requested)."""
    sleeps: list[float] = []
    settings = {"timeout_seconds": 2.0, "retries": 2, "backoff_seconds": 0.5, "progress": False}
    settings.update(options, sleep=options.get("sleep", sleeps.append))
    return fetch_verified(NAME, expected, mirrors, destination, **settings), sleeps


def failure(mirrors, tmp_path, expected=EXPECTED, **options) -> str:
    """The DownloadError message when every mirror fails; checks nothing was left behind."""
    destination = tmp_path / "out" / NAME
    destination.parent.mkdir(parents=True)
    with pytest.raises(DownloadError) as caught:
        fetch(mirrors, destination, expected, **options)
    assert list(destination.parent.iterdir()) == []  # no file, no temp file
    return str(caught.value)


def test_mirror_list_puts_environment_mirror_first_without_duplicates():
    assert mirror_list("../shared/mnist", ["https://a/", "../shared/mnist", "https://b/"]) == [
        "../shared/mnist",
        "https://a/",
        "https://b/",
    ]
    assert mirror_list(None, ["https://a/", "https://a/"]) == ["https://a/"]
    assert mirror_list("", ["https://a/"]) == ["https://a/"]


def test_404_on_first_mirror_then_second_mirror_serves(server, tmp_path, capsys):
    missing = server.mirror("gone", NAME, Reply(404, b"<h1>Not Found</h1>"))
    good = server.mirror("good", NAME, Reply())
    used, sleeps = fetch([missing, good], tmp_path / NAME)
    assert used == good
    assert (tmp_path / NAME).read_bytes() == CONTENT
    assert sleeps == []  # a 404 is not retried
    assert server.requests == [f"/gone/{NAME}.gz", f"/good/{NAME}.gz"]
    out, err = capsys.readouterr()
    assert out == f"{NAME}: {len(CONTENT):,} bytes, sha256 ok, from {good}\n"
    assert f"skipped {missing}: HTTP 404 Not Found" in err


def test_500_is_retried_with_doubling_backoff(server, tmp_path):
    flaky = server.mirror("flaky", NAME, Reply(500, b"oops"), Reply(503, b"busy"), Reply())
    used, sleeps = fetch([flaky], tmp_path / NAME, retries=3)
    assert used == flaky
    assert sleeps == [0.5, 1.0]
    assert len(server.requests) == 3
    assert (tmp_path / NAME).read_bytes() == CONTENT


def test_connection_cut_mid_body_is_retried(server, tmp_path):
    cut = Reply(send_bytes=len(GZIPPED) // 2)
    mirror = server.mirror("cut", NAME, cut, Reply())
    used, sleeps = fetch([mirror], tmp_path / NAME)
    assert used == mirror
    assert sleeps == [0.5]
    assert (tmp_path / NAME).read_bytes() == CONTENT


def test_connection_cut_every_time_fails_after_retries(server, tmp_path):
    mirror = server.mirror("cut", NAME, Reply(send_bytes=len(GZIPPED) // 2))
    message = failure([mirror], tmp_path, retries=1)
    half, whole = len(GZIPPED) // 2, len(GZIPPED)
    assert f"connection closed with {half:,} of {whole:,} bytes received" in message
    assert "after 1 retry" in message
    assert len(server.requests) == 2


def test_truncated_gzip_fails_the_mirror_without_retry(server, tmp_path):
    truncated = server.mirror("truncated", NAME, Reply(body=GZIPPED[: len(GZIPPED) - 20]))
    message = failure([truncated], tmp_path)
    assert f"{truncated}: corrupt or truncated gzip stream" in message
    assert len(server.requests) == 1


def test_corrupt_gzip_fails_the_mirror(server, tmp_path):
    body = bytearray(GZIPPED)
    body[-6] ^= 0xFF  # the CRC-32 / size trailer no longer matches
    message = failure([server.mirror("corrupt", NAME, Reply(body=bytes(body)))], tmp_path)
    assert "corrupt or truncated gzip stream" in message


def test_html_page_with_status_200_is_not_a_gzip_file(server, tmp_path):
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    html = server.mirror("portal", NAME, Reply(body=page, content_type="text/html"))
    message = failure([html], tmp_path)
    assert f"{html}: not a gzip file (starts with b'<!DOCTYPE html" in message
    assert len(server.requests) == 1


def test_hash_mismatch_fails_the_mirror(server, tmp_path):
    other = idx_bytes(1)  # same size, different bytes
    body = gzip.compress(other, mtime=0)
    message = failure([server.mirror("other", NAME, Reply(body=body))], tmp_path)
    actual = hashlib.sha256(other).hexdigest()
    pinned = EXPECTED.sha256
    assert f"content SHA-256 {actual[:12]}... does not match the pinned {pinned[:12]}..." in message


def test_short_content_is_a_size_mismatch(server, tmp_path):
    body = gzip.compress(CONTENT[:-1], mtime=0)
    message = failure([server.mirror("short", NAME, Reply(body=body))], tmp_path)
    size, pinned = len(CONTENT) - 1, len(CONTENT)
    assert f"decompressed size {size:,} bytes is not the pinned {pinned:,}" in message


def test_gzip_bomb_stops_at_the_pinned_size(server, tmp_path, monkeypatch):
    bomb = gzip.compress(bytes(3_000_000), mtime=0)  # about 3 kB that inflate to 3 MB
    written: list[int] = []

    class CountingFile:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            written.append(len(data))
            return self.file.write(data)

    wrap_written_files(monkeypatch, CountingFile)
    message = failure([server.mirror("bomb", NAME, Reply(body=bomb))], tmp_path)
    assert f"decompressed content exceeds the pinned {len(CONTENT):,} bytes" in message
    assert sum(written) <= len(CONTENT)


def test_compressed_body_far_beyond_the_pinned_size_fails(server, tmp_path):
    padded = GZIPPED + gzip.compress(b"", mtime=0) * 1000  # 20 kB of empty gzip members
    message = failure([server.mirror("padded", NAME, Reply(body=padded))], tmp_path)
    limit = 2 * len(CONTENT) + 4096
    assert f"compressed body exceeds {limit:,} bytes" in message


def test_multiple_gzip_members_concatenate_but_trailing_garbage_fails(server, tmp_path):
    half = len(CONTENT) // 2
    members = gzip.compress(CONTENT[:half], mtime=0) + gzip.compress(CONTENT[half:], mtime=0)
    members_mirror = server.mirror("members", NAME, Reply(body=members))
    assert fetch([members_mirror], tmp_path / NAME)[0] == members_mirror
    assert (tmp_path / NAME).read_bytes() == CONTENT

    garbage = server.mirror("garbage", NAME, Reply(body=GZIPPED + b"<html>"))
    message = failure([garbage], tmp_path)
    assert f"{garbage}: unexpected bytes after the gzip stream (starting b'<html>')" in message
    one_byte = server.mirror("one-byte", NAME, Reply(body=GZIPPED + b"\x1f"))  # a header's start?
    message = failure([one_byte], tmp_path / "again")
    assert f"{one_byte}: unexpected bytes after the gzip stream (starting b'\\x1f')" in message


@pytest.mark.parametrize("chunk_bytes", [1, 2, 7])
def test_tiny_chunks_split_every_header_and_still_decompress(tmp_path, monkeypatch, chunk_bytes):
    half = len(CONTENT) // 2
    members = gzip.compress(CONTENT[:half], mtime=0) + gzip.compress(CONTENT[half:], mtime=0)
    (tmp_path / f"{NAME}.gz").write_bytes(members)
    monkeypatch.setattr(download, "CHUNK_BYTES", chunk_bytes)
    fetch([str(tmp_path)], tmp_path / "out" / NAME)
    assert (tmp_path / "out" / NAME).read_bytes() == CONTENT


def test_connection_refused_fails_after_retries(refused_url, tmp_path):
    message = failure([refused_url], tmp_path, retries=3)
    assert f"{refused_url}: connection refused after 3 retries" in message


def test_timeout_is_retried_then_fails(server, tmp_path):
    stalled = server.mirror("stalled", NAME, Reply(stall=True))
    message = failure([stalled], tmp_path, timeout_seconds=0.2, retries=1)
    assert f"{stalled}: timed out after 1 retry" in message
    assert len(server.requests) == 2


def test_timeout_mid_body_is_retried(server, tmp_path):
    stalled = Reply(send_bytes=len(GZIPPED) // 2, stall=True)
    mirror = server.mirror("slow", NAME, stalled, Reply())
    used, sleeps = fetch([mirror], tmp_path / NAME, timeout_seconds=0.2)
    assert used == mirror
    assert sleeps == [0.5]
    assert (tmp_path / NAME).read_bytes() == CONTENT


def test_a_mirror_that_trickles_is_stopped_by_the_whole_file_deadline(server, tmp_path):
    # One byte every 1.5 s never trips the 2 s per-read timeout; the whole file would take 6 min
    trickle = server.mirror("trickle", NAME, Reply(trickle_seconds=1.5))
    deadline = download.whole_file_deadline(2.0, EXPECTED.bytes)
    assert deadline == 4.0
    started = time.monotonic()
    message = failure([trickle], tmp_path, timeout_seconds=2.0, retries=2)
    assert time.monotonic() - started < deadline + 2.5  # not retried: too slow is skipped
    assert re.search(
        f"{trickle}: too slow: [1-4] bytes in the 4 s allowed for the whole file", message
    )
    assert len(server.requests) == 1


def test_whole_file_deadline_grows_with_the_content():
    assert download.whole_file_deadline(30, 28_881) == 60
    assert download.whole_file_deadline(30, 47_040_016) == 30 * (1 + 45)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_local_mirror_serves_regular_files_only(tmp_path, kind):
    folder = tmp_path / "mirror"
    folder.mkdir()
    path = folder / f"{NAME}.gz"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: open() alone would wait for ever
        expected = "a FIFO (named pipe)"
    elif kind == "device":
        path.symlink_to("/dev/zero")  # would never end
        expected = "a character device"
    else:
        path.mkdir()
        expected = "a folder"
    unblock = threading.Timer(5, lambda: os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK)))
    if kind == "fifo":  # so that a hang in open() ends (and fails the test) in 5 s
        unblock.start()
    started = time.monotonic()
    message = failure([str(folder)], tmp_path)
    unblock.cancel()
    assert time.monotonic() - started < 4
    assert f"{folder}: cannot read {path}: it is {expected}, not a regular file" in message


BASIC = "Basic " + base64.b64encode(b"reader:p@ss word").decode()  # what the server expects


def test_a_url_with_user_and_password_sends_basic_auth_and_never_shows_it(server, tmp_path, capsys):
    url = server.mirror("private", NAME, Reply(authorization=BASIC))
    with_password = url.replace("http://", "http://reader:p%40ss%20word@")
    used, _ = fetch([with_password], tmp_path / NAME)
    assert (tmp_path / NAME).read_bytes() == CONTENT
    assert server.authorizations == [BASIC]
    assert used == url.replace("http://", "http://reader:***@")
    out = capsys.readouterr().out
    assert f"from {used}" in out
    assert "p%40ss" not in out
    assert "p@ss" not in out


def test_a_wrong_password_fails_without_showing_it(server, tmp_path):
    url = server.mirror("private", NAME, Reply(authorization=BASIC))
    wrong = url.replace("http://", "http://reader:guessed-wrong@")
    message = failure([wrong], tmp_path)
    assert f"{url.replace('http://', 'http://reader:***@')}: HTTP 401 Unauthorized" in message
    assert "guessed-wrong" not in message


def test_a_redirect_does_not_carry_the_password(server, tmp_path):
    target = server.mirror("public", NAME, Reply())
    url = server.mirror("private", NAME, Reply(location=f"{target}{NAME}.gz"))
    fetch([url.replace("http://", "http://reader:secret@")], tmp_path / NAME)
    assert server.authorizations == ["Basic " + base64.b64encode(b"reader:secret").decode(), None]


def test_a_url_with_a_user_and_no_password_is_refused(server, tmp_path):
    url = server.mirror("private", NAME, Reply())
    message = failure([url.replace("http://", "http://reader@")], tmp_path)
    assert "a URL with a user name needs user:password@ (basic auth)" in message
    assert server.requests == []


def test_every_mirror_failing_gives_one_message_naming_each(server, refused_url, tmp_path):
    mirrors = [
        server.mirror("missing", NAME, Reply(404, b"no")),
        server.mirror("broken", NAME, Reply(500, b"no")),
        server.mirror("portal", NAME, Reply(body=b"<!DOCTYPE html><p>hi</p>")),
        refused_url,
        str(tmp_path / "no-such-folder"),
        "ftp://example.org/mnist/",
    ]
    sleeps: list[float] = []
    message = failure(mirrors, tmp_path, retries=2, backoff_seconds=0.25, sleep=sleeps.append)
    lines = message.splitlines()
    assert lines[0] == f"could not download {NAME}.gz from any mirror:"
    assert lines[1:] == [
        f"  {mirrors[0]}: HTTP 404 Not Found",
        f"  {mirrors[1]}: HTTP 500 Internal Server Error after 2 retries",
        f"  {mirrors[2]}: not a gzip file (starts with b'<!DOCTYPE html><p>hi</p>')",
        f"  {mirrors[3]}: connection refused after 2 retries",
        f"  {mirrors[4]}: cannot read {mirrors[4]}/{NAME}.gz: no such file or directory",
        f"  {mirrors[5]}: unsupported URL scheme 'ftp' (use http(s), file or a folder)",
    ]
    assert sleeps == [0.25, 0.5, 0.25, 0.5]  # the 500 and the refused connection


def test_local_folder_mirror_relative_and_absolute(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / f"{NAME}.gz").write_bytes(GZIPPED)
    monkeypatch.chdir(tmp_path)
    used, _ = fetch(["missing-folder", "mirror"], tmp_path / "relative" / NAME)
    assert used == "mirror"
    assert (tmp_path / "relative" / NAME).read_bytes() == CONTENT
    used, _ = fetch([f"{tmp_path}/mirror/"], tmp_path / "absolute" / NAME)
    assert (tmp_path / "absolute" / NAME).read_bytes() == CONTENT


def test_file_url_with_a_relative_path_is_refused(tmp_path):
    message = failure(["file://../shared/mnist"], tmp_path)
    assert "file://../shared/mnist: a file URL needs an absolute path" in message


def test_file_url_mirror(tmp_path):
    folder = tmp_path / "a mirror"  # the space is percent-encoded in the URL
    folder.mkdir()
    (folder / f"{NAME}.gz").write_bytes(GZIPPED)
    used, _ = fetch([folder.as_uri()], tmp_path / "out" / NAME)
    assert used == folder.as_uri()
    assert "%20" in used
    assert (tmp_path / "out" / NAME).read_bytes() == CONTENT


def test_progress_bar_goes_to_stderr_instead_of_the_summary(tmp_path, capsys):
    (tmp_path / f"{NAME}.gz").write_bytes(GZIPPED)
    fetch([str(tmp_path)], tmp_path / "out" / NAME, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert NAME in err
    assert "100%" in err


def test_interrupt_mid_write_leaves_no_file(server, tmp_path, monkeypatch):
    content = idx_bytes(2, count=2000)  # 16 kB: several pieces of 1 kB
    mirror = server.mirror("big", NAME, Reply(body=gzip.compress(content, mtime=0)))
    monkeypatch.setattr(download, "CHUNK_BYTES", 1024)
    seen: dict[str, object] = {}

    class InterruptedFile:
        """Writes two pieces, then behaves as if Ctrl-C arrived during the third write."""

        def __init__(self, file):
            self.file = file
            self.path = Path(file.raw.name)  # the temp file beside the destination
            self.writes = 0

        def write(self, data):
            self.writes += 1
            if self.writes == 3:
                self.file.flush()
                seen["path"], seen["size"] = self.path, self.path.stat().st_size
                raise KeyboardInterrupt
            return self.file.write(data)

    wrap_written_files(monkeypatch, InterruptedFile)
    destination = tmp_path / "out" / NAME
    with pytest.raises(KeyboardInterrupt):
        fetch([mirror], destination, pin(content))
    assert 0 < seen["size"] < len(content)  # a partial file did exist on disk...
    assert seen["path"].parent == destination.parent
    assert list(destination.parent.iterdir()) == []  # ...and is gone, with no file at the path


def stage_argv(tmp_path: Path, mirrors: list[str], files: dict[str, bytes]) -> list[str]:
    """The download stage's argv (before the output folder), with the real params.yaml and a
    dataset sources file pointing mnist at synthetic files."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["download"].update(dataset="mnist", retries=1, backoff_seconds=0)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    sources = {
        "mnist": {
            "licence": "synthetic digits (no licence needed)",
            "mirrors": mirrors,
            "files": {name: pin(content).model_dump() for name, content in files.items()},
        }
    }
    sources_path = tmp_path / "datasets.yaml"
    sources_path.write_text(yaml.safe_dump(sources, sort_keys=False))
    return ["--params", str(params_path), "--datasets", str(sources_path)]


SYNTHETIC_FILES = {name: idx_bytes(seed) for seed, name in enumerate(RAW_FILE_NAMES)}


def test_stage_writes_all_four_files_from_the_environment_mirror(
    tmp_path, refused_url, monkeypatch, capsys
):
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name, content in SYNTHETIC_FILES.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(content, mtime=0))
    argv = stage_argv(tmp_path, [refused_url], SYNTHETIC_FILES)  # reachable only via the env
    monkeypatch.setenv("MNIST_MIRROR", str(folder))
    out_dir = tmp_path / "data" / "raw"

    assert run(download_stage.main, [*argv, str(out_dir)]) == 0
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(RAW_FILE_NAMES)
    for name, content in SYNTHETIC_FILES.items():
        assert (out_dir / name).read_bytes() == content
    assert capsys.readouterr().out.count(f"sha256 ok, from {folder}") == 4


def test_stage_fails_with_one_message_and_no_output(tmp_path, refused_url, monkeypatch, capsys):
    monkeypatch.delenv("MNIST_MIRROR", raising=False)
    missing = str(tmp_path / "empty-mirror")
    argv = stage_argv(tmp_path, [refused_url, missing], SYNTHETIC_FILES)
    out_dir = tmp_path / "data" / "raw"

    assert run(download_stage.main, [*argv, str(out_dir)]) == 1
    err = capsys.readouterr().err
    first = RAW_FILE_NAMES[0]
    assert err.startswith(f"error: could not download {first}.gz from any mirror:\n")
    assert f"{refused_url}: connection refused after 1 retry" in err
    assert f"{missing}: cannot read {missing}/{first}.gz: no such file or directory" in err
    assert list((tmp_path / "data").iterdir()) == []  # no out_dir, no temp folder


@pytest.mark.slow
def test_real_local_mirror_matches_the_pinned_hashes(tmp_path):
    mirror = PROJECT / ".." / "shared" / "mnist"
    if not mirror.is_dir():
        pytest.skip(f"no local MNIST mirror at {mirror}")
    params = load_section(PROJECT / "params.yaml", "download", DownloadParams)
    source = load_dataset_source(PROJECT / "data" / "datasets.yaml", params.dataset)
    download_all(source, params, [str(mirror)], tmp_path / "raw", progress=False)
    for name, expected in source.files.items():
        content = (tmp_path / "raw" / name).read_bytes()
        assert len(content) == expected.bytes
        assert hashlib.sha256(content).hexdigest() == expected.sha256
