"""Strict parser for the IDX format that MNIST ships in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
then one big-endian uint32 size per dimension, then exactly that many values, big-endian, in C
order, and nothing after them. Every check here names the file, the value it found and what is
allowed: a truncated download or the wrong file renamed into place must stop the pipeline with a
message a user can act on, not with a reshape error three stages later.

`parse_*` are pure functions of bytes; `read_split` is the one function that touches files.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES
from digits.errors import DigitsError

# Type code -> dtype of each value as stored (big-endian), from the IDX specification.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
UINT8_TYPE_CODE = 0x08  # what MNIST uses for both images and labels
MAGIC_BYTES = 4
DIMENSION_SIZE_BYTES = 4
# numpy 1.x's limit (numpy 2 allows 64); MNIST files have 1 (labels) or 3 (images) dimensions.
MAX_DIMENSIONS = 32
# Refuse to read anything larger: MNIST's largest file (training images) is 47,040,016 bytes.
MAX_FILE_BYTES = 100_000_000

_ALLOWED_TYPES = ", ".join(f"0x{code:02X} ({dtype.name})" for code, dtype in IDX_DTYPES.items())
_TYPE_CODE_BY_NAME = {dtype.name: code for code, dtype in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxError(DigitsError):
    """An IDX file that is malformed, or well-formed but not what MNIST needs."""


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Decode one IDX file's bytes into an array of its declared type and shape.

    `source` (usually the file's path) names the file in every error message. Single-byte types
    (uint8, int8) come back as a read-only view of `data` with no copy: safe, because `bytes` is
    immutable (any other buffer, such as a bytearray, is copied first, so later writes to it
    cannot change the result). Multi-byte types come back as a new native-byte-order array.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) < MAGIC_BYTES:
        raise IdxError(
            f"{source}: header truncated: file is {len(data)} bytes, shorter than the "
            f"{MAGIC_BYTES}-byte IDX magic number"
        )
    first, second, type_code, ndim = data[:MAGIC_BYTES]
    if first or second:
        hint = " (it looks gzip-compressed: decompress it first)" if data[:2] == _GZIP_MAGIC else ""
        raise IdxError(
            f"{source}: magic number starts with bytes 0x{first:02X} 0x{second:02X}; "
            f"an IDX file starts with 0x00 0x00{hint}"
        )
    dtype = IDX_DTYPES.get(type_code)
    if dtype is None:
        raise IdxError(
            f"{source}: unknown type code 0x{type_code:02X} in the magic number; "
            f"allowed: {_ALLOWED_TYPES}"
        )
    if not 1 <= ndim <= MAX_DIMENSIONS:
        raise IdxError(
            f"{source}: number of dimensions is {ndim} in the magic number; "
            f"allowed: 1..{MAX_DIMENSIONS}"
        )
    header_bytes = MAGIC_BYTES + DIMENSION_SIZE_BYTES * ndim
    if len(data) < header_bytes:
        raise IdxError(
            f"{source}: header truncated: file is {len(data)} bytes, but {ndim} dimension "
            f"sizes need a {header_bytes}-byte header"
        )
    shape: tuple[int, ...] = struct.unpack_from(f">{ndim}I", data, MAGIC_BYTES)

    # Python ints: no overflow however large the declared sizes are.
    expected_bytes = math.prod(shape) * dtype.itemsize
    payload_bytes = len(data) - header_bytes
    if payload_bytes < expected_bytes:
        raise IdxError(
            f"{source}: payload too short: {payload_bytes:,} bytes after the header, but shape "
            f"{shape} of {dtype.name} needs exactly {expected_bytes:,} bytes (truncated file?)"
        )
    if payload_bytes > expected_bytes:
        raise IdxError(
            f"{source}: trailing bytes: {payload_bytes:,} bytes after the header, but shape "
            f"{shape} of {dtype.name} needs exactly {expected_bytes:,} bytes "
            f"({payload_bytes - expected_bytes:,} extra)"
        )
    # An empty array can still declare sizes numpy cannot represent, e.g. (0, 2**32-1, 2**32-1).
    nonzero_bytes = math.prod(size for size in shape if size) * dtype.itemsize
    if nonzero_bytes > np.iinfo(np.intp).max:
        raise IdxError(
            f"{source}: dimension sizes {shape} are too large for an array, even an empty one"
        )

    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_bytes)
    if dtype.itemsize > 1:
        values = values.astype(dtype.newbyteorder("="))  # big-endian on disk -> native
    return values.reshape(shape)


def parse_images(data: bytes, source: str) -> np.ndarray:
    """IDX bytes -> (N, 28, 28) uint8 images; anything else is an IdxError naming `source`."""
    images = parse_idx(data, source)
    _require_uint8(images, source, "images")
    if images.ndim != 3:
        raise IdxError(
            f"{source}: images have {images.ndim} dimensions, shape {images.shape}; "
            "allowed: 3 (count, rows, columns)"
        )
    rows, columns = images.shape[1:]
    if (rows, columns) != (IMAGE_HEIGHT, IMAGE_WIDTH):
        raise IdxError(
            f"{source}: images are {rows}x{columns} (rows x columns); "
            f"allowed: {IMAGE_HEIGHT}x{IMAGE_WIDTH}"
        )
    return images  # (N, 28, 28) uint8


def parse_labels(data: bytes, source: str) -> np.ndarray:
    """IDX bytes -> (N,) uint8 labels in 0..9; anything else is an IdxError naming `source`."""
    labels = parse_idx(data, source)
    _require_uint8(labels, source, "labels")
    if labels.ndim != 1:
        raise IdxError(
            f"{source}: labels have {labels.ndim} dimensions, shape {labels.shape}; "
            "allowed: 1 (count)"
        )
    out_of_range = np.flatnonzero(labels >= NUM_CLASSES)  # uint8: never below 0
    if out_of_range.size:
        index = int(out_of_range[0])
        raise IdxError(
            f"{source}: label {labels[index]} at index {index} is outside 0..{NUM_CLASSES - 1} "
            f"({out_of_range.size:,} of {labels.size:,} labels are out of range)"
        )
    return labels  # (N,) uint8


def read_split(
    images_path: Path, labels_path: Path, *, max_file_bytes: int = MAX_FILE_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's two IDX files -> ((N, 28, 28) uint8 images, (N,) uint8 labels).

    Each file is refused before it is read if it is larger than `max_file_bytes`; the split must
    hold at least one image and exactly one label per image.
    """
    images = parse_images(_read_file(images_path, max_file_bytes), str(images_path))
    labels = parse_labels(_read_file(labels_path, max_file_bytes), str(labels_path))
    if len(images) != len(labels):
        raise IdxError(
            f"{images_path}: image count {len(images):,} does not match the label count "
            f"{len(labels):,} in {labels_path}; each image needs exactly one label"
        )
    if len(images) == 0:
        raise IdxError(f"{images_path}: holds 0 images; a split needs at least one")
    return images, labels


def _require_uint8(values: np.ndarray, source: str, what: str) -> None:
    if values.dtype != np.uint8:
        code = _TYPE_CODE_BY_NAME[values.dtype.name]
        raise IdxError(
            f"{source}: type code 0x{code:02X} ({values.dtype.name}); "
            f"{what} must be type code 0x{UINT8_TYPE_CODE:02X} (uint8)"
        )


def _read_file(path: Path, max_file_bytes: int) -> bytes:
    """The whole file, refused up front (from its size on disk) if it is over the limit."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > max_file_bytes:
                raise _too_large(path, size, max_file_bytes)
            data = file.read(max_file_bytes + 1)  # +1: notice a file that grew since fstat
    except OSError as error:
        raise IdxError(f"{path}: cannot read the file: {error.strerror or error}") from error
    if len(data) > max_file_bytes:
        raise _too_large(path, len(data), max_file_bytes)
    return data


def _too_large(path: Path, size: int, max_file_bytes: int) -> IdxError:
    return IdxError(
        f"{path}: file size {size:,} bytes is over the {max_file_bytes:,}-byte limit for one "
        "IDX file (MNIST's largest is 47,040,016 bytes); is it the right file?"
    )
