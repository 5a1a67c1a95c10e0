"""How well the served models read pictures that are not MNIST, one column per model.

    python -m tools.served_accuracy [--compare MODEL...] [--per-digit 30]   (make bench-serve)

Needs the trained models: the app's (data/app-model/recogniser/: `make app-model` or `dvc pull
app-model/dvc.yaml:card-app`) and the pipeline's MLP (data/model/model.keras: `make repro` or
`dvc pull`).

Starts digits-serve once per model of --compare (default: those two) and sends each the same
pictures (digits.app.samples) through the same API as the page, so the same preprocessing:
hand-drawn-like digits as the canvas draws them, as paper scans and light on dark; digits
printed in every TrueType font found; a different handwriting set, scikit-learn's bundled UCI
digits (1,797 8x8 scans of 43 people's handwriting, upscaled to 128x128); and the MNIST test
set (--mnist, as JSON). Prints one column per model: the accuracy, the accuracy without the
MNIST preprocessing (the picture only shrunk to 28x28 and inverted) and the share flagged "not
a digit"; then that share for noise and scribbles. The scoring is digits.app.scoring's, which
can read the same pictures with a model in-process too.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from digits.app.artifacts import APP_MODEL_FILE, PIPELINE_MODEL, read_model_info
from digits.app.images import ImageError
from digits.app.samples import (
    Cases,
    Picture,
    mnist_cases,
    other_handwriting_cases,
    png_bytes,
    scribble_cases,
)
from digits.app.scoring import Answer, Reader, naive_pixels, not_a_digit_rates, score
from digits.dataset import split_path
from tools.serving import Client, Refused, ServerProcess, pixels_json, require_models, serving

COLUMN = 28  # characters per model in the tables


@contextlib.contextmanager
def api_readers(running: ServerProcess) -> Iterator[tuple[Reader, Reader]]:
    """Two readers on one keep-alive connection: the page's way (a picture as PNG, an MNIST
    array as JSON pixels) and the naive one (the picture shrunk to 28x28, as JSON pixels). A
    picture the API refuses with 400 (a blank one) raises ImageError, as in-process."""
    client = Client(running.host, running.port)

    def send(body: bytes, content_type: str) -> Answer:
        try:
            return client.predict(body, content_type)
        except Refused as error:
            if error.status == 400:
                raise ImageError(error.message) from None
            raise

    def read(picture: Picture) -> Answer:
        if isinstance(picture, Image.Image):
            return send(png_bytes(picture), "image/png")
        return send(pixels_json(picture), "application/json")

    def read_naive(picture: Picture) -> Answer:
        return send(pixels_json(naive_pixels(picture)), "application/json")

    try:
        yield read, read_naive
    finally:
        client.close()


def print_header(labels: list[str], columns: str) -> None:
    """The tables' head: each model's name, then its version ("NAME, md5 ..."), then `columns`
    under each."""
    for part in (0, 1):
        print(f"  {'':36s}" + "".join(f"{label.split(', ')[part]:>{COLUMN}s}" for label in labels))
    print(f"  {'pictures':28s} {'images':>7s}" + columns * len(labels))


def accuracy_report(servers: dict[str, ServerProcess], cases_by_kind: Cases) -> None:
    """Per kind of picture, one column per server (model): accuracy with the server's
    preprocessing and with a naive resize, and the share flagged "not a digit"; then the
    accuracy per digit."""
    print_header(list(servers), f"{'read':>9s}{'naive':>7s}{'not a digit':>12s}")
    per_digit: dict[tuple[str, str], list[float]] = {}
    for name, cases in cases_by_kind.items():
        pictures = isinstance(cases[0][1], Image.Image)
        cells = []
        for label, running in servers.items():
            # A connection per row: one left idle while the other model works would be closed.
            with api_readers(running) as (read, read_naive):
                scored = score(read, cases)
                naive = score(read_naive, cases).accuracy if pictures else None
            naive_cell = "-" if naive is None else f"{naive:.1%}"
            cells.append(f"{scored.accuracy:9.1%}{naive_cell:>7s}{scored.flagged:12.1%}")
            per_digit[(name, label)] = scored.per_digit
        print(f"  {name:28s} {len(cases):7d}" + "".join(cells))
    print("\n  per digit (read)")
    for (name, label), digits in per_digit.items():
        shares = " ".join(f"{digit}:{share:4.0%}" for digit, share in enumerate(digits))
        print(f"  {name:28s} {label:>{COLUMN}s}  {shares}")


def not_a_digit_report(
    servers: dict[str, ServerProcess], cases_by_kind: dict[str, list[Image.Image]]
) -> None:
    """Per kind of non-digit and server: the share flagged "not a digit" (a blank image is
    refused, 400, and counted apart)."""
    print_header(list(servers), f"{'not a digit':>14s}{'blank':>14s}")
    for name, images in cases_by_kind.items():
        cells = []
        for running in servers.values():
            with api_readers(running) as (read, _):
                flagged, refused = not_a_digit_rates(read, images)
            cells.append(f"{flagged:14.1%}{refused:14.1%}")
        print(f"  {name:28s} {len(images):7d}" + "".join(cells))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        default=[APP_MODEL_FILE, PIPELINE_MODEL.path],
        metavar="MODEL",
        help="the models compared, one column each (default: %(default)s)",
    )
    parser.add_argument("--per-digit", type=int, default=30, help="drawn digits per class")
    parser.add_argument(
        "--mnist",
        type=Path,
        default=split_path("data/processed", "test"),
        help="MNIST images to read too, if the file exists (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_models(args.compare)
    rng = np.random.default_rng(1)  # the same pictures on every run
    cases = other_handwriting_cases(rng, args.per_digit)
    if args.mnist.is_file():
        with np.load(args.mnist) as split:
            cases.update(
                mnist_cases(split["images"], split["labels"], f"MNIST {args.mnist.stem} (JSON)")
            )
    scribbles = scribble_cases(rng, args.per_digit * 10)
    with contextlib.ExitStack() as stack:
        servers = {}
        for path in args.compare:
            info = read_model_info(path)
            print(f"model: {info.line()}")
            servers[f"{info.name}, {info.version}"] = stack.enter_context(serving(path))
        print(
            "\naccuracy through the API, as the page sends pictures (read: with the MNIST "
            "preprocessing; naive: the picture only shrunk to 28x28; not a digit: flagged so)"
        )
        accuracy_report(servers, cases)
        print("\nthe not-a-digit signal on noise and scribbles (rule: digits/app/predict.py)")
        not_a_digit_report(servers, scribbles)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
