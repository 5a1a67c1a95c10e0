"""digits.app.model_file: a model file is checked before zipfile or Keras reads it. Every hostile
file is made here, cheaply: entries whose directory sizes lie are written with zipfile itself
(a few bytes of data, then ZipInfo.file_size set before the directory is written). Each refusal
must come within seconds and with small memory. The command line and the server:
tests/test_predict_cli.py."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from digits.app.model_file import (
    MAX_MODEL_BYTES,
    check_keras_archive,
    check_model_path,
    read_model_file,
)
from digits.errors import DigitsError

MIB = 1 << 20
GIB = 1 << 30
SMALL_ENTRIES = {"config.json": b"{}", "metadata.json": b"{}", "model.weights.h5": b"weights"}


def write_archive(
    path: Path,
    entries: list[tuple[str, bytes]],
    method: int = zipfile.ZIP_STORED,
    claimed: dict[str, int] | None = None,
) -> Path:
    """A zip of `entries` (duplicates allowed); `claimed` sets the unpacked size its directory
    states for those names, whatever the data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in entries:
                info = zipfile.ZipInfo(name)
                info.compress_type = method
                archive.writestr(info, data)
            for info in archive.infolist():
                info.file_size = (claimed or {}).get(info.filename, info.file_size)
    return path


def small_archive(path: Path, **extra: bytes) -> list[tuple[str, bytes]]:
    return [*SMALL_ENTRIES.items(), *extra.items()]


def duplicate_giants(path: Path) -> Path:
    """20,000 entries of one name, each 1 byte stored but 256 MiB in the directory: zipfile's
    testzip would read for hours, and the file is 2 MB."""
    entries = [*SMALL_ENTRIES.items(), *[("assets/big", b"x")] * 20_000]
    return write_archive(path, entries, claimed={"assets/big": 256 * MIB})


def bzip2_config(path: Path) -> Path:
    """config.json compressed with bzip2, 1 GiB unpacked as the directory says."""
    entries = list(SMALL_ENTRIES.items())
    return write_archive(path, entries, zipfile.ZIP_BZIP2, claimed={"config.json": GIB})


def deflate_bombs(path: Path) -> Path:
    """Four real deflate bombs: 255 MiB of zeros each, 260 KB compressed."""
    zeros = bytes(MIB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in SMALL_ENTRIES.items():
            archive.writestr(name, data)
        for number in range(4):
            with archive.open(f"assets/bomb{number}", "w") as entry:
                for _ in range(255):
                    entry.write(zeros)
    return path


def zip64_locator(path: Path) -> Path:
    """A small archive with a zip64 end locator before its end record."""
    data = write_archive(path, list(SMALL_ENTRIES.items())).read_bytes()
    end = data.rfind(b"PK\x05\x06")
    locator = b"PK\x06\x07" + struct.pack("<LQL", 0, 0, 1)
    path.write_bytes(data[:end] + locator + data[end:])
    return path


def damaged(path: Path, model_file: Path) -> Path:
    """The real model with one byte of its weights changed (stored entries: the CRC fails)."""
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


HOSTILE: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "20,000 duplicate 256 MiB entries": (
        lambda path, _: duplicate_giants(path),
        "its zip directory is 1,120,1",  # 20,003 entries of 56 bytes and more
    ),
    "a name twice": (
        lambda path, _: write_archive(path, [*small_archive(path), ("config.json", b"{}")]),
        "the entry 'config.json' appears twice; each name appears once",
    ),
    "65 entries": (
        lambda path, _: write_archive(
            path, [*small_archive(path), *[(f"assets/{n}", b"") for n in range(62)]]
        ),
        "65 entries; a .keras archive of this project has at most 64 (config.json, "
        "metadata.json, model.weights.h5, assets/...)",
    ),
    "1 GiB config.json, bzip2": (
        lambda path, _: bzip2_config(path),
        "'config.json' is compressed with bzip2; allowed: stored, deflated",
    ),
    "1 GiB config.json, deflated": (
        lambda path, _: write_archive(
            path, small_archive(path), zipfile.ZIP_DEFLATED, {"config.json": GIB}
        ),
        "'config.json' unpacks to 1,073,741,824 bytes; the limit for config.json is 1 MiB "
        "(1,048,576 bytes)",
    ),
    "four 255 MiB assets, deflate bombs": (
        lambda path, _: deflate_bombs(path),
        "'assets/bomb0' unpacks to 267,386,880 bytes; the limit for all of assets/ is 1 MiB",
    ),
    "assets over 1 MiB together": (
        lambda path, _: write_archive(
            path,
            small_archive(path, **{"assets/a": b"", "assets/b": b""}),
            claimed={"assets/a": 600_000, "assets/b": 600_000},
        ),
        "the assets/ entries unpack to more than 1 MiB (1,048,576 bytes), their limit together",
    ),
    "weights over 64 MiB": (
        lambda path, _: write_archive(
            path, small_archive(path), claimed={"model.weights.h5": MAX_MODEL_BYTES + 1}
        ),
        "'model.weights.h5' unpacks to 67,108,865 bytes; the limit for model.weights.h5 is "
        "64 MiB (67,108,864 bytes)",
    ),
    "over 64 MiB in all": (
        lambda path, _: write_archive(
            path, small_archive(path), claimed={"model.weights.h5": MAX_MODEL_BYTES}
        ),
        "the entries unpack to more than 64 MiB (67,108,864 bytes), the limit for a model",
    ),
    "lzma weights": (
        lambda path, _: write_archive(path, small_archive(path), zipfile.ZIP_LZMA),
        "'config.json' is compressed with lzma",
    ),
    "a python file": (
        lambda path, _: write_archive(path, small_archive(path, **{"evil.py": b"import os"})),
        "an entry named 'evil.py'; a .keras archive holds only config.json, metadata.json, "
        "model.weights.h5, assets/...",
    ),
    "a path out of assets/": (
        lambda path, _: write_archive(path, small_archive(path, **{"assets/../../x": b""})),
        "an entry named 'assets/../../x'",
    ),
    "an escape sequence in a name": (
        lambda path, _: write_archive(path, small_archive(path, **{"\x1b[2J": b""})),
        r"an entry named '\x1b[2J'",
    ),
    "no weights": (
        lambda path, _: write_archive(path, [("config.json", b"{}")]),
        "the archive has no model.weights.h5",
    ),
    "zip64": (
        lambda path, _: zip64_locator(path),
        "a zip64 archive; a .keras file of this project is a plain zip",
    ),
    "damaged": (damaged, "the archive is damaged"),
    "text": (
        lambda path, _: path.write_text("shopping list") and path,
        "a .keras file is a zip archive; this is not one (or it is truncated)",
    ),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_archive_is_refused_fast_and_small(
    kind: str, model_file: Path, tmp_path: Path
) -> None:
    make, message = HOSTILE[kind]
    path = make(tmp_path / "model.keras", model_file)
    assert path.stat().st_size < 3 * MIB  # cheap to make, whatever it claims

    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DigitsError) as refused:
            check_keras_archive(read_model_file(path), path)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert str(refused.value).startswith(f"{path}: not a usable Keras model: {message}"), str(
        refused.value
    )
    assert "\n" not in str(refused.value)
    assert seconds < 2, f"{seconds:.1f} s"
    assert peak < 12 * MIB, f"{peak / MIB:.0f} MiB"  # the file's bytes, and its directory


def test_the_projects_own_model_passes(model_file: Path) -> None:
    """A model saved by the project's save_model (the test's tiny one; the app's CNN has the
    same three entries, 10.5 MB)."""
    check_keras_archive(read_model_file(model_file), model_file)
    check_model_path(model_file)
    with zipfile.ZipFile(model_file) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]


def test_assets_are_allowed_within_their_limit(model_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "with-assets.keras"
    with zipfile.ZipFile(model_file) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("assets/", b"")
        target.writestr("assets/layer/vocabulary.txt", b"a\nb\n" * 1000)
    check_keras_archive(read_model_file(path), path)


def special_file(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "model.keras"
    if kind == "/dev/zero via a symlink":
        path.symlink_to("/dev/zero")
    elif kind == "a FIFO":
        os.mkfifo(path)
    elif kind == "a directory":
        path.mkdir()
    elif kind == "over 64 MiB":
        with open(path, "wb") as file:  # sparse: no disk space used
            file.truncate(MAX_MODEL_BYTES + 1)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("/dev/zero via a symlink", "it is a character device; a model is a regular .keras file"),
        ("a FIFO", "it is a FIFO; a model is a regular .keras file of at most 64 MiB"),
        ("a directory", "it is a directory; a model is a regular .keras file"),
        (
            "over 64 MiB",
            "67,108,865 bytes; a model file of this project is at most 64 MiB (67,108,864 bytes)",
        ),
    ],
)
def test_only_a_regular_file_of_bounded_size_is_read(
    kind: str, message: str, tmp_path: Path
) -> None:
    """Refused from os.stat, before any open: /dev/zero is never read, a FIFO never opened."""
    path = special_file(kind, tmp_path)
    for check in (read_model_file, check_model_path):
        started = time.perf_counter()
        with pytest.raises(DigitsError) as refused:
            check(path)
        assert time.perf_counter() - started < 1
        assert str(refused.value).startswith(f"{path}: not a usable Keras model: {message}")


def test_a_missing_file_and_a_wrong_name(tmp_path: Path, model_file: Path) -> None:
    with pytest.raises(DigitsError, match="does not exist: make it with `dvc repro`"):
        read_model_file(tmp_path / "none.keras")
    renamed = tmp_path / "model.h5"
    renamed.write_bytes(model_file.read_bytes())
    with pytest.raises(DigitsError, match=r"model.h5: not a .keras file \(Keras 3 saves"):
        read_model_file(renamed)
