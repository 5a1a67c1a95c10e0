"""Class probabilities for single images, fast enough to serve: the model is called directly.

`predictor_for` runs the model with ONNX Runtime when its ONNX export (the export stage's
model.onnx) is beside the .keras file: OnnxPredictor, which never imports TensorFlow. Otherwise,
and as the reference the export is checked against, the Keras model: Predictor.
`model.predict` sets up a data pipeline on every call (about 35 ms here for one image); a
`tf.function` with a fixed input signature is traced once and then costs about 0.25 ms.
TensorFlow is imported when a Predictor is made: call `digits.determinism.pin_cpu_kernels()`
first. `prediction_json` needs no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from digits.app.model_file import check_keras_archive, read_model_file
from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES
from digits.errors import DigitsError

if TYPE_CHECKING:
    import keras

TOP_COUNT = 3


class Predictor:
    """A loaded model and its traced forward pass; safe to call from several threads."""

    runtime = "Keras (TensorFlow)"

    def __init__(self, model: keras.Model) -> None:
        import tensorflow as tf

        shapes = (tuple(model.input_shape[1:]), tuple(model.output_shape[1:]))
        if shapes != ((IMAGE_HEIGHT, IMAGE_WIDTH), (NUM_CLASSES,)):
            raise DigitsError(
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
        """Load a .keras file in safe mode. DigitsError, naming the file, if it is missing
        or not a usable model: not a regular file within the limits of digits.app.model_file,
        not a .keras archive a model of this project can be, damaged, a Lambda layer, wrong
        shapes. Keras reads the bytes that were checked (a private copy), not the path again."""
        data = read_model_file(path)
        check_keras_archive(data, path)
        try:
            with native_stderr_silenced():
                from digits.model import load_model  # imports TensorFlow
        except ImportError as error:  # an environment without Keras: the container image's
            raise DigitsError(
                f"{path}: Keras is not installed here ({error.name} is missing), so only the "
                f"model's ONNX export can run: put {onnx_beside(path).name} beside it (the "
                "export stage writes it)"
            ) from None
        try:
            scratch = tempfile.TemporaryDirectory(prefix="digits-model-")
            copy = Path(scratch.name) / "model.keras"
            copy.write_bytes(data)
        except OSError as error:  # $TMPDIR full or not writable
            raise DigitsError(
                f"{path}: cannot copy the model to {tempfile.gettempdir()}: "
                f"{error.strerror or error}"
            ) from None
        del data
        with scratch:
            try:
                model = load_model(copy)
            except DigitsError:
                raise
            except Exception as error:  # Keras' words for a file it cannot use; no traceback
                reason = str(error).split(". ")[0].strip().rstrip(".")
                raise DigitsError(f"{path}: not a usable Keras model: {reason}") from None
        try:
            return cls(model)
        except DigitsError as error:
            raise DigitsError(f"{path}: {error}") from None

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) float32 class probabilities."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_HEIGHT, IMAGE_WIDTH):
            raise ValueError(
                f"expected (N, {IMAGE_HEIGHT}, {IMAGE_WIDTH}) images, got {images.shape}"
            )
        return self._forward(images).numpy()


class OnnxPredictor:
    """The model's ONNX export run by ONNX Runtime on the CPU; safe to call from several threads
    (an InferenceSession's run is). No TensorFlow."""

    runtime = "ONNX Runtime"

    def __init__(self, data: bytes, path: str | os.PathLike[str]) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about unused initialisers
        try:
            self._session = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime's words for bytes it cannot use; no traceback
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error)
            raise DigitsError(f"{path}: not a usable ONNX model: {reason}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shapes = [value.shape[1:] for value in (*inputs, *outputs)]
        if (
            len(inputs) != 1
            or len(outputs) != 1
            or shapes != [[IMAGE_HEIGHT, IMAGE_WIDTH], [NUM_CLASSES]]
        ):
            raise DigitsError(
                f"{path}: the ONNX model maps {[v.shape for v in inputs]} -> "
                f"{[v.shape for v in outputs]}; expected one (N, {IMAGE_HEIGHT}, {IMAGE_WIDTH}) "
                f"input and one (N, {NUM_CLASSES}) output"
            )
        self._input = inputs[0].name

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> OnnxPredictor:
        """Load a .onnx file: DigitsError, naming it, if it is not a regular file within
        digits.app.model_file's size limit, or not an ONNX model of 28x28 images -> 10 classes.
        ONNX Runtime reads the bytes that were checked, not the path again."""
        return cls(read_model_file(path, suffix=ONNX_SUFFIX), path)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) float32 class probabilities."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_HEIGHT, IMAGE_WIDTH):
            raise ValueError(
                f"expected (N, {IMAGE_HEIGHT}, {IMAGE_WIDTH}) images, got {images.shape}"
            )
        return self._session.run(None, {self._input: images})[0]


ONNX_SUFFIX = ".onnx"


def onnx_beside(path: str | os.PathLike[str]) -> Path:
    """Where the export stage's ONNX file of the .keras file `path` is: same name, .onnx."""
    return Path(path).with_suffix(ONNX_SUFFIX)


def predictor_for(path: str | os.PathLike[str]) -> Predictor | OnnxPredictor:
    """The model of the .keras file `path`: with ONNX Runtime when its .onnx file is beside it
    (onnx_beside), else with Keras (call pin_cpu_kernels() first). DigitsError naming the file
    that cannot be used; a broken .onnx file is an error, not a reason to load TensorFlow."""
    onnx_path = onnx_beside(path)
    if onnx_path.exists():
        read_model_file(path)  # the .keras file must be there too: it is what the app names
        return OnnxPredictor.from_file(onnx_path)
    return Predictor.from_file(path)


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


# "Not a digit" (see not_a_digit). The rates it gives are measured by tools/served_accuracy.py
# (docs/app.md has the table); the bounds come from the first 3,000 MNIST test digits and the drawn
# and printed ones of that tool. Ink (pixels >= 0.5) covers at most 33% of the 28x28 field in
# those MNIST digits and 26% in the drawn ones; noise, a blob or a dot scaled to 20 px: 39-47%.
MAX_INK_COVERAGE = 0.35
# Separate pieces of ink (>= 0.25, 8-connected): 1 in 99.7% of those MNIST digits, 2 in the
# rest; scattered dots make 3 or more.
MAX_INK_PIECES = 2
# The model's top probability: below this it is guessing.
MIN_TOP_PROBABILITY = 0.5


def not_a_digit(image: np.ndarray, probabilities: np.ndarray) -> str | None:
    """Why a (28, 28) image in MNIST's conventions does not look like a digit, or None.

    A digit is one or two strokes of ink: not more than MAX_INK_PIECES separate pieces, covering
    at most MAX_INK_COVERAGE of the field, which the model reads with at least
    MIN_TOP_PROBABILITY. Pure noise and blobs fail the coverage, scattered dots the pieces.
    """
    coverage = float(np.mean(image >= 0.5))
    pieces = ndimage.label(image >= 0.25, structure=np.ones((3, 3)))[1]
    top = float(np.max(probabilities))
    if pieces == 0:
        return "no ink"
    if coverage > MAX_INK_COVERAGE:
        return (
            f"ink covers {coverage:.0%} of the image; digits cover at most {MAX_INK_COVERAGE:.0%}"
        )
    if pieces > MAX_INK_PIECES:
        return f"{pieces} separate pieces of ink; digits have at most {MAX_INK_PIECES}"
    if top < MIN_TOP_PROBABILITY:
        return f"the model is guessing: {top:.0%} for its best answer"
    return None


def prediction_json(probabilities: np.ndarray, image: np.ndarray) -> dict:
    """(10,) probabilities of the (28, 28) `image` -> {"digit", "probability", "probabilities",
    "top3", "not_a_digit"}: plain Python numbers rounded to 6 decimals, for printing and JSON;
    not_a_digit is None or why the image does not look like a digit."""
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
        "not_a_digit": not_a_digit(image, probabilities),
    }
