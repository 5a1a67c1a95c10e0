"""The README's results tables show exactly what metrics/ holds (no hand-typed numbers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_table() -> dict[str, str]:
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", (ROOT / "README.md").read_text(), re.M)
    return dict(rows)


def committed_metrics() -> dict[str, str]:
    test = json.loads((ROOT / "metrics" / "evaluate.json").read_text())["test"]
    train = json.loads((ROOT / "metrics" / "train.json").read_text())
    return {
        "test accuracy": f"{test['accuracy']:.4f}",
        "test macro F1": f"{test['macro']['f1']:.4f}",
        "test macro precision": f"{test['macro']['precision']:.4f}",
        "test macro recall": f"{test['macro']['recall']:.4f}",
        "test weighted F1": f"{test['weighted']['f1']:.4f}",
        "test loss (categorical cross-entropy)": f"{test['loss']:.4f}",
        "best validation accuracy": f"{train['best']['val_accuracy']:.4f}",
        "parameters": f"{train['parameters']:,}",
    }


def committed_app_model_metrics() -> dict[str, str]:
    """The app's model (app-model/dvc.yaml), in metrics/app-model/."""
    folder = ROOT / "metrics" / "app-model"
    test = json.loads((folder / "evaluate.json").read_text())["test"]
    train = json.loads((folder / "train.json").read_text())
    other = json.loads((folder / "other-handwriting.json").read_text())
    return {
        "app's model: test accuracy": f"{test['accuracy']:.4f}",
        "app's model: test macro F1": f"{test['macro']['f1']:.4f}",
        "app's model: parameters": f"{train['parameters']:,}",
        **{
            f"app's model: accuracy on {OTHER_HANDWRITING[name]}": f"{scores['accuracy']:.4f}"
            for name, scores in other.items()
        },
    }


# metrics/app-model/other-handwriting.json's sets, as the README names them
OTHER_HANDWRITING = {
    "uci_scans": "UCI scans",
    "drawn": "drawn digits",
    "printed": "printed digits",
}


@pytest.mark.parametrize("name", list(committed_metrics()))
def test_readme_results_match_committed_metrics(name: str) -> None:
    assert readme_table().get(name) == committed_metrics()[name]


@pytest.mark.parametrize("name", list(committed_app_model_metrics()))
def test_readme_app_model_results_match_committed_metrics(name: str) -> None:
    assert readme_table().get(name) == committed_app_model_metrics()[name]


def test_default_model_meets_the_quality_bar() -> None:
    test = json.loads((ROOT / "metrics" / "evaluate.json").read_text())["test"]
    assert test["accuracy"] >= 0.980
    assert test["macro"]["f1"] >= 0.980
