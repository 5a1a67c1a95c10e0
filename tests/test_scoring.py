"""digits.app.scoring: the share of labelled pictures a reader gets right (overall, per digit,
flagged), the not-a-digit rates with refused pictures counted apart, and a reader in this
process that answers as the server does (checked against describe on the same pixels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits.app.images import ImageError, to_mnist
from digits.app.predict import prediction_json
from digits.app.scoring import Score, model_reader, naive_pixels, not_a_digit_rates, score


def answering(digit: int, not_a_digit: str | None = None):
    return {"digit": digit, "not_a_digit": not_a_digit}


def test_score_counts_right_answers_per_digit_and_flags() -> None:
    cases = [(1, "a"), (1, "b"), (2, "c"), (3, "d")]
    answers = {
        "a": answering(1),
        "b": answering(7),
        "c": answering(2, "guessing"),
        "d": answering(3),
    }

    result = score(answers.__getitem__, cases)

    assert result.accuracy == 0.75
    assert result.flagged == 0.25
    assert result.pictures == 4
    assert result.per_digit[1:4] == [0.5, 1.0, 1.0]
    assert math.isnan(result.per_digit[0])  # no picture of a 0
    assert isinstance(result, Score)
    with pytest.raises(ValueError, match="no pictures"):
        score(answers.__getitem__, [])


def test_refused_pictures_are_counted_apart_from_flagged_ones() -> None:
    def read(picture: str):
        if picture == "blank":
            raise ImageError("a blank image")
        return answering(0, "noise" if picture == "noise" else None)

    assert not_a_digit_rates(read, ["blank", "noise", "noise", "digit"]) == (0.5, 0.25)
    with pytest.raises(ValueError, match="no pictures"):
        not_a_digit_rates(read, [])


def drawn_seven() -> Image.Image:
    image = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(image).line([(90, 60), (190, 60), (120, 220)], fill=31, width=22)
    return image


def test_the_model_reader_preprocesses_pictures_and_takes_arrays_as_they_are() -> None:
    seen = []

    def probabilities(images: np.ndarray) -> np.ndarray:
        seen.append(images)
        return np.tile(np.eye(10, dtype=np.float32)[7], (len(images), 1))

    read = model_reader(probabilities)
    picture = drawn_seven()

    assert read(picture) == prediction_json(np.eye(10)[7], to_mnist(picture))
    assert seen[-1].shape == (1, 28, 28)
    np.testing.assert_array_equal(seen[-1][0], to_mnist(picture))

    ready = to_mnist(picture)
    assert read(ready)["digit"] == 7
    np.testing.assert_array_equal(seen[-1][0], ready)  # not preprocessed a second time
    with pytest.raises(ImageError):
        read(Image.new("L", (280, 280), 255))  # blank: refused, as the API answers 400
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        read(np.zeros((14, 14), np.float32))


def test_naive_pixels_only_shrink_and_invert() -> None:
    pixels = naive_pixels(drawn_seven())
    assert pixels.shape == (28, 28)
    assert pixels.dtype == np.float32
    assert np.median(pixels) < 0.1  # light paper inverted to black
    assert pixels.max() > 0.5
    dark = naive_pixels(Image.new("L", (56, 56), 0))
    assert dark.max() == 0  # dark already: not inverted
