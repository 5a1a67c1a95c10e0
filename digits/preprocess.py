"""Scale images, one-hot encode labels and hold out a stratified validation split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from digits.dataset import NUM_CLASSES


def scale_images(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 in 0..255 -> (N, 28, 28) float32 in [0, 1]."""
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    return images.astype(np.float32) / np.float32(255)


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(N,) integer labels in 0..num_classes-1 -> (N, num_classes) float32 one-hot rows."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}"
        )
    return np.eye(num_classes, dtype=np.float32)[labels]


def split_train_validation(
    images: np.ndarray, labels: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split that keeps each digit's share equal in both parts.

    Returns (train_images, train_labels, validation_images, validation_labels).
    """
    train_images, validation_images, train_labels, validation_labels = train_test_split(
        images, labels, test_size=validation_fraction, random_state=seed, stratify=labels
    )
    return train_images, train_labels, validation_images, validation_labels
