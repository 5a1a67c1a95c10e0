"""Synthetic MNIST in each of its forms: IDX bytes (a reference encoder, independent of
digits.idx), uint8 digits as the IDX files hold them, and float splits as data/processed holds
them."""

from __future__ import annotations

import struct

import numpy as np

IDX_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of `array`: 0x00 0x00, type code, ndim, big-endian uint32 sizes, values."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_TYPE_CODES[array.dtype], array.ndim])
    sizes = struct.pack(f">{array.ndim}I", *array.shape)
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 28, 28) uint8 images and (count,) uint8 labels, as the IDX files hold them.

    Every digit appears (count // 10 times or more). Each image is dim noise plus a bright 4x4
    block at a place that depends only on the digit (two rows of five), so a tiny network learns
    them in an epoch or two.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for index, digit in enumerate(labels):
        row, column = 2 + 12 * (digit // 5), 2 + 5 * (digit % 5)
        images[index, row : row + 4, column : column + 4] = 255
    return images, labels


def synthetic_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same digits as data/processed holds them: (count, 28, 28) float32 in [0, 1] and
    (count, 10) float32 one-hot labels."""
    images, labels = synthetic_digits(count, seed)
    return images.astype(np.float32) / np.float32(255), np.eye(10, dtype=np.float32)[labels]
