"""The model card: the facts of a trained model that travel with it, in its folder.

    <folder>/model.keras     the model
    <folder>/model.onnx      the same model as ONNX, for ONNX Runtime
    <folder>/model.json      name, md5, parameters, recipe, test and other-handwriting metrics,
                             what it misreads, training time (with its runner), data licence
    <folder>/MODEL_CARD.md   the same for people: intended use, results, limits

`model_card` builds model.json's content from what the pipeline measured (no clock is read: the
training time is the sweep's committed measurement, docs/experiments.json, for this very
recipe), `card_text` the Markdown, `read_card` reads model.json back for the app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from digits.errors import DigitsError
from digits.params import TrainParams, parse_section

CARD_FILE = "model.json"
CARD_TEXT_FILE = "MODEL_CARD.md"
MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"  # the same model for ONNX Runtime (digits/onnx_export.py)
MISREADS_SHOWN = 5


def measured_training(
    records: Mapping[str, Any], row: str, recipe: TrainParams
) -> dict[str, Any] | None:
    """The training time of the sweep's `row` in the table's records (docs/experiments.json),
    if that row trained this very `recipe` (its record's train section); else None."""
    record = (records.get("experiments") or {}).get(row)
    trained = record.get("train") if isinstance(record, dict) else None
    try:
        same = parse_section("train", trained, TrainParams) == recipe
    except DigitsError:
        same = False
    if not same:
        return None
    return {key: record[key] for key in ("seconds", "epochs", "runner")} | {"row": row}


def training_text(training: Mapping[str, Any] | None) -> str:
    """'930 s (14 epochs) on local queue, 2 cores', or why there is no time."""
    if training is None:
        return "not measured for this recipe"
    return f"{training['seconds']:.0f} s ({training['epochs']} epochs) on {training['runner']}"


def misreads(actual: np.ndarray, predicted: np.ndarray, count: int = MISREADS_SHOWN) -> list:
    """The `count` most frequent (digit, read as, times) among the wrong predictions, most
    frequent first (ties: smaller digits first)."""
    wrong = actual != predicted
    pairs, times = (
        np.unique(np.stack([actual[wrong], predicted[wrong]], axis=1), axis=0, return_counts=True)
        if wrong.any()
        else (np.empty((0, 2)), [])
    )
    order = sorted(range(len(times)), key=lambda i: (-times[i], *pairs[i]))[:count]
    return [
        {"digit": int(pairs[i][0]), "read_as": int(pairs[i][1]), "times": int(times[i])}
        for i in order
    ]


def model_card(
    *,
    artifact: str,
    md5: str,
    parameters: int,
    recipe: Mapping[str, Any],
    test: Mapping[str, Any],
    test_images: int,
    misread: list,
    other_handwriting: Mapping[str, Any],
    training: Mapping[str, Any] | None,
    dataset: str,
    licence: str,
) -> dict[str, Any]:
    """model.json's content."""
    return {
        "artifact": artifact,
        "file": MODEL_FILE,
        "md5": md5,
        "parameters": parameters,
        "recipe": dict(recipe),
        "test": dict(test) | {"images": test_images},
        "misreads": misread,
        "other_handwriting": dict(other_handwriting),
        "training": dict(training) if training is not None else None,
        "data": {"dataset": dataset, "licence": licence},
    }


def card_text(card: Mapping[str, Any], not_a_digit_rule: str) -> str:
    """MODEL_CARD.md: what the model is for, how well it reads, what it misreads."""
    test = card["test"]
    other = card["other_handwriting"]
    names = {"uci_scans": "UCI 8x8 scans (43 people)", "drawn": "drawn", "printed": "printed"}
    lines = [
        f"# {card['artifact']}",
        "",
        f"A handwritten-digit recogniser (Keras 3, `{card['file']}`, {card['parameters']:,} "
        f"parameters, md5 `{card['md5']}`), trained on {card['data']['dataset']}. `model.json` "
        "beside this file holds the same facts for programs.",
        "",
        "## Intended use",
        "",
        "Reading one digit, 0 to 9, per picture: a 28x28 grey image in MNIST's conventions (light",
        "ink on black, centred by its centre of mass), or any picture after the app's",
        "preprocessing (digits-predict, digits-serve). Not for letters, several digits in one",
        "picture, or decisions that need more than a best guess.",
        "",
        "## Results",
        "",
        f"- MNIST test set: accuracy {test['accuracy']:.4f}, macro F1 {test['macro']['f1']:.4f} "
        f"({test['images']:,} images)",
        *(
            f"- {names.get(name, name)}: accuracy {scores['accuracy']:.1%} "
            f"({scores['pictures']:,} pictures)"
            for name, scores in other.items()
        ),
        "",
        "## Limits",
        "",
        "- It always answers with a digit; pictures that are not one digit get a wrong answer.",
        f'- The app flags an answer as "not a digit" when {not_a_digit_rule}.',
    ]
    if card["misreads"]:
        shown = ", ".join(
            f"{m['digit']} read as {m['read_as']} ({m['times']} times)" for m in card["misreads"]
        )
        lines.append(f"- Its most frequent misreadings of the MNIST test set: {shown}.")
    smoothing = card["recipe"].get("label_smoothing", 0)
    if smoothing:
        lines.append(
            f"- Trained with label smoothing {smoothing}: its probability for a digit it is sure "
            f"of is about {1 - smoothing + smoothing / 10:.0%}, not 100%."
        )
    weakest = min(other, key=lambda name: other[name]["accuracy"], default=None)
    if weakest is not None:
        lines.append(
            f"- Of handwriting that is not MNIST it reads {names.get(weakest, weakest)} least "
            f"well ({other[weakest]['accuracy']:.1%})."
        )
    recipe = ", ".join(f"{key}={json.dumps(value)}" for key, value in card["recipe"].items())
    lines += [
        "",
        "## Training",
        "",
        f"- Recipe (train section): {recipe}",
        f"- Training time: {training_text(card['training'])}",
        f"- Data: {card['data']['licence']}",
        "",
    ]
    return "\n".join(lines)


def read_card(path: Path) -> dict[str, Any]:
    """model.json, checked to be a card of this project; DigitsError naming the file if not."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DigitsError(f"{path}: not a readable model card: {error}") from None
    test = card.get("test") if isinstance(card, dict) else None
    accuracy = test.get("accuracy") if isinstance(test, dict) else None
    if not (
        isinstance(card, dict)
        and isinstance(card.get("artifact"), str)
        and isinstance(card.get("md5"), str)
        and isinstance(accuracy, int | float)
    ):
        raise DigitsError(f"{path}: not a model card (needs artifact, md5 and test.accuracy)")
    return card
