"""Stage other_handwriting: a model -> its accuracy on handwriting that is not MNIST (JSON).

The pictures are digits.app.samples', read the way the app reads them (digits.app.scoring: the
app's preprocessing, then the model): scikit-learn's bundled UCI scans (1,797 8x8 scans of 43
people), digits drawn as the page's canvas draws them, as paper scans and light on dark
(DRAWN_PER_DIGIT of each digit in each situation, from a generator seeded with SEED), and the ten
digits printed in each of matplotlib's bundled fonts (only those: the system's fonts differ from
machine to machine). Nothing is read from the network, and the same model gives the same bytes.

    --metrics   {"drawn": {"accuracy": 0.93}, "printed": {...}, "uci_scans": {...}}
    --pictures  {"drawn": 900, "printed": 60, "uci_scans": 1797}: what each accuracy is of

Only the accuracies are the declared metric (three columns in `dvc exp show`); the counts are
fixed by this module and the bundled data, so they sit in a file of their own.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digits.app.samples import other_handwriting_cases
from digits.app.scoring import score_in_batches
from digits.determinism import pin_cpu_kernels
from digits.files import atomic_path, write_json
from stages._cli import argument_parser, run

SEED = 1  # the drawn pictures' generator, as tools/served_accuracy.py's
DRAWN_PER_DIGIT = 30
# The metrics' sets: each kind of picture of digits.app.samples in one of them.
SETS = {
    "uci_scans": ("UCI",),
    "drawn": ("canvas", "paper scan", "light ink"),
    "printed": ("printed",),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="input .keras file")
    parser.add_argument("--metrics", type=Path, required=True, help="output metrics JSON")
    parser.add_argument("--pictures", type=Path, required=True, help="output counts JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = other_handwriting_cases(np.random.default_rng(SEED), DRAWN_PER_DIGIT, font_folders=())
    pin_cpu_kernels()
    from digits.model import load_model, predict_probabilities

    model = load_model(args.model)
    metrics, pictures = {}, {}
    for name, kinds in SETS.items():
        chosen = [case for kind, found in cases.items() if kind.startswith(kinds) for case in found]
        scored = score_in_batches(lambda images: predict_probabilities(model, images), chosen)
        metrics[name] = {"accuracy": round(scored.accuracy, 6)}
        pictures[name] = scored.pictures
    with atomic_path(args.metrics) as metrics_file, atomic_path(args.pictures) as pictures_file:
        write_json(metrics_file, metrics)
        write_json(pictures_file, pictures)
    print(
        ", ".join(f"{name} {m['accuracy']:.1%} of {pictures[name]}" for name, m in metrics.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
