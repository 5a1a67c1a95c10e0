"""Which model the app loads by default, and what a model file is: its name, version and test
accuracy, from its model card or from what DVC recorded about it.

    data/app-model/recogniser/  digits-recogniser: the app's model (model.keras) with its model
                                card (model.json, MODEL_CARD.md), written by app-model/dvc.yaml's
                                card-app; the default when it exists
    data/model/model.keras      digits-classifier: the pipeline's MLP (stage train, params.yaml);
                                the fallback, with a note saying how to get the better one

Paths are relative to the current folder (a clone of the project), like dvc.yaml's; the names
are dvc.yaml's `artifacts:` entries (tests/test_app_artifacts.py checks both against dvc.yaml). A
model's version is the md5 of its file (the first 8 hex digits are shown). A .keras file with a
model.json beside it (the recogniser's folder, here or fetched with `dvc artifacts get`
anywhere) is described by that card, when the card is for this very file (same md5). Without a
card, its test accuracy is read from the evaluate stage's metrics file only when dvc.lock says
that stage evaluated this very file and wrote that very metrics file; otherwise it is
"unknown", with the reason. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from digits.card import CARD_FILE, MODEL_FILE, measured_training, read_card, training_text
from digits.errors import DigitsError
from digits.params import TrainParams, load_section

SHORT_MD5 = 8  # hex digits of the md5 shown as the version
APP_FOLDER = Path("data/app-model/recogniser")  # the digits-recogniser artifact
APP_MODEL_FILE = APP_FOLDER / MODEL_FILE
# The sweep's measurements (python -m tools.experiments table), for the app's training time.
EXPERIMENT_RECORDS = Path("docs/experiments.json")
APP_ROW = "app-model"
APP_RECIPE = Path("app-model/recipe.yaml")  # what train-app trains


@dataclass(frozen=True)
class ProjectModel:
    """A model the pipeline builds: its DVC artifact name, file, stages (in the pipeline file
    `pipeline`, whose lock sits beside it) and metrics file."""

    artifact: str
    path: Path
    role: str
    pipeline: Path
    train_stage: str
    evaluate_stage: str
    metrics: Path

    @property
    def lock(self) -> Path:
        return self.pipeline.with_name("dvc.lock")

    def address(self, stage: str) -> str:
        """How DVC commands name the stage: `train`, or `app-model/dvc.yaml:train-app`."""
        return stage if self.pipeline == Path("dvc.yaml") else f"{self.pipeline}:{stage}"


APP_MODEL = ProjectModel(
    artifact="digits-recogniser",
    path=Path("data/app-model/model.keras"),
    role="the app's model",
    pipeline=Path("app-model/dvc.yaml"),
    train_stage="train-app",
    evaluate_stage="evaluate-app",
    metrics=Path("metrics/app-model/evaluate.json"),
)
PIPELINE_MODEL = ProjectModel(
    artifact="digits-classifier",
    path=Path("data/model/model.keras"),
    role="the pipeline's MLP",
    pipeline=Path("dvc.yaml"),
    train_stage="train",
    evaluate_stage="evaluate",
    metrics=Path("metrics/evaluate.json"),
)
PROJECT_MODELS = (APP_MODEL, PIPELINE_MODEL)

CARD_STAGE = "card-app"
GET_PIPELINE_MODEL = "`make repro` or `dvc pull`"


def app_training_time(records: Path = EXPERIMENT_RECORDS, recipe: Path = APP_RECIPE) -> str:
    """How long the app's model trained when the sweep last measured its row, if that row
    trained the recipe in `recipe`: '930 s (14 epochs) on local queue, 2 cores
    (docs/experiments.json, row app-model)'."""
    try:
        measured = json.loads(records.read_text(encoding="utf-8"))
        train = load_section(recipe, "train", TrainParams)
    except (OSError, ValueError, DigitsError):
        return f"its training time is the {APP_ROW} row of {records} in a clone"
    training = measured_training(measured, APP_ROW, train) if isinstance(measured, dict) else None
    if training is None:
        return f"not timed: the {APP_ROW} row of {records} trained another recipe than {recipe}"
    return f"{training_text(training)} ({records}, row {APP_ROW})"


def get_app_model() -> str:
    """How to get the app's model, with its measured training time."""
    return (
        f"`dvc pull {APP_MODEL.address(CARD_STAGE)}` (from the project's DVC remote) or "
        f"`make app-model` (trains it: {app_training_time()})"
    )


def model_file(given: Path) -> Path:
    """--model as a .keras file: a folder (the recogniser's, with its card) stands for the
    model.keras inside it; DigitsError if a folder has none."""
    if not given.is_dir():
        return given
    if not (given / MODEL_FILE).is_file():
        raise DigitsError(
            f"{given}: not a .keras file, nor a folder with a {MODEL_FILE} in it (as "
            f"{APP_FOLDER} holds, with its model card)"
        )
    return given / MODEL_FILE


@dataclass(frozen=True)
class DefaultModel:
    """The model to load when --model is not given, and a note for stderr if it is not the
    app's own."""

    path: Path
    note: str | None = None


def default_model() -> DefaultModel:
    """The app's model if it exists, else the pipeline's MLP (with a note); DigitsError,
    naming both and how to get them, if neither exists."""
    if APP_MODEL_FILE.exists():
        return DefaultModel(APP_MODEL_FILE)
    if PIPELINE_MODEL.path.exists():
        return DefaultModel(
            PIPELINE_MODEL.path,
            f"note: {APP_MODEL.role} ({APP_MODEL_FILE}) is missing: using {PIPELINE_MODEL.role} "
            f"({PIPELINE_MODEL.path}), which reads handwriting less well. Get the better one "
            f"with {get_app_model()}.",
        )
    raise DigitsError(
        f"no model: neither {APP_MODEL_FILE} ({APP_MODEL.role}: {get_app_model()}) nor "
        f"{PIPELINE_MODEL.path} ({PIPELINE_MODEL.role}: {GET_PIPELINE_MODEL}) exists in this "
        "folder. Run one of those in a clone of the project, or pass --model PATH"
    )


@dataclass(frozen=True)
class ModelInfo:
    """What the app says about a model file: name, version, test accuracy (or why unknown)."""

    path: Path
    name: str  # the artifact's name, or the file's name if the project does not know it
    md5: str  # the full md5 of the file, as dvc.lock records it
    accuracy: float | None  # test accuracy, when the metrics file is this file's
    accuracy_note: str  # where the accuracy comes from, or why it is unknown

    @property
    def version(self) -> str:
        return f"md5 {self.md5[:SHORT_MD5]}"

    def line(self) -> str:
        """'digits-recogniser (data/app-model/model.keras), md5 1a2b3c4d, test accuracy ...'"""
        return f"{self.name} ({self.path}), {self.version}, {self.accuracy_note}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "md5": self.md5,
            "test_accuracy": self.accuracy,
            "description": self.line(),
        }


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_lock(path: Path) -> dict[str, Any]:
    """A dvc.lock's stages, or {} when there is no readable lock file at `path`."""
    try:
        lock = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    stages = lock.get("stages") if isinstance(lock, dict) else None
    return stages if isinstance(stages, dict) else {}


def recorded_md5(stage: Any, kind: str, path: Path) -> str | None:
    """The md5 dvc.lock recorded for `path` among a stage's deps or outs."""
    entries = stage.get(kind) if isinstance(stage, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and Path(str(entry.get("path"))) == path:
            return entry.get("md5")
    return None


def read_model_info(path: Path) -> ModelInfo:
    """Name, version and test accuracy of the model file at `path` (which must exist): from
    the model card beside it, else from the project's dvc.lock files."""
    md5 = file_md5(path)
    card_path = path.with_name(CARD_FILE)
    if card_path.is_file():
        return _card_info(path, md5, card_path)
    known = next((model for model in PROJECT_MODELS if _same_file(path, model.path)), None)
    if known is None:  # a copy (e.g. from `dvc artifacts get`): known by its content
        known = next(
            (
                model
                for model in PROJECT_MODELS
                if md5
                == recorded_md5(read_lock(model.lock).get(model.train_stage), "outs", model.path)
            ),
            None,
        )
    if known is None:
        locks = " or ".join(sorted({str(model.lock) for model in PROJECT_MODELS}))
        note = (
            f"test accuracy unknown: no model card ({CARD_FILE}) beside it, and not a model "
            f"that {locks} here records"
        )
        return ModelInfo(path, path.name, md5, None, note)
    accuracy, note = _test_accuracy(known, md5, read_lock(known.lock))
    return ModelInfo(path, known.artifact, md5, accuracy, note)


def _card_info(path: Path, md5: str, card_path: Path) -> ModelInfo:
    """What the model card beside `path` says of it, if it is a card and this file's."""
    try:
        card = read_card(card_path)
    except DigitsError as error:
        return ModelInfo(path, path.name, md5, None, f"test accuracy unknown: {error}")
    if card["md5"] != md5:
        short = card["md5"][:SHORT_MD5]
        note = f"test accuracy unknown: {card_path} is for md5 {short}, not this file"
        return ModelInfo(path, path.name, md5, None, note)
    accuracy = float(card["test"]["accuracy"])
    note = f"test accuracy {accuracy:.4f} ({card_path.name})"
    return ModelInfo(path, card["artifact"], md5, accuracy, note)


def _test_accuracy(model: ProjectModel, md5: str, lock: dict) -> tuple[float | None, str]:
    refresh = f"run `dvc repro {model.address(model.evaluate_stage)}`"
    stage = lock.get(model.evaluate_stage)
    if stage is None:
        where = f"no {model.evaluate_stage} stage in {model.lock}"
        return None, f"test accuracy unknown: {where} ({refresh})"
    evaluated = recorded_md5(stage, "deps", model.path)
    if evaluated != md5:
        short = (evaluated or "none")[:SHORT_MD5]
        return None, (
            f"test accuracy unknown: {model.metrics} is for md5 {short}, not this file ({refresh})"
        )
    try:
        written = file_md5(model.metrics)
        metrics = json.loads(model.metrics.read_text(encoding="utf-8"))
        accuracy = float(metrics["test"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"test accuracy unknown: {model.metrics} is missing or unreadable ({refresh})"
    if written != recorded_md5(stage, "outs", model.metrics):
        return None, (
            f"test accuracy unknown: {model.metrics} is not the file {model.lock} records "
            f"({refresh})"
        )
    return accuracy, f"test accuracy {accuracy:.4f} ({model.metrics})"


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.resolve() == other.resolve()
    except OSError:
        return False
