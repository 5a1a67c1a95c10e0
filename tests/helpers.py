"""What many test modules need: synthetic MNIST in each of its forms, the real params with a
tiny network, and the stages' argument lists. (A helper module, not a test module: test modules
import from here, never from each other.)"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from digits.params import TrainParams

PROJECT = Path(__file__).parents[1]
PARAMS = PROJECT / "params.yaml"
COMMITTED_PARAMS: dict[str, Any] = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))

# A network small and quick enough to learn the synthetic digits in a second or two: one Dense
# layer of 32 (and, for architecture=cnn, two thin convolution blocks), one epoch of batches of 32.
TINY_TRAIN = {
    "hidden_units": [32],
    "conv_filters": [4, 8],
    "learning_rate": 0.01,
    "epochs": 1,
    "batch_size": 32,
}


def tiny_train_params(**overrides: object) -> TrainParams:
    """The committed train section with TINY_TRAIN and `overrides` applied, validated."""
    return TrainParams(**{**COMMITTED_PARAMS["train"], **TINY_TRAIN, **overrides})


def write_params(folder: Path, **sections: dict[str, Any]) -> Path:
    """folder/params.yaml: the committed params, each named section updated with its dict."""
    params = {name: dict(values) for name, values in COMMITTED_PARAMS.items()}
    for name, values in sections.items():
        params[name].update(values)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def trained_model(params: TrainParams, data: dict, validation: tuple | None = None) -> tuple:
    """(model, history): a fresh model trained on `data`'s train split as stages.train does it,
    seeded in a clean Keras session (Keras numbers auto-named layers per process, and the names
    go into the saved file; the stage builds one model per process). Validates on `data`'s
    validation split unless `validation` is given. Imports TensorFlow when called."""
    import keras

    from digits.determinism import seed_everything
    from digits.model import Network, build_model, train_model

    keras.backend.clear_session()
    seed_everything(params.seed)
    model = build_model(Network.from_params(params))
    validation = data["validation"] if validation is None else validation
    history = train_model(model, params, data["train"], validation, verbose=0)
    return model, history


# Synthetic MNIST

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


# The stages' command lines, with every output under `out`


def train_argv(processed: Path, out: Path, params: Path) -> list[str]:
    return [
        str(processed),
        "--params",
        str(params),
        "--model",
        str(out / "model" / "model.keras"),
        "--history",
        str(out / "plots" / "train" / "history.csv"),
        "--curves",
        str(out / "plots" / "train" / "training_curves.png"),
        "--metrics",
        str(out / "metrics" / "train.json"),
        "--live",
        str(out / "dvclive"),
    ]


def evaluate_argv(processed: Path, out: Path, params: Path, model: Path | None = None) -> list[str]:
    return [
        str(processed),
        "--params",
        str(params),
        "--model",
        str(model or out / "model" / "model.keras"),
        "--metrics",
        str(out / "metrics" / "evaluate.json"),
        "--plots",
        str(out / "plots" / "evaluate"),
    ]
