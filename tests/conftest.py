"""Process-wide test setup, and a tiny learnable stand-in for data/processed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers.synthetic import synthetic_split

from digits.dataset import save_split

# Before any test imports TensorFlow: the stages' pin_cpu_kernels() refuses to run after
# TensorFlow was imported without this, and the oneDNN/CPU banners only clutter the output.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def synthetic_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (images, labels): 300 train, 100 validation, 100 test (don't modify them)."""
    sizes = {"train": 300, "validation": 100, "test": 100}
    return {
        split: synthetic_split(count, seed) for seed, (split, count) in enumerate(sizes.items())
    }


@pytest.fixture
def processed_dir(tmp_path: Path, synthetic_data: dict) -> Path:
    """A data/processed stand-in: train/validation/test.npz holding `images` and `labels`."""
    folder = tmp_path / "processed"
    folder.mkdir()
    for split, (images, labels) in synthetic_data.items():
        save_split(folder, split, images, labels)
    return folder


@pytest.fixture(scope="session")
def tiny_model(synthetic_data: dict):
    """An MLP (784 -> 32 -> 10) that learns the synthetic blocks in a second. Built here, not
    with digits.model.build_model: the serving tests are about any (N, 28, 28) -> (N, 10) model,
    not about the training params. Imports Keras only when a test asks for it."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
    model.fit(*synthetic_data["train"], epochs=5, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Path:
    """tiny_model saved as a .keras file, as the train stage saves models."""
    from digits.model import save_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(tiny_model, path)
    return path
