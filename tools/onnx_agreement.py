"""Does the exported ONNX model read every picture as its Keras model does?

    python -m tools.onnx_agreement [--model data/app-model/model.keras] [--onnx FILE]

Runs both on every image of the MNIST test split (data/processed, --mnist) and on the pictures
of handwriting that is not MNIST (digits.app.samples: scikit-learn's UCI scans, digits drawn as
the page's canvas draws them, as paper scans and light on dark, and printed digits), each
brought to MNIST's conventions as the app brings them (digits.app.images.to_mnist). Prints, per
set, the pictures, how many got another digit, and the largest difference between the two
probabilities; exits 1 if any picture gets another digit or a difference exceeds --tolerance.
--onnx defaults to the .onnx file beside the model (what the export stage writes).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digits.app.images import ImageError, to_mnist
from digits.app.samples import Cases, drawn_cases, mnist_cases, printed_cases, uci_cases
from digits.dataset import split_path
from digits.determinism import pin_cpu_kernels
from digits.errors import DigitsError

TOLERANCE = 1e-5
DRAWN_SEED = 1  # the drawn pictures' generator, as tools/served_accuracy.py's


@dataclass(frozen=True)
class Agreement:
    pictures: int
    other_digit: int  # pictures the two read as different digits
    largest_difference: float  # of any probability

    def holds(self, tolerance: float) -> bool:
        return self.other_digit == 0 and self.largest_difference <= tolerance


def compare(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Two (N, 10) arrays of probabilities for the same N pictures."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} and {candidate.shape}")
    return Agreement(
        pictures=len(reference),
        other_digit=int(np.sum(reference.argmax(axis=1) != candidate.argmax(axis=1))),
        largest_difference=float(np.abs(reference - candidate).max(initial=0.0)),
    )


def images_of(cases: Cases) -> dict[str, np.ndarray]:
    """Each set's pictures as (N, 28, 28) float32 in MNIST's conventions; a picture the app
    refuses (blank) is left out, as the app would answer it with an error."""
    sets = {}
    for name, found in cases.items():
        images = []
        for _, picture in found:
            if isinstance(picture, Image.Image):
                try:
                    images.append(to_mnist(picture, "the picture"))
                except ImageError:
                    continue
            else:
                images.append(np.asarray(picture, dtype=np.float32))
        sets[name] = np.stack(images).astype(np.float32)
    return sets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("data/app-model/model.keras"))
    parser.add_argument("--onnx", type=Path, help="default: the model's path with .onnx")
    parser.add_argument("--mnist", type=Path, default=split_path("data/processed", "test"))
    parser.add_argument("--per-digit", type=int, default=30, help="drawn digits per class")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    args.onnx = args.onnx or args.model.with_suffix(".onnx")
    if args.per_digit < 1:
        parser.error(f"--per-digit {args.per_digit}: must be 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path, made_by in ((args.model, "dvc repro"), (args.onnx, "the export stage")):
        if not path.is_file():
            print(f"error: {path} does not exist (made by {made_by})", file=sys.stderr)
            return 1
    if not args.mnist.is_file():
        print(f"error: {args.mnist} does not exist (made by `dvc repro`)", file=sys.stderr)
        return 1
    with np.load(args.mnist) as split:
        cases = mnist_cases(split["images"], split["labels"], f"MNIST {args.mnist.stem}")
    cases |= uci_cases()
    cases |= drawn_cases(np.random.default_rng(DRAWN_SEED), args.per_digit)
    cases |= printed_cases()

    pin_cpu_kernels()
    import onnxruntime

    from digits.model import load_model, predict_probabilities

    try:
        model = load_model(args.model)
    except DigitsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    session = onnxruntime.InferenceSession(str(args.onnx), providers=["CPUExecutionProvider"])
    (input_name,) = (value.name for value in session.get_inputs())
    print(f"{args.model} (Keras) against {args.onnx} (ONNX Runtime {onnxruntime.__version__})")
    print(f"{'set':<34} {'pictures':>9} {'other digit':>12} {'largest difference':>19}")
    failed = []
    for name, images in images_of(cases).items():
        found = compare(
            predict_probabilities(model, images), session.run(None, {input_name: images})[0]
        )
        print(
            f"{name:<34} {found.pictures:>9,} {found.other_digit:>12,} "
            f"{found.largest_difference:>19.2e}"
        )
        if not found.holds(args.tolerance):
            failed.append(name)
    if failed:
        print(
            f"error: the ONNX model disagrees on {', '.join(failed)} (another digit, or a "
            f"probability more than {args.tolerance:g} apart)",
            file=sys.stderr,
        )
        return 1
    print(f"the same digit for every picture, probabilities within {args.tolerance:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
