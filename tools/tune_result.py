"""The tuner's trials as DVC experiments (queued, read back from `dvc exp show --json`) and the
search's result: the best trial on validation, its test score, its recipe and its table row."""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.experiment_records import TUNER, Timing, record
from tools.experiments import LOCAL_RUNNER, queue_timing
from tools.sweep import TARGETS
from tools.tune_space import Space, TuneError

ROOT = Path(__file__).resolve().parents[1]
EXP_SHOW_TRIES = 10
EXP_SHOW_RETRY_SECONDS = 2.0


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # Its output goes through files, not pipes: `dvc queue start` leaves a process holding its
    # stdout and stderr open for as long as the workers it started run, and reading pipes to
    # their end would wait for the workers to leave.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(["dvc", *args], cwd=ROOT, stdout=out, stderr=err).returncode
        out.seek(0), err.seek(0)
        result = subprocess.CompletedProcess(["dvc", *args], code, out.read(), err.read())
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise TuneError(f"`dvc {shlex.join(args)}` exited {result.returncode}: {message[-1:]}")
    return result


@dataclass(frozen=True)
class Shown:
    state: str  # queued | running | success | failed
    data: dict


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise TuneError(f"`git {shlex.join(args)}` exited {result.returncode}: {result.stderr}")
    return result.stdout


def exp_states(commit: str) -> dict[str, Shown]:
    """name -> state and data of every experiment of `commit` in `dvc exp show --json`.

    `dvc exp show` reads the queue's running experiments, and fails when it meets one a worker
    is still setting up or removing (".dvc/tmp/exps/tmpXXXX/.dvc does not exist", or no
    ".dvc/tmp/exps/run/REV/REV.run" yet): it is asked again, EXP_SHOW_TRIES times
    EXP_SHOW_RETRY_SECONDS apart, before its error stops the search."""
    for attempt in range(1, EXP_SHOW_TRIES + 1):
        result = dvc("exp", "show", "--json", "--rev", commit, check=attempt == EXP_SHOW_TRIES)
        if result.returncode == 0:
            break
        time.sleep(EXP_SHOW_RETRY_SECONDS)
    found = {}
    for baseline in json.loads(result.stdout):
        for experiment in baseline.get("experiments") or []:
            latest = experiment["revs"][0]
            executor = experiment.get("executor") or {"state": "success"}  # None once collected
            found[experiment.get("name") or latest.get("name")] = Shown(
                executor["state"], latest.get("data") or {}
            )
    return found


def run_command(settings: Sequence[str]) -> list[str]:
    """The `dvc exp run` that reproduces a trial: the pipeline's own stages, never the app's."""
    return ["dvc", "exp", "run", *TARGETS] + [p for s in settings for p in ("-S", s)]


def queue_trial(name: str, settings: Sequence[str]) -> None:
    command = run_command(settings)
    dvc(*command[1:3], "--queue", "-n", name, *command[3:])


@dataclass(frozen=True)
class Best:
    name: str
    settings: list[str]
    validation: float
    test: float
    trials: int
    jobs: int
    data: dict


def best_trial(study: Any, space: Space, shown: Mapping[str, Shown]) -> Best:
    """The trial with the best validation score; its test score is read only after the choice."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise TuneError(f"study {study.study_name!r} has no finished trial yet")
    chosen = max(complete, key=lambda trial: (trial.value, -trial.number))
    name = chosen.user_attrs["experiment"]
    if name not in shown:
        raise TuneError(f"{name} is not in `dvc exp show` here (`dvc exp pull` it first)")
    data = shown[name].data
    test = data["metrics"]["metrics/evaluate.json"]["data"]["test"]["accuracy"]
    return Best(
        name, list(chosen.user_attrs["settings"]), chosen.value, test, len(complete),
        int(chosen.user_attrs.get("jobs", 1)), data,
    )  # fmt: skip


def report(study: Any, space: Space) -> Best:
    best = best_trial(study, space, exp_states(study.user_attrs["commit"]))
    print(
        f"best of {best.trials} trials: {best.name}, validation "
        f"({space.objective_metrics} {space.objective_key}) {best.validation:.4f}; "
        f"its test accuracy {best.test:.4f}\nreproduce: {shlex.join(run_command(best.settings))}"
    )
    return best


def recipe_for(settings: Sequence[str], params: str) -> dict:
    """The app-model/recipe.yaml `train:` section a trial implies: the train section of
    `params` (the text of the study's params.yaml) with the trial's -S values applied the way
    `dvc exp run -S` applies them."""
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "params.yaml"
        copy.write_text(params, encoding="utf-8")
        apply_overrides(copy, list(settings))
        return {"train": yaml.safe_load(copy.read_text(encoding="utf-8"))["train"]}


def table_record(best: Best, study: str) -> dict:
    """The best trial as a record of the experiments table (tools.experiments.write_rows)."""
    timing = queue_timing(best.name)
    runner = LOCAL_RUNNER if best.jobs == 1 else f"{LOCAL_RUNNER}, {best.jobs} trials at once"
    return record(
        best.name,
        f"best of study {study} ({best.trials} trials)",
        best.settings,
        best.data,
        Timing(timing.epochs, timing.seconds, timing.parameters, runner),
        run_command(best.settings),
        chosen_by=TUNER,
    )
