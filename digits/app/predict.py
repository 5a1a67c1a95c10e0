"""Class probabilities for single images, fast enough to serve: the model is called directly.

`model.predict` sets up a data pipeline on every call (about 35 ms here for one image); a
`tf.function` with a fixed input signature is traced once and then costs about 0.25 ms.
TensorFlow is imported when a Predictor is made: call `digits.determinism.pin_cpu_kernels()`
first. `describe` needs no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES
from digits.errors import PipelineError

if TYPE_CHECKING:
    import keras

TOP_COUNT = 3


class Predictor:
    """A loaded model and its traced forward pass; safe to call from several threads."""

    def __init__(self, model: keras.Model) -> None:
        import tensorflow as tf

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
        """Load a .keras file in safe mode. PipelineError, naming the file, if it is missing
        or not a usable model (not a .keras archive, damaged, a Lambda layer, wrong shapes)."""
        check_model_archive(path)
        with native_stderr_silenced():
            from digits.model import load_model  # imports TensorFlow
        try:
            model = load_model(path)
        except PipelineError:
            raise
        except Exception as error:  # Keras' words for a file it cannot use; no traceback
            reason = str(error).split(". ")[0].strip().rstrip(".")
            raise PipelineError(f"{path}: not a usable Keras model: {reason}") from None
        try:
            return cls(model)
        except PipelineError as error:
            raise PipelineError(f"{path}: {error}") from None

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) float32 class probabilities."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_HEIGHT, IMAGE_WIDTH):
            raise ValueError(
                f"expected (N, {IMAGE_HEIGHT}, {IMAGE_WIDTH}) images, got {images.shape}"
            )
        return self._forward(images).numpy()


def check_model_archive(path: str | os.PathLike[str]) -> None:
    """What can be checked without TensorFlow: a .keras file is a zip archive holding
    config.json. A missing file is left to digits.model.load_model's message."""
    path = Path(path)
    if not path.exists():
        return
    if path.suffix != ".keras":
        raise PipelineError(f"{path}: not a .keras file (Keras 3 saves models as NAME.keras)")
    problem = "a .keras file is a zip archive; this is not one (or it is truncated)"
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                problem = "the archive has no config.json"
            elif archive.testzip() is None:
                return
            else:
                problem = "the archive is damaged"
    except (zipfile.BadZipFile, OSError, EOFError):
        pass
    raise PipelineError(f"{path}: not a usable Keras model: {problem}")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null for the block. TensorFlow writes two oneDNN INFO
    lines there from C++ as it is imported, before TF_CPP_MIN_LOG_LEVEL applies; Python
    exceptions still reach the user (they are printed after the block)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


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
