"""Atomic, byte-deterministic writers and safe readers for every artifact the pipeline makes.

Each writer goes to a temp file in the destination's folder and renames it into place only on
success, so a crash never leaves a plausible half-written file at the final path. A process
killed outright (SIGKILL, the OOM killer) cannot remove its temp file: the temp's name holds the
writer's process id, so the next write of the same path, or the start of any stage
(`remove_leftover_temps` on the folders it names), removes it once that process has ended.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from digits.errors import DigitsError


def _temp_prefix(final: Path) -> str:
    """`.<name>.<pid>.`: mkstemp adds 8 random characters and the suffix `.tmp`."""
    return f".{final.name}.{os.getpid()}."


# `.<name>.<pid>.<8 random characters>.tmp`; names made before the pid was added lack `<pid>.`
_RANDOM_AND_SUFFIX = r"\.[a-z0-9_]{8}\.tmp"
_ANY_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>[1-9][0-9]{0,9})" + _RANDOM_AND_SUFFIX)


class WriteError(DigitsError):
    """Writing an output failed (a full disk, a file size limit, a read-only file system)."""


def describe_os_error(error: OSError) -> str:
    """One line: 'data/processed/train.npz: No space left on device (ENOSPC)'; a temp's path
    is shown as the output it stands for."""
    code = errno.errorcode.get(error.errno or 0)
    text = f"{error.strerror} ({code})" if error.strerror and code else str(error)
    return f"{shown_path(error.filename)}: {text}" if error.filename is not None else text


def shown_path(path: str | bytes | os.PathLike) -> str:
    """`path` with each temp of an atomic writer in it named as its output:
    data/.processed.123.abcd1234.tmp/train.npz -> data/processed/train.npz."""
    parts = Path(os.fsdecode(path)).parts
    shown = [match["name"] if (match := _ANY_TEMP.fullmatch(p)) else p for p in parts]
    return str(Path(*shown)) if shown else ""


class _NamedFileIO(io.FileIO):
    """A file whose failed writes say which output they were for, in a WriteError: an OSError
    from write() names no file, and the writer nearest to it in a `with` is not always it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "w")
        self.shown = shown_path(path)

    def write(self, data: Any) -> int | None:
        try:
            return super().write(data)
        except OSError as error:
            raise WriteError(f"cannot write {self.shown}: {describe_os_error(error)}") from error


def remove_stale_temps(final: Path) -> None:
    """Delete the temp files or folders that a killed writer of `final` left beside it: those
    whose process has ended, and those named without a process id (by older code)."""
    pattern = re.compile(
        re.escape(f".{final.name}") + r"(?:\.(?P<pid>[1-9][0-9]{0,9}))?" + _RANDOM_AND_SUFFIX
    )
    if final.parent.is_dir():
        _remove_ended(final.parent, pattern)


def remove_leftover_temps(folder: Path) -> list[Path]:
    """Delete every atomic writer's temp in `folder` (whatever its final name) whose process
    has ended, e.g. `data/.processed.<pid>.<random>.tmp` of a preprocess killed by SIGKILL;
    return what was deleted. A temp of a running process (a stage running beside this one) is
    kept, and so is anything not named like the writers' temps."""
    return _remove_ended(folder, _ANY_TEMP) if folder.is_dir() else []


def _remove_ended(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    removed = []
    for leftover in sorted(folder.iterdir()):
        match = pattern.fullmatch(leftover.name)
        if not match or (match["pid"] and _running(int(match["pid"]))):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this machine (if the id has been reused since, the
    temp is kept: never a wrong deletion, at worst a late one)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OverflowError:  # not a possible process id
        return False
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`: renamed to `path` if the block succeeds, else deleted."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(final), suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file for writing ("w" or "wb") that replaces `path` only when the block
    succeeds; a failed write raises WriteError naming `path`."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes new files: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp:
        # what open(tmp, mode) builds, on a file that names `path` when a write fails
        buffered = io.BufferedWriter(_NamedFileIO(tmp))
        file = buffered if mode == "wb" else io.TextIOWrapper(buffered, encoding="utf-8")
        with file:
            yield file


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; it replaces `path` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(final)
    prefix = _temp_prefix(final)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
    try:
        try:
            yield tmp
        except OSError as error:
            if error.filename is not None:
                raise
            # a write that names no file (e.g. pandas' to_csv into the folder): name the folder
            raise WriteError(
                f"cannot write {shown_path(final)}: {describe_os_error(error)}"
            ) from error
        os.chmod(tmp, 0o755)
        if final.exists():
            # Two renames, then the slow delete: `path` is missing for a moment, not for as long
            # as deleting the old folder takes.
            previous = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
            os.replace(final, previous)
            os.replace(tmp, final)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """JSON with sorted keys, two-space indent and a trailing newline: stable bytes for git."""
    with atomic_open(path) as f:
        json.dump(data, f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")


def save_arrays(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """An uncompressed .npz (np.savez writes fixed zip metadata, so bytes are stable)."""
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def load_arrays(path: str | os.PathLike[str], *names: str) -> tuple[np.ndarray, ...]:
    """Load exactly the named arrays from an .npz; never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in names if name not in npz.files]
            if missing:
                raise DigitsError(f"{path}: missing arrays {missing}; it holds {sorted(npz.files)}")
            return tuple(npz[name] for name in names)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DigitsError(f"cannot read arrays from {path}: {error}") from error


def save_figure(figure: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """A matplotlib figure as PNG with no software/version metadata (stable bytes)."""
    with atomic_open(path, "wb") as f:
        figure.savefig(f, format="png", dpi=dpi, metadata={"Software": None})
