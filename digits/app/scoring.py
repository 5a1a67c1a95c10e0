"""How well a reader of digits reads labelled pictures (digits.app.samples): the share read
right, overall and per digit, and the share flagged "not a digit".

A reader is any function from a picture to the app's answer (digits.app.predict.describe:
{"digit", "not_a_digit", ...}) that raises ImageError for a picture it refuses (a blank one):
the server through its API (tools/served_accuracy.py), or a model in this process
(`model_reader`), as the page would read the pictures. No TensorFlow here: a model reader is
given the model's probabilities function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from digits.app.images import ImageError, to_mnist
from digits.app.predict import prediction_json
from digits.app.samples import Picture
from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES

Answer = Mapping[str, Any]  # at least "digit" and "not_a_digit", as prediction_json() returns them
Reader = Callable[[Picture], Answer]
# (N, 28, 28) float32 images in MNIST's conventions -> (N, 10) class probabilities.
Probabilities = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Score:
    accuracy: float  # share of the pictures read as their label
    per_digit: list[float]  # the same per label 0..9 (nan for a label with no pictures)
    flagged: float  # share answered with a not-a-digit reason
    pictures: int


def score(read: Reader, cases: Sequence[tuple[int, Picture]]) -> Score:
    """Read every (label, picture) of `cases` with `read` and count what it got right."""
    return tally([digit for digit, _ in cases], [read(picture) for _, picture in cases])


def score_in_batches(
    probabilities: Probabilities, cases: Sequence[tuple[int, Picture]], batch_size: int = 256
) -> Score:
    """As score(model_reader(probabilities), cases), with the model called on `batch_size`
    pictures at a time."""
    answers: list[Answer] = []
    for start in range(0, len(cases), batch_size):
        images = np.stack(
            [mnist_image(picture) for _, picture in cases[start : start + batch_size]]
        )
        answers += map(prediction_json, probabilities(images), images)
    return tally([digit for digit, _ in cases], answers)


def tally(labels: Sequence[int], answers: Sequence[Answer]) -> Score:
    """The Score of `answers` to pictures of the digits `labels`."""
    if not labels:
        raise ValueError("no pictures to score")
    right = np.zeros(NUM_CLASSES)
    total = np.zeros(NUM_CLASSES)
    flagged = 0
    for digit, answer in zip(labels, answers, strict=True):
        right[digit] += answer["digit"] == digit
        total[digit] += 1
        flagged += answer["not_a_digit"] is not None
    per_digit = [float(r / t) if t else math.nan for r, t in zip(right, total, strict=True)]
    return Score(float(right.sum() / total.sum()), per_digit, flagged / len(labels), len(labels))


def not_a_digit_rates(read: Reader, pictures: Iterable[Picture]) -> tuple[float, float]:
    """For pictures that are not digits: the share flagged "not a digit", and the share refused
    (ImageError: a blank picture), which is not counted as flagged."""
    flagged = refused = count = 0
    for picture in pictures:
        count += 1
        try:
            answer = read(picture)
        except ImageError:
            refused += 1
            continue
        flagged += answer["not_a_digit"] is not None
    if not count:
        raise ValueError("no pictures to score")
    return flagged / count, refused / count


def model_reader(probabilities: Probabilities) -> Reader:
    """A reader in this process, answering as the server does: a picture is brought to MNIST's
    conventions (to_mnist), a (28, 28) array is taken as it is already in them."""

    def read(picture: Picture) -> Answer:
        image = mnist_image(picture)
        return prediction_json(probabilities(image[np.newaxis])[0], image)

    return read


def mnist_image(picture: Picture) -> np.ndarray:
    """A picture brought to MNIST's conventions (to_mnist), or a (28, 28) array already in
    them, as (28, 28) float32."""
    if isinstance(picture, Image.Image):
        return to_mnist(picture, "the picture")
    image = np.asarray(picture, dtype=np.float32)
    if image.shape != (IMAGE_HEIGHT, IMAGE_WIDTH):
        raise ValueError(f"expected a (28, 28) array, got {image.shape}")
    return image


def naive_pixels(picture: Image.Image) -> np.ndarray:
    """The picture only shrunk to 28x28 (and inverted if it is light), none of to_mnist's
    cropping, centring or stroke widening: (28, 28) float32 in [0, 1]. The baseline that shows
    what the MNIST preprocessing is worth."""
    shrunk = picture.convert("L").resize((IMAGE_WIDTH, IMAGE_HEIGHT), Image.Resampling.BOX)
    small = np.asarray(shrunk)
    grey = small.astype(np.float32) / 255
    return 1 - grey if np.median(grey) > 0.5 else grey
