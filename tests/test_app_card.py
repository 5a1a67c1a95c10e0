"""The app-model pipeline's last stages on the tiny test model: other-handwriting (accuracy on
pictures that are not MNIST, the same bytes every run) and card-app (the recogniser's folder:
the model, model.json, MODEL_CARD.md; the training time from the sweep's records only when they
were measured for this recipe)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from digits.card import read_card
from digits.errors import DigitsError
from stages import card_app, other_handwriting
from stages._cli import run

PROJECT = Path(__file__).parents[1]


def handwriting_argv(model_file: Path, folder: Path) -> list[str]:
    return [
        *("--model", str(model_file)),
        *("--metrics", str(folder / "other-handwriting.json")),
        *("--pictures", str(folder / "other-handwriting-pictures.json")),
    ]


@pytest.fixture(scope="module")
def handwriting(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the other-handwriting stage's two files for the tiny model."""
    out = tmp_path_factory.mktemp("other")
    assert run(other_handwriting.main, handwriting_argv(model_file, out)) == 0
    return out


def test_other_handwriting_scores_each_set_and_repeats_its_bytes(
    handwriting: Path, model_file: Path, tmp_path: Path
) -> None:
    metrics = json.loads((handwriting / "other-handwriting.json").read_text(encoding="utf-8"))
    pictures = json.loads((handwriting / "other-handwriting-pictures.json").read_text())
    assert list(metrics) == list(pictures) == ["drawn", "printed", "uci_scans"]  # sorted keys
    assert all(list(scores) == ["accuracy"] for scores in metrics.values())  # 3 metric columns
    assert all(0 <= scores["accuracy"] <= 1 for scores in metrics.values())
    assert pictures["uci_scans"] == 1797
    assert pictures["drawn"] == 3 * 10 * other_handwriting.DRAWN_PER_DIGIT
    assert pictures["printed"] % 10 == 0

    assert run(other_handwriting.main, handwriting_argv(model_file, tmp_path)) == 0
    for name in ("other-handwriting.json", "other-handwriting-pictures.json"):
        assert (tmp_path / name).read_bytes() == (handwriting / name).read_bytes(), name


def card_argv(tmp_path: Path, model_file: Path, handwriting: Path, records: Path) -> list[str]:
    (tmp_path / "train.json").write_text(json.dumps({"epochs": 2, "parameters": 1234}))
    test = {"accuracy": 0.75, "loss": 0.5, "macro": {"f1": 0.7}}
    (tmp_path / "evaluate.json").write_text(json.dumps({"test": test}))
    predictions = pd.DataFrame({"actual": [9, 9, 9, 4, 7, 1], "predicted": [4, 4, 9, 9, 7, 7]})
    predictions.to_csv(tmp_path / "predictions.csv", index=False)
    (tmp_path / "model.onnx").write_bytes(b"the export stage's ONNX file")  # copied as it is
    return [
        *("--params", str(PROJECT / "params.yaml")),
        *("--name", "digits-recogniser"),
        *("--model", str(model_file)),
        *("--onnx", str(tmp_path / "model.onnx")),
        *("--recipe", str(PROJECT / "app-model/recipe.yaml")),
        *("--train-metrics", str(tmp_path / "train.json")),
        *("--test-metrics", str(tmp_path / "evaluate.json")),
        *("--predictions", str(tmp_path / "predictions.csv")),
        *("--other-handwriting", str(handwriting / "other-handwriting.json")),
        *("--other-handwriting-pictures", str(handwriting / "other-handwriting-pictures.json")),
        *("--experiments", str(records)),
        *("--row", "app-model"),
        *("--datasets", str(PROJECT / "data/datasets.yaml")),
        *("--card", str(tmp_path / "recogniser")),
    ]


def test_the_card_folder_holds_the_model_and_its_facts(
    model_file: Path, handwriting: Path, tmp_path: Path
) -> None:
    records = tmp_path / "experiments.json"
    recipe = yaml.safe_load((PROJECT / "app-model/recipe.yaml").read_text())["train"]
    row = {"train": recipe, "seconds": 930.4, "epochs": 14, "runner": "local queue, 2 cores"}
    records.write_text(json.dumps({"experiments": {"app-model": row}}))
    argv = card_argv(tmp_path, model_file, handwriting, records)

    assert run(card_app.main, argv) == 0

    folder = tmp_path / "recogniser"
    assert sorted(p.name for p in folder.iterdir()) == [
        "MODEL_CARD.md",
        "model.json",
        "model.keras",
        "model.onnx",
    ]
    assert (folder / "model.keras").read_bytes() == model_file.read_bytes()
    assert (folder / "model.onnx").read_bytes() == (tmp_path / "model.onnx").read_bytes()
    card = read_card(folder / "model.json")
    md5 = hashlib.md5(model_file.read_bytes(), usedforsecurity=False).hexdigest()
    assert card["artifact"] == "digits-recogniser"
    assert card["md5"] == md5
    assert card["parameters"] == 1234
    assert card["recipe"] == recipe
    assert card["test"] == {"accuracy": 0.75, "loss": 0.5, "macro": {"f1": 0.7}, "images": 6}
    assert card["misreads"][0] == {"digit": 9, "read_as": 4, "times": 2}
    metrics = json.loads((handwriting / "other-handwriting.json").read_text())
    pictures = json.loads((handwriting / "other-handwriting-pictures.json").read_text())
    assert card["other_handwriting"] == {
        name: {"accuracy": metrics[name]["accuracy"], "pictures": pictures[name]}
        for name in metrics
    }
    assert card["training"] == {
        "seconds": 930.4,
        "epochs": 14,
        "runner": "local queue, 2 cores",
        "row": "app-model",
    }
    assert "CC BY-SA 3.0" in card["data"]["licence"]
    text = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    for words in (
        "## Intended use",
        "accuracy 0.7500",
        "9 read as 4 (2 times)",
        "more than 2 separate pieces",
        "label smoothing 0.1: its probability for a digit it is sure of is about 91%",
        "Training time: 930 s (14 epochs) on local queue, 2 cores",
        "CC BY-SA 3.0",
    ):
        assert words in text, words

    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert run(card_app.main, argv) == 0  # the same bytes again: nothing read from a clock
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    params = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["epochs"] += 1  # the pipeline's recipe is not the card's
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    argv[argv.index("--params") + 1] = str(tmp_path / "params.yaml")
    assert run(card_app.main, argv) == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_measurement_of_another_recipe_is_not_the_card_s(
    model_file: Path, handwriting: Path, tmp_path: Path
) -> None:
    records = tmp_path / "experiments.json"
    shutil.copy(PROJECT / "docs/experiments.json", records)
    data = json.loads(records.read_text())
    data["experiments"]["app-model"]["train"]["epochs"] = 99
    records.write_text(json.dumps(data))

    assert run(card_app.main, card_argv(tmp_path, model_file, handwriting, records)) == 0

    card = read_card(tmp_path / "recogniser" / "model.json")
    assert card["training"] is None
    text = (tmp_path / "recogniser" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "Training time: not measured for this recipe" in text


def test_a_file_that_is_not_a_card_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"artifact": "x", "md5": "0" * 32}))
    with pytest.raises(DigitsError, match=r"not a model card .*test\.accuracy"):
        read_card(path)
