"""Class probabilities for single images, fast enough to serve: the model is called directly.

`model.predict` sets up a data pipeline on every call (about 35 ms here for one image); a
`tf.function` with a fixed input signature is traced once and then costs about 0.25 ms.
TensorFlow is imported when a Predictor is made: call `digits.determinism.pin_cpu_kernels()`
first. `describe` needs no TensorFlow.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES

if TYPE_CHECKING:
    import keras

TOP_COUNT = 3


class Predictor:
    """A loaded model and its traced forward pass; safe to call from several threads."""

    def __init__(self, model: keras.Model) -> None:
        import tensorflow as tf

        from digits.errors import PipelineError

        shapes = (tuple(model.input_shape[1:]), tuple(model.output_shape[1:]))
        if shapes != ((IMAGE_HEIGHT, IMAGE_WIDTH), (NUM_CLASSES,)):
            raise PipelineError(
                f"the model maps {model.input_shape} -> {model.output_shape}; expected "
                f"(None, {IMAGE_HEIGHT}, {IMAGE_WIDTH}) -> (None, {NUM_CLASSES})"
            )
        self.model = model
        self._forward = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((None, IMAGE_HEIGHT, IMAGE_WIDTH), tf.float32)],
            autograph=False,
        )
        self.probabilities(np.zeros((1, IMAGE_HEIGHT, IMAGE_WIDTH), np.float32))  # trace now

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Predictor:
        """Load a .keras file (safe mode; PipelineError if it is missing)."""
        from digits.model import load_model

        return cls(load_model(path))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) float32 class probabilities."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_HEIGHT, IMAGE_WIDTH):
            raise ValueError(
                f"expected (N, {IMAGE_HEIGHT}, {IMAGE_WIDTH}) images, got {images.shape}"
            )
        return self._forward(images).numpy()


def describe(probabilities: np.ndarray) -> dict:
    """(10,) probabilities -> {"digit", "probability", "probabilities", "top3"}: plain Python
    numbers rounded to 6 decimals, for printing and JSON."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (NUM_CLASSES,):
        raise ValueError(f"expected ({NUM_CLASSES},) probabilities, got {probabilities.shape}")
    rounded = [round(float(p), 6) for p in probabilities]
    # Stable sort: on a tie the smaller digit comes first.
    order = [int(d) for d in np.argsort(-probabilities, kind="stable")[:TOP_COUNT]]
    return {
        "digit": order[0],
        "probability": rounded[order[0]],
        "probabilities": rounded,
        "top3": [{"digit": d, "probability": rounded[d]} for d in order],
    }
