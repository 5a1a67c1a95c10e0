"""digits.metrics against a confusion matrix and scores worked out by hand (not by scikit-learn)."""

from __future__ import annotations

import json
import math
import warnings
from fractions import Fraction as F

import numpy as np
import pandas as pd
import pytest

from digits.metrics import (
    categorical_crossentropy,
    classification_metrics,
    confusion_counts,
    per_class_scores,
    training_summary,
)

# Twelve test digits over classes 0..3; class 3 is never predicted.
TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3])
PREDICTED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1, 0, 2])

# Rows = true digit, columns = predicted digit, counted by eye from the two lines above.
HAND_CONFUSION = [
    [2, 1, 1, 0],  # true 0: indices 0, 1 right; 2 -> 1; 3 -> 2
    [1, 2, 0, 0],  # true 1: 4, 5 right; 6 -> 0
    [0, 1, 2, 0],  # true 2: 7, 8 right; 9 -> 1
    [1, 0, 1, 0],  # true 3: 10 -> 0; 11 -> 2
]

# precision = diagonal / column sum, recall = diagonal / row sum, F1 = 2PR / (P + R)
# columns sum to 4, 4, 4, 0; rows sum (support) to 4, 3, 3, 2.
HAND = {
    0: {"precision": F(2, 4), "recall": F(2, 4), "f1": F(1, 2), "support": 4},
    1: {"precision": F(2, 4), "recall": F(2, 3), "f1": F(4, 7), "support": 3},
    2: {"precision": F(2, 4), "recall": F(2, 3), "f1": F(4, 7), "support": 3},
    3: {"precision": F(0), "recall": F(0, 2), "f1": F(0), "support": 2},  # 0/0 -> 0
}
SCORES = ("precision", "recall", "f1")


def close(value: float, fraction: F) -> bool:
    return value == pytest.approx(float(fraction), abs=1e-6)  # results are rounded to 6 places


def test_confusion_counts_match_the_hand_count() -> None:
    matrix = confusion_counts(TRUE, PREDICTED)
    assert matrix.shape == (10, 10)
    assert np.issubdtype(matrix.dtype, np.integer)
    assert matrix[:4, :4].tolist() == HAND_CONFUSION
    assert matrix[4:, :].sum() == 0
    assert matrix[:, 4:].sum() == 0
    assert matrix.sum() == len(TRUE)


def test_confusion_counts_rows_are_true_and_columns_are_predicted() -> None:
    matrix = confusion_counts(np.array([7]), np.array([1]))
    assert matrix[7, 1] == 1
    assert matrix[1, 7] == 0


def test_accuracy_is_the_share_of_right_answers() -> None:
    assert close(classification_metrics(TRUE, PREDICTED)["accuracy"], F(6, 12))


def test_per_class_scores_match_the_hand_values() -> None:
    table = per_class_scores(TRUE, PREDICTED)
    assert table["digit"].tolist() == list(range(10))
    for digit, expected in HAND.items():
        got = table.loc[digit]
        for score in SCORES:
            assert close(got[score], expected[score]), (digit, score, got[score])
        assert got["support"] == expected["support"]


def test_class_never_predicted_scores_zero_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's UndefinedMetricWarning would fail this
        classification_metrics(TRUE, PREDICTED)
        table = per_class_scores(TRUE, PREDICTED)
    assert table.loc[3, ["precision", "recall", "f1", "support"]].tolist() == [0, 0, 0, 2]


def test_metrics_hold_only_the_headline_scores() -> None:
    # Per-class scores are plot data (plots/evaluate/per_class.csv): in the metrics they would
    # add 40 columns to `dvc exp show`.
    metrics = classification_metrics(TRUE, PREDICTED)
    assert sorted(metrics) == ["accuracy", "macro", "weighted"]


def test_weighted_average_weights_by_support() -> None:
    weighted = classification_metrics(TRUE, PREDICTED)["weighted"]
    total = sum(row["support"] for row in HAND.values())
    for score in SCORES:
        expected = sum(row[score] * row["support"] for row in HAND.values()) / total
        assert close(weighted[score], expected), score
    assert close(weighted["precision"], F(5, 12))
    assert close(weighted["recall"], F(1, 2))  # weighted recall is accuracy
    assert close(weighted["f1"], F(19, 42))


def test_macro_average_is_unweighted_over_all_ten_digits() -> None:
    # The label set is fixed to 0..9, so digits absent from both lists count as 0 in the macro
    # mean (the MNIST test set has every digit, so this only shows on small examples).
    macro = classification_metrics(TRUE, PREDICTED)["macro"]
    assert close(macro["precision"], F(3, 2) / 10)
    assert close(macro["recall"], (F(1, 2) + F(2, 3) + F(2, 3)) / 10)
    assert close(macro["f1"], (F(1, 2) + F(4, 7) + F(4, 7)) / 10)


def test_macro_equals_the_plain_mean_when_every_digit_is_present() -> None:
    true = np.repeat(np.arange(10), 3)  # each digit 3 times
    predicted = true.copy()
    predicted[[0, 3]] = 9  # one 0 and one 1 called 9
    metrics = classification_metrics(true, predicted)
    # P: digit 9 is 3/5, others 1; R: digits 0 and 1 are 2/3, others 1
    assert close(metrics["macro"]["precision"], (9 + F(3, 5)) / 10)
    assert close(metrics["macro"]["recall"], (8 + F(4, 3)) / 10)
    f1_partial = F(2 * 2, 2 + 3)  # 2PR/(P+R) with P=1, R=2/3 -> 4/5
    f1_nine = F(2 * 3, 3 + 5)  # with P=3/5, R=1 -> 3/4
    assert close(metrics["macro"]["f1"], (7 + 2 * f1_partial + f1_nine) / 10)
    assert close(metrics["accuracy"], F(28, 30))


def test_perfect_predictions_score_one() -> None:
    labels = np.arange(10).repeat(2)
    metrics = classification_metrics(labels, labels)
    assert metrics["accuracy"] == 1.0
    for average in ("macro", "weighted"):
        assert metrics[average] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_metrics_are_plain_json() -> None:
    metrics = classification_metrics(TRUE, PREDICTED)
    text = json.dumps(metrics, allow_nan=False)  # numpy scalars would raise TypeError
    assert json.loads(text) == metrics
    assert type(metrics["macro"]["f1"]) is float


def test_per_class_table_shape_and_columns() -> None:
    table = per_class_scores(TRUE, PREDICTED)
    assert table.shape == (10, 5)
    assert list(table.columns) == ["digit", "precision", "recall", "f1", "support"]
    assert table["digit"].tolist() == list(range(10))
    assert table["support"].tolist() == [4, 3, 3, 2, 0, 0, 0, 0, 0, 0]
    assert table.loc[1, "f1"] == pytest.approx(4 / 7, abs=1e-6)


def test_categorical_crossentropy_hand_values() -> None:
    labels = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert categorical_crossentropy(labels[:1], np.array([[0.5, 0.5]])) == pytest.approx(
        math.log(2)
    )
    probabilities = np.array([[0.5, 0.5], [0.25, 0.75]], dtype=np.float32)
    expected = (-math.log(0.5) - math.log(0.75)) / 2
    assert categorical_crossentropy(labels, probabilities) == pytest.approx(expected, rel=1e-6)


def test_categorical_crossentropy_clips_like_keras() -> None:
    labels = np.array([[0.0, 1.0]])
    zero = categorical_crossentropy(labels, np.array([[1.0, 0.0]]))
    assert math.isfinite(zero)
    assert zero == pytest.approx(-math.log(1e-7))  # about 16.118
    one = categorical_crossentropy(labels, np.array([[0.0, 1.0]]))
    assert one == pytest.approx(-math.log(1 - 1e-7))
    assert one > 0


def test_categorical_crossentropy_ignores_the_wrong_classes_probabilities() -> None:
    labels = np.array([[0.0, 0.0, 1.0]])
    a = categorical_crossentropy(labels, np.array([[0.1, 0.1, 0.8]]))
    b = categorical_crossentropy(labels, np.array([[0.2, 0.0, 0.8]]))
    assert a == pytest.approx(b)
    assert a == pytest.approx(-math.log(0.8))


def test_training_summary_reports_the_run_and_its_best_epoch() -> None:
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4],
            "loss": [0.9, 0.5, 0.3, 0.2],
            "accuracy": [0.6, 0.8, 0.9, 0.95],
            "val_loss": [0.8, 0.4, 0.45, 0.5],
            "val_accuracy": [0.7, 0.9, 0.85, 0.9],  # ties with epoch 2: the first one wins
        }
    )
    summary = training_summary(history, parameters=3190)

    assert summary == {
        "parameters": 3190,
        "epochs": 4,
        "best": {"epoch": 2, "val_accuracy": 0.9, "val_loss": 0.4},
    }
    json.dumps(summary, allow_nan=False)  # plain JSON types only (what write_json needs)


def test_training_summary_rounds_to_six_places() -> None:
    history = pd.DataFrame(
        {
            "epoch": [1],
            "loss": [0.1],
            "accuracy": [1.0],
            "val_loss": [1 / 3],
            "val_accuracy": [2 / 3],
        }
    )

    summary = training_summary(history, parameters=1)

    assert summary["best"]["val_loss"] == 0.333333
    assert summary["best"]["val_accuracy"] == 0.666667
    assert type(summary["best"]["epoch"]) is int
