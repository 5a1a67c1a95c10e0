"""Stage card_app: the app's model and what was measured of it -> its folder with a card.

    <card>/model.keras     a copy of --model
    <card>/model.onnx      a copy of --onnx, the same model for ONNX Runtime (stage export-app)
    <card>/model.json      digits.card.model_card: artifact name, md5, parameters, recipe,
                           test metrics, misreadings, other handwriting, training time, licence
    <card>/MODEL_CARD.md   the same for people (digits.card.card_text)

The training time is not measured here (the card's bytes must repeat): it is the sweep's row
--row in --experiments (docs/experiments.json, written by `python -m tools.experiments table`),
used only when that row trained this very recipe (its record's train section); otherwise the card
says it was not. Of --params only download.dataset is read: the data the model was trained on,
whose licence (--datasets) the card states.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from digits.app.predict import MAX_INK_COVERAGE, MAX_INK_PIECES, MIN_TOP_PROBABILITY
from digits.card import (
    CARD_FILE,
    CARD_TEXT_FILE,
    MODEL_FILE,
    ONNX_FILE,
    card_text,
    measured_training,
    misreads,
    model_card,
)
from digits.files import atomic_directory, write_json
from digits.params import DownloadParams, TrainParams, load_dataset_source, load_section
from stages._cli import argument_parser, run

NOT_A_DIGIT_RULE = (
    f"its ink is in more than {MAX_INK_PIECES} separate pieces, covers more than "
    f"{MAX_INK_COVERAGE:.0%} of the 28x28 field, or the model gives its best answer less than "
    f"{MIN_TOP_PROBABILITY:.0%} (digits/app/predict.py)"
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--name", required=True, help="the model's DVC artifact name")
    parser.add_argument("--model", type=Path, required=True, help="input .keras file")
    parser.add_argument("--onnx", type=Path, required=True, help="the same model as .onnx")
    parser.add_argument("--recipe", type=Path, required=True, help="the recipe it was trained on")
    parser.add_argument("--train-metrics", type=Path, required=True, help="train stage's JSON")
    parser.add_argument("--test-metrics", type=Path, required=True, help="evaluate stage's JSON")
    parser.add_argument(
        "--predictions", type=Path, required=True, help="evaluate stage's predictions.csv"
    )
    parser.add_argument(
        "--other-handwriting", type=Path, required=True, help="other-handwriting's metrics JSON"
    )
    parser.add_argument(
        "--other-handwriting-pictures", type=Path, required=True, help="and its counts JSON"
    )
    parser.add_argument("--experiments", type=Path, required=True, help="the sweep's records")
    parser.add_argument("--row", required=True, help="the recipe's row in --experiments")
    parser.add_argument("--datasets", type=Path, required=True, help="data/datasets.yaml")
    parser.add_argument("--card", type=Path, required=True, help="output folder")
    return parser.parse_args(argv)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    recipe = load_section(args.recipe, "train", TrainParams)
    dataset = load_section(args.params, "download", DownloadParams).dataset
    licence = load_dataset_source(args.datasets, dataset).licence
    training = measured_training(read_json(args.experiments), args.row, recipe)
    predictions = pd.read_csv(args.predictions)
    actual, predicted = predictions["actual"].to_numpy(), predictions["predicted"].to_numpy()
    accuracy = read_json(args.other_handwriting)
    pictures = read_json(args.other_handwriting_pictures)
    md5 = hashlib.md5(args.model.read_bytes(), usedforsecurity=False).hexdigest()
    card = model_card(
        artifact=args.name,
        md5=md5,
        parameters=read_json(args.train_metrics)["parameters"],
        recipe=recipe.model_dump(),
        test=read_json(args.test_metrics)["test"],
        test_images=len(predictions),
        misread=misreads(actual, predicted),
        other_handwriting={
            name: scores | {"pictures": pictures[name]} for name, scores in accuracy.items()
        },
        training=training,
        dataset=dataset,
        licence=licence,
    )
    with atomic_directory(args.card) as folder:
        shutil.copyfile(args.model, folder / MODEL_FILE)
        shutil.copyfile(args.onnx, folder / ONNX_FILE)
        write_json(folder / CARD_FILE, card)
        (folder / CARD_TEXT_FILE).write_text(card_text(card, NOT_A_DIGIT_RULE), encoding="utf-8")
    print(f"wrote {args.card}: {card['artifact']}, md5 {md5[:8]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
