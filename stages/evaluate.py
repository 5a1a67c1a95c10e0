"""Stage evaluate: model + test split -> metrics JSON, confusion/per-class plot data and PNGs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from digits.dataset import load_split
from digits.determinism import pin_cpu_kernels
from digits.files import atomic_directory, atomic_path, save_figure, write_json
from digits.metrics import (
    categorical_crossentropy,
    classification_metrics,
    confusion_counts,
    per_class_scores,
)
from digits.params import EvaluateParams, load_section
from digits.plots import confusion_matrix_figure, misclassified_grid
from stages._cli import argument_parser, run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("processed_dir", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="input .keras file")
    parser.add_argument("--metrics", type=Path, required=True, help="output metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="output folder for plots")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_section(args.params, "evaluate", EvaluateParams)
    images, one_hot_labels = load_split(args.processed_dir, "test")

    pin_cpu_kernels()
    from digits.model import load_model, predict_probabilities

    model = load_model(args.model)
    probabilities = predict_probabilities(model, images)  # (N, 10) float32
    true_labels = one_hot_labels.argmax(axis=1)
    predicted_labels = probabilities.argmax(axis=1)

    metrics = classification_metrics(true_labels, predicted_labels)
    metrics["loss"] = round(float(categorical_crossentropy(one_hot_labels, probabilities)), 6)
    predictions = pd.DataFrame({"actual": true_labels, "predicted": predicted_labels})
    # The plots folder and the metrics file together or not at all (see stages/train.py).
    with atomic_directory(args.plots) as out_dir, atomic_path(args.metrics) as metrics_file:
        predictions.to_csv(out_dir / "predictions.csv", index=False)
        per_class_scores(true_labels, predicted_labels).to_csv(
            out_dir / "per_class.csv", index=False, float_format="%.6f"
        )
        save_figure(
            confusion_matrix_figure(confusion_counts(true_labels, predicted_labels)),
            out_dir / "confusion_matrix.png",
        )
        grid = misclassified_grid(
            images, true_labels, predicted_labels, params.misclassified_examples
        )
        save_figure(grid, out_dir / "misclassified.png")
        write_json(metrics_file, {"test": metrics})
    print(f"test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro']['f1']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
