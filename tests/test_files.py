"""digits.files: atomic writers leave the old file or nothing on failure, bytes are stable, readers
never unpickle."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from digits.errors import DigitsError
from digits.files import (
    WriteError,
    atomic_directory,
    atomic_open,
    atomic_path,
    describe_os_error,
    load_arrays,
    save_arrays,
    save_figure,
    shown_path,
    write_json,
)


class Boom(Exception):
    """Raised inside a `with` block to play a crash halfway through a write."""


def leftovers(folder: Path) -> list[str]:
    """Temp files or folders the atomic writers would have left behind (`.<name>.*.tmp`)."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append((data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    assert offset == len(data)
    return chunks


def crash_writing(writer: str, path: Path, text: str) -> None:
    """Start writing `text` to `path` with `writer`, then crash before the block ends."""
    if writer == "atomic_open":
        with atomic_open(path) as f:
            f.write(text)
            raise Boom
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        raise Boom


def crash_writing_folder(final: Path, name: str) -> None:
    with atomic_directory(final) as folder:
        (folder / name).write_bytes(b"half")
        raise Boom


def small_figure() -> Figure:
    figure = Figure(figsize=(2, 1.5))
    ax = figure.subplots()
    ax.plot([0, 1, 2], [0, 1, 4], label="squares")
    ax.set_title("a title")
    ax.legend()
    return figure


# --- atomic_path / atomic_open ------------------------------------------------------------------


def test_atomic_open_writes_text(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "out.txt"  # parent folders are made
    with atomic_open(path) as f:
        f.write("héllo\n")
    assert path.read_bytes() == "héllo\n".encode()
    assert leftovers(path.parent) == []


def test_atomic_open_writes_binary(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    with atomic_open(path, "wb") as f:
        f.write(b"\x00\xff")
    assert path.read_bytes() == b"\x00\xff"


def test_nothing_at_the_final_path_until_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with atomic_open(path) as f:
        f.write("partial")
        f.flush()
        assert not path.exists()
        assert len(leftovers(tmp_path)) == 1
    assert path.read_text(encoding="utf-8") == "partial"


def test_atomic_path_yields_a_temp_file_beside_the_target(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path
        assert tmp != path
        tmp.write_bytes(b"weights")
    assert path.read_bytes() == b"weights"
    assert not tmp.exists()


def test_outputs_are_ordinary_0644_files(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with atomic_open(path) as f:
        f.write("x")
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


@pytest.mark.parametrize("writer", ["atomic_open", "atomic_path"])
def test_crash_leaves_no_file_and_no_temp_file(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "out.txt"
    with pytest.raises(Boom):
        crash_writing(writer, path, "half a file")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", ["atomic_open", "atomic_path"])
def test_crash_keeps_the_previous_version(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old and complete\n", encoding="utf-8")
    with pytest.raises(Boom):
        crash_writing(writer, path, "new but half")
    assert path.read_text(encoding="utf-8") == "old and complete\n"
    assert leftovers(tmp_path) == []


def test_success_replaces_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old, longer than the new one\n", encoding="utf-8")
    with atomic_open(path) as f:
        f.write("new\n")
    assert path.read_text(encoding="utf-8") == "new\n"
    assert leftovers(tmp_path) == []


# --- atomic_directory ---------------------------------------------------------------------------


def test_atomic_directory_writes_a_folder(tmp_path: Path) -> None:
    final = tmp_path / "plots"
    with atomic_directory(final) as folder:
        assert list(folder.iterdir()) == []
        assert not final.exists()
        (folder / "a.csv").write_text("a\n", encoding="utf-8")
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text("b\n", encoding="utf-8")
    assert sorted(str(p.relative_to(final)) for p in final.rglob("*")) == [
        "a.csv",
        "sub",
        "sub/b.txt",
    ]
    assert final.stat().st_mode & 0o777 == 0o755
    assert leftovers(tmp_path) == []


def test_atomic_directory_replaces_the_whole_previous_folder(tmp_path: Path) -> None:
    final = tmp_path / "plots"
    final.mkdir()
    (final / "stale.png").write_bytes(b"old")
    with atomic_directory(final) as folder:
        (folder / "fresh.png").write_bytes(b"new")
    assert sorted(p.name for p in final.iterdir()) == ["fresh.png"]  # nothing stale survives


def test_atomic_directory_crash_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "plots"
    with pytest.raises(Boom):
        crash_writing_folder(final, "half.png")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_crash_keeps_the_previous_folder(tmp_path: Path) -> None:
    final = tmp_path / "plots"
    final.mkdir()
    (final / "old.png").write_bytes(b"old")
    with pytest.raises(Boom):
        crash_writing_folder(final, "new.png")
    assert sorted(p.name for p in final.iterdir()) == ["old.png"]
    assert (final / "old.png").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_atomic_directory_replaces_a_folder_and_leaves_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "plots"
    final.mkdir()
    (final / "old.png").write_bytes(b"old")
    with atomic_directory(final) as folder:
        (folder / "new.png").write_bytes(b"new")
    assert leftovers(tmp_path) == []  # neither the new folder's temp nor the old folder


# --- what a killed writer leaves behind ----------------------------------------------------------


@pytest.mark.parametrize("stale_kind", ["file", "folder"])
def test_the_next_write_removes_a_killed_writers_temp(tmp_path: Path, stale_kind: str) -> None:
    # SIGKILL gives a writer no chance to clean up: its `.<name>.<random>.tmp` stays.
    stale = tmp_path / ".metrics.json.k1ll3d_x.tmp"
    if stale_kind == "file":
        stale.write_text("{half")
    else:
        stale.mkdir()
        (stale / "half.png").write_bytes(b"half")
    unrelated = [".metrics.json.tmp", ".metrics.json.toolongname.tmp", ".other.json.abcdefgh.tmp"]
    for name in unrelated:
        (tmp_path / name).write_text("not ours")

    write_json(tmp_path / "metrics.json", {"accuracy": 1.0})

    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*unrelated, "metrics.json"])


def test_the_next_write_keeps_the_temp_of_a_writer_still_running(tmp_path: Path) -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    killed = tmp_path / f".metrics.json.{int(ended.stdout)}.abcd_123.tmp"  # its process is gone
    running = tmp_path / f".metrics.json.{os.getpid()}.abcd_123.tmp"  # a writer beside us
    for path in (killed, running):
        path.write_text("{half")
    write_json(tmp_path / "metrics.json", {"accuracy": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, "metrics.json"])


def test_temp_names_hold_the_writers_process_id(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "out.txt") as tmp:
        assert re.fullmatch(rf"\.out\.txt\.{os.getpid()}\.[a-z0-9_]{{8}}\.tmp", tmp.name)


def test_the_next_folder_write_removes_a_killed_writers_temp_folder(tmp_path: Path) -> None:
    stale = tmp_path / ".plots.abcd_123.tmp"
    stale.mkdir()
    (stale / "half.png").write_bytes(b"half")
    with atomic_directory(tmp_path / "plots") as folder:
        (folder / "whole.png").write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]


# --- failed writes ------------------------------------------------------------------------------


def test_a_failed_write_names_its_own_output_among_several(tmp_path: Path, monkeypatch) -> None:
    # An OSError from write() names no file, and in `with a, b:` the writer of b sees a failure
    # of a's first: each file names itself.
    full = tmp_path / "full.npz"
    real_mkstemp = tempfile.mkstemp

    def mkstemp(prefix: str, suffix: str, dir: str) -> tuple[int, str]:
        if not prefix.startswith(".full.npz."):
            return real_mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        path = Path(dir) / f"{prefix}devfull0{suffix}"
        path.symlink_to("/dev/full")  # every write to it fails with the kernel's ENOSPC
        return os.open(path, os.O_WRONLY), str(path)

    def write_both() -> None:
        with atomic_open(full, "wb") as data, atomic_open(tmp_path / "metrics.json") as metrics:
            metrics.write("{}")
            data.write(b"x" * 10)
            data.flush()

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(WriteError) as caught:
        write_both()
    assert str(caught.value) == f"cannot write {full}: No space left on device (ENOSPC)"
    assert leftovers(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_describe_os_error_shows_temps_as_their_outputs() -> None:
    error = OSError(
        errno.ENOSPC, "No space left on device", "data/.processed.42.abcd1234.tmp/x.npz"
    )
    assert describe_os_error(error) == "data/processed/x.npz: No space left on device (ENOSPC)"
    assert describe_os_error(OSError(errno.EFBIG, "File too large")) == "File too large (EFBIG)"
    assert shown_path("data/.model.keras.7.a_b_c_d_.tmp") == "data/model.keras"
    assert shown_path("data/.notes.abcd1234.tmp") == "data/.notes.abcd1234.tmp"


def test_atomic_open_takes_only_the_write_modes(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="mode 'w' or 'wb', not 'a'"),
        atomic_open(tmp_path / "x", "a"),
    ):
        pass
    assert leftovers(tmp_path) == []


# --- write_json ---------------------------------------------------------------------------------


def test_write_json_sorted_indented_with_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"zeta": 1, "alpha": {"b": 2.5, "a": [1, 2]}})
    text = path.read_text(encoding="utf-8")
    assert text == (
        "{\n"
        '  "alpha": {\n'
        '    "a": [\n'
        "      1,\n"
        "      2\n"
        "    ],\n"
        '    "b": 2.5\n'
        "  },\n"
        '  "zeta": 1\n'
        "}\n"
    )
    assert json.loads(text) == {"zeta": 1, "alpha": {"b": 2.5, "a": [1, 2]}}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_write_json_rejects_nan_and_infinity_and_keeps_the_old_file(
    tmp_path: Path, value: float
) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"accuracy": 0.9})
    with pytest.raises(ValueError, match="JSON compliant"):
        write_json(path, {"accuracy": value})
    assert json.loads(path.read_text(encoding="utf-8")) == {"accuracy": 0.9}
    assert leftovers(tmp_path) == []


# --- save_arrays / load_arrays ------------------------------------------------------------------


def test_arrays_round_trip(tmp_path: Path) -> None:
    images = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28)
    labels = np.array([3, 7], dtype=np.uint8)
    path = tmp_path / "split.npz"
    save_arrays(path, images=images, labels=labels)
    loaded_labels, loaded_images = load_arrays(path, "labels", "images")  # any order
    assert loaded_images.dtype == np.float32
    assert loaded_labels.dtype == np.uint8
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)


def test_save_arrays_bytes_do_not_depend_on_the_clock(tmp_path: Path, monkeypatch) -> None:
    arrays = {"images": np.ones((3, 4), np.float32), "labels": np.arange(3, dtype=np.uint8)}
    saved = []
    for index, now in enumerate([1_000_000_000.0, 1_700_000_000.0]):  # 2001 and 2023
        monkeypatch.setattr(time, "time", lambda now=now: now)
        monkeypatch.setattr(time, "localtime", lambda secs=None, now=now: time.gmtime(now))
        path = tmp_path / f"save{index}.npz"
        save_arrays(path, **arrays)
        saved.append(path)
    assert saved[0].read_bytes() == saved[1].read_bytes()
    with zipfile.ZipFile(saved[0]) as archive:
        assert [info.date_time for info in archive.infolist()] == [(1980, 1, 1, 0, 0, 0)] * 2
        assert [info.compress_type for info in archive.infolist()] == [zipfile.ZIP_STORED] * 2


def test_load_arrays_refuses_pickled_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, labels=np.array([{"not": "numbers"}, None], dtype=object))
    with pytest.raises(DigitsError, match=f"cannot read arrays from {path}.*allow_pickle=False"):
        load_arrays(path, "labels")


def test_load_arrays_names_the_missing_array(tmp_path: Path) -> None:
    path = tmp_path / "split.npz"
    save_arrays(path, images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DigitsError, match="missing arrays") as caught:
        load_arrays(path, "images", "labels")
    assert str(caught.value) == f"{path}: missing arrays ['labels']; it holds ['images']"


# --- save_figure --------------------------------------------------------------------------------


def test_save_figure_bytes_are_stable_and_carry_no_software_text(tmp_path: Path) -> None:
    figure = small_figure()
    first, second, other = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    save_figure(figure, first)
    save_figure(figure, second)
    save_figure(small_figure(), other)  # a fresh but identical figure
    data = first.read_bytes()
    assert data == second.read_bytes() == other.read_bytes()

    chunk_types = [kind for kind, _ in png_chunks(data)]
    assert chunk_types[0] == b"IHDR"
    assert chunk_types[-1] == b"IEND"
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(chunk_types), chunk_types
    assert b"Software" not in data
    assert b"matplotlib" not in data.lower()


def test_save_figure_uses_the_dpi(tmp_path: Path) -> None:
    figure = small_figure()  # 2 x 1.5 inches
    save_figure(figure, tmp_path / "small.png", dpi=50)
    save_figure(figure, tmp_path / "large.png", dpi=100)
    for name, size in [("small.png", (100, 75)), ("large.png", (200, 150))]:
        header = png_chunks((tmp_path / name).read_bytes())[0][1]
        assert struct.unpack(">II", header[:8]) == size
