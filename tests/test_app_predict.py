"""digits.app.predict: the Predictor's fast path, `prediction_json` and the not-a-digit rule, with
a tiny model trained here on the synthetic digits."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from digits.app.predict import Predictor, not_a_digit, prediction_json
from digits.errors import DigitsError


def test_predictor_matches_model_predict(model_file: Path, synthetic_data: dict) -> None:
    predictor = Predictor.from_file(model_file)
    images = synthetic_data["test"][0][:20]

    fast = predictor.probabilities(images)

    np.testing.assert_allclose(fast, predictor.model.predict(images, verbose=0), atol=1e-6)
    assert fast.shape == (20, 10)
    assert fast.dtype == np.float32
    single = predictor.probabilities(images[:1])
    np.testing.assert_allclose(single, fast[:1], atol=1e-6)
    # The tiny model has learnt the blocks: the pixels reach it the right way round.
    labels = synthetic_data["test"][1][:20].argmax(axis=1)
    assert (fast.argmax(axis=1) == labels).mean() >= 0.8


def test_predictor_rejects_wrong_shapes(model_file: Path) -> None:
    predictor = Predictor.from_file(model_file)
    with pytest.raises(ValueError, match=r"expected \(N, 28, 28\) images, got \(28, 28\)"):
        predictor.probabilities(np.zeros((28, 28), np.float32))

    flat = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10)])
    with pytest.raises(DigitsError, match=r"the model maps \(None, 784\) -> \(None, 10\)"):
        Predictor(flat)


def test_prediction_json_sorts_the_top_3_and_breaks_ties_by_digit() -> None:
    probabilities = np.array([0.1, 0.3, 0.05, 0.3, 0.0, 0.0, 0.0, 0.2, 0.05, 0.0], np.float32)

    result = prediction_json(probabilities, np.zeros((28, 28), np.float32))

    assert result["digit"] == 1
    assert result["probability"] == 0.3
    assert [entry["digit"] for entry in result["top3"]] == [1, 3, 7]
    # float32 values, as plain floats rounded to 6 places (0.1 in float32 is 0.100000001...)
    assert result["probabilities"] == [0.1, 0.3, 0.05, 0.3, 0.0, 0.0, 0.0, 0.2, 0.05, 0.0]
    json.dumps(result, allow_nan=False)  # plain Python numbers
    with pytest.raises(ValueError, match=r"expected \(10,\) probabilities"):
        prediction_json(np.ones((1, 10)), np.zeros((28, 28), np.float32))


def stroke_image(strokes: list[tuple[slice, slice]]) -> np.ndarray:
    """A (28, 28) image with full ink in the given rectangles."""
    image = np.zeros((28, 28), np.float32)
    for rows, columns in strokes:
        image[rows, columns] = 1
    return image


SURE = np.array([0.0] * 7 + [0.97, 0.02, 0.01], np.float32)  # a confident 7


@pytest.mark.parametrize(
    ("image", "probabilities", "reason"),
    [
        (stroke_image([(slice(4, 24), slice(13, 16))]), SURE, None),  # a 1: one stroke
        (stroke_image([(slice(4, 7), slice(6, 22)), (slice(10, 24), slice(13, 16))]), SURE, None),
        (np.zeros((28, 28), np.float32), SURE, "no ink"),
        (stroke_image([(slice(4, 24), slice(4, 24))]), SURE, "ink covers 51% of the image"),
        (
            stroke_image([(slice(r, r + 2), slice(r, r + 2)) for r in (3, 9, 15, 21)]),
            SURE,
            "4 separate pieces of ink; digits have at most 2",
        ),
        (
            stroke_image([(slice(4, 24), slice(13, 16))]),
            np.full(10, 0.1, np.float32),
            "the model is guessing: 10% for its best answer",
        ),
    ],
    ids=["one-stroke", "two-strokes", "blank", "blob", "dots", "guess"],
)
def test_not_a_digit_flags_blank_blobs_dots_and_guesses(
    image: np.ndarray, probabilities: np.ndarray, reason: str | None
):
    found = not_a_digit(image, probabilities)
    if reason is None:
        assert found is None
    else:
        assert found.startswith(reason), found
