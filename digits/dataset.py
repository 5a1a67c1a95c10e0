"""Facts about the MNIST format and the data layout that every stage shares (one place for each)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digits.files import load_arrays, save_arrays

IMAGE_HEIGHT = 28
IMAGE_WIDTH = 28
NUM_CLASSES = 10

# The four files of every MNIST mirror, by split: (images, labels). Fashion-MNIST uses the same.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
RAW_FILE_NAMES: tuple[str, ...] = tuple(name for pair in SPLIT_FILES.values() for name in pair)

# A split on disk (data/interim and data/processed): `<folder>/<split>.npz` holding two arrays,
# `images` (N, 28, 28) and `labels`. Labels are integers (N,) in data/interim, as the IDX files
# have them, and one-hot (N, 10) float32 in data/processed, the form categorical cross-entropy
# trains on: preprocess makes the one-hot form, and explore and evaluate take it back to digits
# with argmax.
SPLIT_ARRAYS = ("images", "labels")


def split_path(folder: str | os.PathLike[str], split: str) -> Path:
    return Path(folder) / f"{split}.npz"


def save_split(
    folder: str | os.PathLike[str], split: str, images: np.ndarray, labels: np.ndarray
) -> None:
    """Write one split (atomically; stable bytes)."""
    save_arrays(split_path(folder, split), **dict(zip(SPLIT_ARRAYS, (images, labels), strict=True)))


def load_split(folder: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split; DigitsError naming the file if it is missing or bad."""
    images, labels = load_arrays(split_path(folder, split), *SPLIT_ARRAYS)
    return images, labels
