"""Classification metrics on the test set (scikit-learn) and the training summary, as plain
JSON-ready dicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from digits.dataset import NUM_CLASSES


def _rounded(value: float) -> float:
    return round(float(value), 6)


def classification_metrics(true_labels: np.ndarray, predicted_labels: np.ndarray) -> dict:
    """The headline scores: accuracy and macro / weighted precision, recall and F1.

    Per-class scores are plot data (per_class_scores), not metrics: ten digits times four
    scores would bury these in `dvc metrics show` and `dvc exp show`.
    """
    classes = np.arange(NUM_CLASSES)
    result: dict = {"accuracy": _rounded(accuracy_score(true_labels, predicted_labels))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            true_labels, predicted_labels, labels=classes, average=average, zero_division=0
        )
        result[average] = {
            "precision": _rounded(precision),
            "recall": _rounded(recall),
            "f1": _rounded(f1),
        }
    return result


def per_class_scores(true_labels: np.ndarray, predicted_labels: np.ndarray) -> pd.DataFrame:
    """One row per digit 0..9: digit, precision, recall, f1, support."""
    classes = np.arange(NUM_CLASSES)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_labels, predicted_labels, labels=classes, zero_division=0
    )
    return pd.DataFrame(
        {
            "digit": classes,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
    )


def confusion_counts(true_labels: np.ndarray, predicted_labels: np.ndarray) -> np.ndarray:
    """(10, 10) int counts: row = true digit, column = predicted digit."""
    return confusion_matrix(true_labels, predicted_labels, labels=np.arange(NUM_CLASSES))


def categorical_crossentropy(one_hot_labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean cross-entropy, probabilities clipped like Keras (1e-7) so log(0) cannot occur."""
    clipped = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-(one_hot_labels * np.log(clipped)).sum(axis=1).mean())


def training_summary(history: pd.DataFrame, parameters: int) -> dict:
    """The size of the run and its best epoch's validation scores, for metrics/train.json.

    history: one row per epoch with `epoch`, `val_accuracy` and `val_loss`. The last epoch's
    scores are in DVCLive's metrics.json (digits/live.py), not repeated here.
    """
    best = history.loc[history["val_accuracy"].idxmax()]
    return {
        "parameters": int(parameters),
        "epochs": len(history),
        "best": {
            "epoch": int(best["epoch"]),
            "val_accuracy": _rounded(best["val_accuracy"]),
            "val_loss": _rounded(best["val_loss"]),
        },
    }
