"""The real params with a tiny network, a model trained as the train stage trains it, and the
stages' argument lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from digits.params import TrainParams

PROJECT = Path(__file__).parents[2]
PARAMS = PROJECT / "params.yaml"
COMMITTED_PARAMS: dict[str, Any] = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))

# A network small and quick enough to learn the synthetic digits in a second or two: one Dense
# layer of 32 (and, for architecture=cnn, two thin convolution blocks), one epoch of batches of 32.
TINY_TRAIN = {
    "hidden_units": [32],
    "conv_filters": [4, 8],
    "learning_rate": 0.01,
    "epochs": 1,
    "batch_size": 32,
}


def tiny_train_params(**overrides: object) -> TrainParams:
    """The committed train section with TINY_TRAIN and `overrides` applied, validated."""
    return TrainParams(**{**COMMITTED_PARAMS["train"], **TINY_TRAIN, **overrides})


def write_params(folder: Path, **sections: dict[str, Any]) -> Path:
    """folder/params.yaml: the committed params, each named section updated with its dict."""
    params = {name: dict(values) for name, values in COMMITTED_PARAMS.items()}
    for name, values in sections.items():
        params[name].update(values)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def trained_model(params: TrainParams, data: dict, validation: tuple | None = None) -> tuple:
    """(model, history): a fresh model trained on `data`'s train split as stages.train does it,
    seeded in a clean Keras session (Keras numbers auto-named layers per process, and the names
    go into the saved file; the stage builds one model per process). Validates on `data`'s
    validation split unless `validation` is given. Imports TensorFlow when called."""
    import keras

    from digits.determinism import seed_everything
    from digits.model import Network, build_model, train_model

    keras.backend.clear_session()
    seed_everything(params.seed)
    model = build_model(Network.from_params(params))
    validation = data["validation"] if validation is None else validation
    history = train_model(model, params, data["train"], validation, verbose=0)
    return model, history


# The stages' command lines, with every output under `out`


def train_argv(processed: Path, out: Path, params: Path) -> list[str]:
    return [
        str(processed),
        "--params",
        str(params),
        "--model",
        str(out / "model" / "model.keras"),
        "--history",
        str(out / "plots" / "train" / "history.csv"),
        "--curves",
        str(out / "plots" / "train" / "training_curves.png"),
        "--metrics",
        str(out / "metrics" / "train.json"),
        "--live",
        str(out / "dvclive"),
    ]


def evaluate_argv(processed: Path, out: Path, params: Path, model: Path | None = None) -> list[str]:
    return [
        str(processed),
        "--params",
        str(params),
        "--model",
        str(model or out / "model" / "model.keras"),
        "--metrics",
        str(out / "metrics" / "evaluate.json"),
        "--plots",
        str(out / "plots" / "evaluate"),
    ]


def run_tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m module args` at the project's root, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT,
    )
