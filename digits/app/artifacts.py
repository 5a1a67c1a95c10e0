"""Which model the app loads by default, and what a model file is: its name, version and test
accuracy, from what DVC recorded about it.

    data/app-model/model.keras  digits-recogniser: the app's model (app-model/dvc.yaml's
                                train-app, recipe app-model/recipe.yaml); the default when it
                                exists
    data/model/model.keras      digits-classifier: the pipeline's MLP (stage train, params.yaml);
                                the fallback, with a note saying how to get the better one

Paths are relative to the current folder (a clone of the project), like dvc.yaml's; the names
are dvc.yaml's `artifacts:` entries (tests/test_app_artifacts.py checks both against dvc.yaml). A
model's version is the md5 of its file (the hash dvc.lock records; the first 8 hex digits are
shown). Its test accuracy is read from the evaluate stage's metrics file only when dvc.lock
says that stage evaluated this very file (same md5) and wrote that very metrics file; otherwise
it is "unknown", with the command that refreshes it. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from digits.errors import DigitsError

SHORT_MD5 = 8  # hex digits of the md5 shown as the version

# How long `make app-model` trains the app's model on the reference 2-core machine, for the
# message shown when it is missing. Measured for the current recipe (14 epochs): 913 s in
# `dvc repro` (2026-11-26, the test suite running beside it), 930 s in the sweep's queue, and
# epochs of 41-43 s in the machine's fast state (about 10 minutes in all).
APP_MODEL_TRAINING_MINUTES = "10 to 16"


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

GET_APP_MODEL = (
    f"`dvc pull {APP_MODEL.address(APP_MODEL.train_stage)}` (from the project's DVC remote) "
    "or `make app-model` "
    f"(trains it: about {APP_MODEL_TRAINING_MINUTES} minutes on 2 cores)"
)
GET_PIPELINE_MODEL = "`make repro` or `dvc pull`"


@dataclass(frozen=True)
class DefaultModel:
    """The model to load when --model is not given, and a note for stderr if it is not the
    app's own."""

    path: Path
    note: str | None = None


def default_model() -> DefaultModel:
    """The app's model if it exists, else the pipeline's MLP (with a note); DigitsError,
    naming both and how to get them, if neither exists."""
    if APP_MODEL.path.exists():
        return DefaultModel(APP_MODEL.path)
    if PIPELINE_MODEL.path.exists():
        return DefaultModel(
            PIPELINE_MODEL.path,
            f"note: {APP_MODEL.role} ({APP_MODEL.path}) is missing: using {PIPELINE_MODEL.role} "
            f"({PIPELINE_MODEL.path}), which reads handwriting less well. Get the better one "
            f"with {GET_APP_MODEL}.",
        )
    raise DigitsError(
        f"no model: neither {APP_MODEL.path} ({APP_MODEL.role}: {GET_APP_MODEL}) nor "
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
    """Name, version and test accuracy of the model file at `path` (which must exist)."""
    md5 = file_md5(path)
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
        note = f"test accuracy unknown: not a model that {locks} here records"
        return ModelInfo(path, path.name, md5, None, note)
    accuracy, note = _test_accuracy(known, md5, read_lock(known.lock))
    return ModelInfo(path, known.artifact, md5, accuracy, note)


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
