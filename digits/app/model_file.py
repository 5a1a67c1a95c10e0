"""A model file checked before zipfile or Keras reads it: what a .keras file of this project can be.

The app's model (the CNN of app-model/recipe.yaml) is a 10.5 MB file, the pipeline's MLP 1.3 MB;
both are zip archives of three stored entries (sizes from `digits.model.save_model` on 2-core
x86-64, no GPU):

    config.json        16 KB (CNN), 4.6 KB (MLP)
    metadata.json      27 bytes
    model.weights.h5   10.5 MB (CNN, 871,210 weights with Adam's two moments), 1.3 MB (MLP)

The limits leave room for models six times the app's. A file is refused, naming it, what is
wrong and the limit, when it is:

- not a regular file (a device such as /dev/zero, a FIFO, a socket, a directory; symlinks are
  followed): refused from os.stat, before any open, and opened with O_NONBLOCK so that a path
  swapped for a FIFO since cannot block;
- over MAX_MODEL_BYTES (64 MiB); it is read once, into memory, and only those bytes are checked
  and loaded;
- a zip whose directory is over MAX_DIRECTORY_BYTES (64 KiB, read from the end record before
  zipfile parses it), or a zip64 archive (for archives over 4 GiB or 65,535 entries);
- an archive of more than MAX_ENTRIES (64) entries, a name twice, a name a Keras 3 .keras file
  does not hold (config.json, metadata.json, model.weights.h5, assets/...), no config.json or
  model.weights.h5, an entry compressed other than stored or deflated, an encrypted entry;
- an entry that unpacks (as the directory says) to more than its limit in ENTRY_LIMITS, assets
  together over MAX_ASSETS_BYTES, or all entries together over MAX_MODEL_BYTES;
- damaged: an entry whose content does not match its CRC (every entry is read once, within the
  limits above, by zipfile's testzip).

zipfile never reads more of an entry than the size the directory gives, so checking those sizes
bounds what Keras unpacks, in memory and in $TMPDIR. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

from digits.errors import DigitsError

KIB = 1 << 10
MIB = 1 << 20

MAX_MODEL_BYTES = 64 * MIB  # the file, and all its entries unpacked together
MAX_DIRECTORY_BYTES = 64 * KIB  # the zip's central directory: 64 entries with long names fit
MAX_ENTRIES = 64
ENTRY_LIMITS = {  # unpacked bytes, per entry
    "config.json": 1 * MIB,
    "metadata.json": 64 * KIB,
    "model.weights.h5": MAX_MODEL_BYTES,
}
REQUIRED_ENTRIES = ("config.json", "model.weights.h5")
ASSETS = "assets/"  # Keras writes a layer's files (vocabularies, ...) under this folder
MAX_ASSETS_BYTES = 1 * MIB  # this project's models have none
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
OTHER_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
KERAS_NAMES = "config.json, metadata.json, model.weights.h5, assets/..."

# The zip end records (APPNOTE.TXT 4.3.16, 4.3.15): zipfile looks for them the same way.
_END_RECORD = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_MAX_COMMENT = 0xFFFF

FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def size_text(size: int) -> str:
    """67108864 -> '64 MiB (67,108,864 bytes)'."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name} ({size:,} bytes)"
    return f"{size:,} bytes"


def refuse(path: str | os.PathLike[str], problem: str) -> DigitsError:
    return DigitsError(f"{path}: not a usable Keras model: {problem}")


def read_model_file(path: str | os.PathLike[str], suffix: str = ".keras") -> bytes:
    """The bytes of the .keras (or `suffix`) file at `path` (symlinks followed): a regular file
    of at most MAX_MODEL_BYTES, opened only once os.stat says so. DigitsError naming the file
    otherwise."""
    path = Path(path)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise DigitsError(
            f"model file {path} does not exist: make it with `dvc repro` or fetch it with "
            "`dvc pull`"
        ) from None
    except OSError as error:
        raise refuse(path, f"cannot read it: {error.strerror or error}") from None
    if path.suffix != suffix:
        saved_as = " (Keras 3 saves models as NAME.keras)" if suffix == ".keras" else ""
        raise DigitsError(f"{path}: not a {suffix} file{saved_as}")
    check_file_status(path, status)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, the open returns
        # at once and the fstat below refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(descriptor, "rb") as file:
            status = os.fstat(file.fileno())
            check_file_status(path, status)
            data = file.read(status.st_size)
            changed = len(data) != status.st_size or file.read(1) != b""
    except OSError as error:
        raise refuse(path, f"cannot read it: {error.strerror or error}") from None
    if changed:
        raise refuse(path, "it changed while it was read")
    return data


def check_file_status(path: Path, status: os.stat_result) -> None:
    """A regular file of at most MAX_MODEL_BYTES, from its os.stat / os.fstat."""
    if not stat.S_ISREG(status.st_mode):
        kind = FILE_KINDS.get(stat.S_IFMT(status.st_mode), "not a regular file")
        raise refuse(
            path,
            f"it is {kind}; a model is a regular .keras file of at most "
            f"{size_text(MAX_MODEL_BYTES)}",
        )
    if status.st_size > MAX_MODEL_BYTES:
        raise refuse(
            path,
            f"{status.st_size:,} bytes; a model file of this project is at most "
            f"{size_text(MAX_MODEL_BYTES)}",
        )


def check_model_path(path: str | os.PathLike[str]) -> None:
    """What os.stat can tell without opening: an existing regular file within the size limit
    (for reading a model's md5 safely, e.g. in --help)."""
    try:
        status = os.stat(path)
    except OSError as error:
        raise refuse(path, f"cannot read it: {error.strerror or error}") from None
    check_file_status(Path(path), status)


def directory_size(data: bytes) -> int | None:
    """The central directory's size in bytes, from the end record that zipfile would use; None
    when there is no end record (zipfile then says it is not a zip). Refuses zip64 archives."""
    start = len(data) - _END_RECORD.size
    if not (start >= 0 and data[start:].startswith(_END_SIGNATURE) and data[-2:] == b"\0\0"):
        tail_start = max(len(data) - _END_RECORD.size - _MAX_COMMENT, 0)
        start = data.rfind(_END_SIGNATURE, tail_start)
        if start < 0 or len(data) - start < _END_RECORD.size:
            return None
    locator = start - _ZIP64_LOCATOR_SIZE
    if locator >= 0 and data[locator:].startswith(_ZIP64_LOCATOR_SIGNATURE):
        return -1
    return _END_RECORD.unpack_from(data, start)[5]


def check_keras_archive(data: bytes, path: str | os.PathLike[str]) -> None:
    """Refuse (DigitsError naming `path`) an archive a model of this project cannot be: see the
    module's docstring. Reads the directory first, then every entry once (testzip)."""
    size = directory_size(data)
    not_zip = "a .keras file is a zip archive; this is not one (or it is truncated)"
    if size is None:
        raise refuse(path, not_zip)
    if size < 0:
        raise refuse(path, "a zip64 archive; a .keras file of this project is a plain zip")
    if size > MAX_DIRECTORY_BYTES:
        raise refuse(
            path,
            f"its zip directory is {size:,} bytes; at most {size_text(MAX_DIRECTORY_BYTES)} "
            f"(a .keras archive lists a few entries: {KERAS_NAMES})",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, struct.error, EOFError):
        raise refuse(path, not_zip) from None
    with archive:
        check_entries(archive.infolist(), path)
        try:
            damaged = archive.testzip()
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError):
            damaged = "?"
    if damaged is not None:
        raise refuse(path, "the archive is damaged")


def check_entries(entries: list[zipfile.ZipInfo], path: str | os.PathLike[str]) -> None:
    """Count, names, compression and unpacked sizes of an archive's entries (as its directory
    gives them)."""
    if len(entries) > MAX_ENTRIES:
        raise refuse(
            path,
            f"{len(entries):,} entries; a .keras archive of this project has at most "
            f"{MAX_ENTRIES} ({KERAS_NAMES})",
        )
    seen: set[str] = set()
    assets = total = 0
    for entry in entries:
        name = entry.filename
        if name in seen:
            raise refuse(path, f"the entry {name!r} appears twice; each name appears once")
        seen.add(name)
        if name in ENTRY_LIMITS:
            limit = ENTRY_LIMITS[name]
        elif is_asset_name(name):
            limit = MAX_ASSETS_BYTES
            assets += entry.file_size
        else:
            raise refuse(
                path, f"an entry named {name!r}; a .keras archive holds only {KERAS_NAMES}"
            )
        if entry.compress_type not in METHODS:
            method = OTHER_METHODS.get(entry.compress_type, f"method {entry.compress_type}")
            raise refuse(
                path,
                f"{name!r} is compressed with {method}; allowed: {', '.join(METHODS.values())}",
            )
        if entry.flag_bits & 0x1:
            raise refuse(path, f"{name!r} is encrypted")
        if entry.file_size > limit:
            what = "all of assets/" if is_asset_name(name) else name
            raise refuse(
                path,
                f"{name!r} unpacks to {entry.file_size:,} bytes; the limit for {what} is "
                f"{size_text(limit)}",
            )
        total += entry.file_size
        if assets > MAX_ASSETS_BYTES:
            raise refuse(
                path,
                f"the assets/ entries unpack to more than {size_text(MAX_ASSETS_BYTES)}, "
                "their limit together",
            )
        if total > MAX_MODEL_BYTES:
            raise refuse(
                path,
                f"the entries unpack to more than {size_text(MAX_MODEL_BYTES)}, the limit "
                "for a model of this project",
            )
    missing = [name for name in REQUIRED_ENTRIES if name not in seen]
    if missing:
        raise refuse(path, f"the archive has no {' and no '.join(missing)}")


def is_asset_name(name: str) -> bool:
    """'assets/', 'assets/vocabulary.txt', 'assets/layer/' (a folder): a relative path under
    assets/, without '..' or backslashes."""
    if name == ASSETS:
        return True
    if not name.startswith(ASSETS) or "\\" in name:
        return False
    parts = name[len(ASSETS) :].removesuffix("/").split("/")
    return all(part not in ("", ".", "..") for part in parts)
