"""docs/experiments.json: the sweep's table as records, one per row, for programs.

`python -m tools.experiments table` writes it with the Markdown table in docs/experiments.md
(the same rows): name -> description, settings (the -S values), train (the train section they
trained, from `dvc exp show`), validation and test accuracy, macro F1, parameters, seconds,
epochs, runner (where it trained), what chose the row and the command that reproduces it. The
app-model pipeline's card-app stage reads the app-model row's training time from it when that
row trained the app's recipe, and so does the app's missing-model message. Standard library
only, like tools/sweep.py (the plan job).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.sweep import EXPERIMENTS, command

ROOT = Path(__file__).resolve().parents[1]
TABLE_RECORDS = ROOT / "docs" / "experiments.json"


@dataclass(frozen=True)
class Timing:
    """How one run of an experiment trained (the train stage's log line), and where."""

    epochs: int
    seconds: float
    parameters: int
    runner: str


# Train keys added after some of the table's rows ran, with the value those rows trained with: a
# new key's default keeps what the code did before the key existed.
ADDED_TRAIN_KEYS = {"label_smoothing": 0.0}
HAND = "written by hand"  # what chose the sweep's rows (typed in tools/sweep.py)
TUNER = "tuner, on validation"  # the best trial of a search (tools/tune.py)


def row_record(name: str, data: dict, timing: Timing) -> dict[str, Any]:
    """The record of the sweep's row `name` from `dvc exp show --json` data and its Timing."""
    reproduce = [part for part in command(name) if part not in ("-n", name)]
    experiment = EXPERIMENTS[name]
    return record(name, experiment.description, experiment.settings, data, timing, reproduce, HAND)


def record(
    name: str,
    description: str,
    settings: Sequence[str],
    data: dict,
    timing: Timing,
    reproduce: Sequence[str],
    chosen_by: str,
) -> dict[str, Any]:
    """One row's record from `dvc exp show --json` data and the run's Timing.

    The timing must be this run's: a queue task or timing file left over from an earlier run of
    the same name would give another run's time, so its epochs and parameter count must match.
    """
    test = data["metrics"]["metrics/evaluate.json"]["data"]["test"]
    train = data["metrics"]["metrics/train.json"]["data"]
    if (timing.epochs, timing.parameters) != (train["epochs"], train["parameters"]):
        raise SystemExit(
            f"the timing of {name} is another run's ({timing.epochs} epochs, "
            f"{timing.parameters:,} parameters; the experiment has {train['epochs']} and "
            f"{train['parameters']:,}): remove the stale task with `dvc queue remove <task>` "
            "or the stale timing file"
        )
    return {
        "description": description,
        "settings": list(settings),
        "train": with_added_keys(data["params"]["params.yaml"]["data"]["train"]),  # as trained
        "validation_accuracy": train["best"]["val_accuracy"],
        "test_accuracy": test["accuracy"],
        "macro_f1": test["macro"]["f1"],
        **asdict(timing),
        "chosen_by": chosen_by,
        "reproduce": shlex.join(reproduce),
    }


def with_added_keys(train: dict[str, Any]) -> dict[str, Any]:
    """A train section as it trained: with the ADDED_TRAIN_KEYS it ran before."""
    return {**train, **{key: value for key, value in ADDED_TRAIN_KEYS.items() if key not in train}}


def read_records(path: Path) -> dict[str, dict]:
    """name -> record of each row in the table's JSON file ({} if there is none yet)."""
    if not path.exists():
        return {}
    records = json.loads(path.read_text(encoding="utf-8"))["experiments"]
    return {name: {**row, "train": with_added_keys(row["train"])} for name, row in records.items()}


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
