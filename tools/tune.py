"""The tuner: an Optuna study whose every trial is an ordinary DVC experiment.

    python -m tools.tune search [--study S] [--trials N] [--timeout SECONDS] [--jobs J]
    python -m tools.tune best [--study S] [--recipe] [--table]

`search` asks Optuna (TPE, seeded from tools/tune.yaml) for a trial, queues it as
`dvc exp run --queue -n <study>-<number> evaluate explore -S ...` (the search space in
tools/tune.yaml), runs the queue with `dvc queue start --jobs J`, reads each finished trial's
objective (a validation score) back from `dvc exp show --json` and tells it to Optuna; up to J
trials are in flight at once. It stops when the study holds N counted trials, or when TIMEOUT
seconds have passed (then it asks no new trial and waits for those in flight).

The study lives in Optuna's storage, by default SQLite in build/tune/<study>.db (git-ignored);
--storage takes any RDB URL, so that several machines on PostgreSQL or MySQL share one study.
Run `search` again to resume a killed search: a trial of this machine that Optuna still has as
running is told from `dvc exp show` if its experiment finished, waited for if the queue still has
it, and failed with its params asked again (a new trial) if its experiment never ran.

`best` reports the best trial: its validation score (what chose it), then its test accuracy
(read only after the choice), and the command that reproduces it; `--recipe` prints the
app-model/recipe.yaml `train:` section it implies; `--table` writes it as a row of the table in
docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.experiments import LOCAL_RUNNER, TABLE_PAGE, format_row, queue_timing, write_rows
from tools.sweep import TARGETS

ROOT = Path(__file__).resolve().parents[1]
SPACE = Path(__file__).with_name("tune.yaml")
DEFAULT_STUDY = "tune"
POLL_SECONDS = 5.0
KINDS = ("choice", "int", "float")
# A failed trial whose experiment never ran (the search was killed first) is marked in the study's
# attrs: it does not count against --trials, and its params are asked again.
NEVER_RAN = "never ran"


class TuneError(Exception):
    """A search space, study or experiment the tuner cannot use; one line says what and why."""


# The search space


@dataclass(frozen=True)
class Param:
    key: str  # the -S key, e.g. train.dropout_rate
    kind: str  # choice | int | float | fixed
    values: tuple  # the choices, (low, high), or (value,)
    log: bool = False


@dataclass(frozen=True)
class Space:
    objective_metrics: str  # a metrics file of the pipeline
    objective_key: str  # dotted key inside it
    sampler_seed: int
    families: dict[str, tuple[Param, ...]]  # train.architecture value -> its params
    text: str  # the file's text: a study refuses another space


def override_value(value: Any) -> str:
    """A YAML value as an -S value: [128,64], true, 0.001, cosine."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(map(override_value, value)) + "]"
    return str(value)


def parse_param(family: str, key: str, spec: Any) -> Param:
    where = f"families.{family}.{key}"
    if not isinstance(spec, dict):
        return Param(key, "fixed", (spec,))
    kinds = [kind for kind in KINDS if kind in spec]
    unknown = sorted(set(spec) - {*KINDS, "log"})
    if len(kinds) != 1 or unknown:
        raise TuneError(f"{where}: give exactly one of {', '.join(KINDS)} (and optionally log)")
    (kind,) = kinds
    values = spec[kind]
    log = spec.get("log", False)
    if kind == "choice":
        if not isinstance(values, list) or not values or log:
            raise TuneError(f"{where}: choice must be a non-empty list, without log")
        return Param(key, kind, tuple(values))
    number = int if kind == "int" else (int, float)
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, number) and not isinstance(v, bool) for v in values)
        or not values[0] < values[1]
        or (log and values[0] <= 0)
        or not isinstance(log, bool)
    ):
        raise TuneError(
            f"{where}: {kind} must be [low, high] with low < high (and low > 0 with log: true), "
            f"got {values!r}"
        )
    return Param(key, kind, (values[0], values[1]), log)


def load_space(path: Path = SPACE) -> Space:
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as error:
        raise TuneError(f"cannot read the search space {path}: {error}") from None
    expected = {"objective", "sampler_seed", "families"}
    if not isinstance(data, dict) or set(data) != expected:
        raise TuneError(f"{path}: needs exactly the keys {sorted(expected)}")
    objective = data["objective"]
    if not isinstance(objective, dict) or set(objective) != {"metrics", "key"}:
        raise TuneError(f"{path}: objective needs exactly metrics and key")
    families = data["families"]
    if not isinstance(families, dict) or not families:
        raise TuneError(f"{path}: families must map train.architecture values to params")
    return Space(
        objective_metrics=objective["metrics"],
        objective_key=objective["key"],
        sampler_seed=int(data["sampler_seed"]),
        families={
            family: tuple(parse_param(family, key, spec) for key, spec in (params or {}).items())
            for family, params in families.items()
        },
        text=text,
    )


def suggest(space: Space, trial: Any) -> list[str]:
    """The -S values of one trial, asked of an Optuna trial (ask/tell API)."""
    family = trial.suggest_categorical("family", list(space.families))
    settings = [f"train.architecture={family}"]
    for param in space.families[family]:
        name = f"{family}/{param.key}"  # each family's params are distinct Optuna params
        if param.kind == "fixed":
            value = param.values[0]
        elif param.kind == "choice":
            # Optuna's choices are scalars: a list is asked for as its -S text.
            texts = [override_value(choice) for choice in param.values]
            settings.append(f"{param.key}={trial.suggest_categorical(name, texts)}")
            continue
        elif param.kind == "int":
            value = trial.suggest_int(name, *param.values, log=param.log)
        else:
            value = trial.suggest_float(name, *param.values, log=param.log)
        settings.append(f"{param.key}={override_value(value)}")
    return settings


def objective_value(space: Space, data: Mapping[str, Any]) -> float | None:
    """The objective from one experiment's `dvc exp show --json` data; None if it has none."""
    found: Any = (data.get("metrics") or {}).get(space.objective_metrics, {}).get("data")
    for part in space.objective_key.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return float(found) if isinstance(found, int | float) else None


# The experiments


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["dvc", *args], cwd=ROOT, capture_output=True, text=True)
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise TuneError(f"`dvc {shlex.join(args)}` exited {result.returncode}: {message[-1:]}")
    return result


@dataclass(frozen=True)
class Shown:
    state: str  # queued | running | success | failed
    data: dict


def exp_states() -> dict[str, Shown]:
    """name -> state and data of every experiment of HEAD in `dvc exp show --json`."""
    found = {}
    for baseline in json.loads(dvc("exp", "show", "--json").stdout):
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


# The study


def host_id() -> str:
    """Which machine and clone a trial runs on: only its own trials does a search resume."""
    return f"{socket.gethostname()}:{ROOT}"


def default_storage(study: str) -> str:
    folder = ROOT / "build" / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / study}.db"


def open_study(name: str, storage: str, space: Space, *, create: bool) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=space.sampler_seed)
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        except KeyError:
            raise TuneError(f"no study {name!r} in {storage}") from None
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, direction="maximize", load_if_exists=True
    )
    attrs = study.user_attrs
    if "space" not in attrs:
        study.set_user_attr("space", space.text)
    elif attrs["space"] != space.text:
        raise TuneError(
            f"study {name!r} was started with another search space: restore tools/tune.yaml "
            "as it was, or start another study with --study"
        )
    return study


def counted(study: Any) -> int:
    """The trials that count against --trials: those asked (not those waiting to be asked again),
    but those that never ran."""
    from optuna.trial import TrialState

    asked = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    never_ran = study.user_attrs
    trials = study.get_trials(deepcopy=False, states=asked)
    return sum(f"{NEVER_RAN} {trial.number}" not in never_ran for trial in trials)


def tell(study: Any, space: Space, number: int, shown: Shown | None) -> bool:
    """Tell Optuna the outcome of trial `number` if its experiment is over; True if told."""
    from optuna.trial import TrialState

    if shown is None:  # never queued (the search was killed first), or removed from the queue
        trial = study.get_trials(deepcopy=False)[number]
        study.set_user_attr(f"{NEVER_RAN} {number}", True)  # one key per trial: no races
        study.tell(number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)  # asked again, as a new trial
        return True
    if shown.state in ("queued", "running"):
        return False
    value = objective_value(space, shown.data) if shown.state == "success" else None
    if value is None:
        study.tell(number, state=TrialState.FAIL)
    else:
        study.tell(number, value)
    return True


def search(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    space = load_space(args.space)
    study = open_study(args.study, args.storage, space, create=True)
    host = host_id()
    # Trials of this machine that a killed search left running: told, adopted, or asked again.
    in_flight = {
        trial.user_attrs.get("experiment", f"{args.study}-{trial.number}"): trial.number
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if trial.user_attrs.get("host") == host
    }
    started = time.monotonic()
    while True:
        shown = exp_states()
        for name, number in list(in_flight.items()):
            if tell(study, space, number, shown.get(name)):
                del in_flight[name]
                print(f"{name}: {describe(study.get_trials(deepcopy=False)[number])}")
        left = args.trials - counted(study)
        timed_out = args.timeout is not None and time.monotonic() - started > args.timeout
        queued = False
        while len(in_flight) < args.jobs and left > 0 and not timed_out:
            trial = study.ask()
            name = f"{args.study}-{trial.number}"
            settings = suggest(space, trial)
            for key, value in (("experiment", name), ("settings", settings), ("host", host)):
                trial.set_user_attr(key, value)
            trial.set_user_attr("jobs", args.jobs)
            queue_trial(name, settings)
            print(f"{name}: queued {shlex.join(settings)}")
            in_flight[name] = trial.number
            left -= 1
            queued = True
        if not in_flight:
            break
        # Workers leave 10 s after the queue empties: start them whenever a trial waits.
        if queued or any(
            shown.get(name, Shown("queued", {})).state == "queued" for name in in_flight
        ):
            dvc("queue", "start", "--jobs", str(args.jobs))
        time.sleep(args.poll)
    report(study, space)
    return 0


def describe(trial: Any) -> str:
    if trial.value is not None:
        return f"validation {trial.value:.4f}"
    return f"{trial.state.name.lower()} (see `dvc queue logs {trial.user_attrs['experiment']}`)"


# The result


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
    best = best_trial(study, space, exp_states())
    print(
        f"best of {best.trials} trials: {best.name}, validation "
        f"({space.objective_metrics} {space.objective_key}) {best.validation:.4f}; "
        f"its test accuracy {best.test:.4f}\nreproduce: {shlex.join(run_command(best.settings))}"
    )
    return best


def recipe_for(settings: Sequence[str], params: Path = ROOT / "params.yaml") -> dict:
    """The app-model/recipe.yaml `train:` section a trial implies: params.yaml's train section
    with the trial's -S values applied the way `dvc exp run -S` applies them."""
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "params.yaml"
        shutil.copy(params, copy)
        apply_overrides(copy, list(settings))
        return {"train": yaml.safe_load(copy.read_text(encoding="utf-8"))["train"]}


def table_row(best: Best, study: str) -> str:
    timing = queue_timing(best.name)
    runner = LOCAL_RUNNER if best.jobs == 1 else f"{LOCAL_RUNNER}, {best.jobs} trials at once"
    return format_row(
        best.name,
        f"best of study {study} ({best.trials} trials)",
        best.data,
        timing.__class__(timing.epochs, timing.seconds, timing.parameters, runner),
        run_command(best.settings),
        chosen_by="tuner, on validation",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    actions = parser.add_subparsers(dest="action", required=True)
    for action in (
        actions.add_parser("search", help="run (or resume) the search"),
        actions.add_parser("best", help="report the best trial"),
    ):
        action.add_argument("--study", default=DEFAULT_STUDY, help="the study's name")
        action.add_argument(
            "--storage", help="Optuna storage URL (default: sqlite:///build/tune/STUDY.db)"
        )
        action.add_argument("--space", type=Path, default=SPACE, help="the search space")
    search_action = actions.choices["search"]
    search_action.add_argument(
        "--trials", type=positive_int, default=30, help="trials the study ends with (default 30)"
    )
    search_action.add_argument(
        "--timeout", type=float, help="seconds after which no new trial starts (default: none)"
    )
    search_action.add_argument(
        "--jobs", type=positive_int, default=1, help="trials at once (dvc queue start --jobs)"
    )
    search_action.add_argument("--poll", type=float, default=POLL_SECONDS, help=argparse.SUPPRESS)
    best_action = actions.choices["best"]
    best_action.add_argument("--recipe", action="store_true", help="print its app recipe")
    best_action.add_argument("--table", action="store_true", help=f"write its row in {TABLE_PAGE}")
    args = parser.parse_args(argv)
    if args.storage is None:
        args.storage = default_storage(args.study)
    return args


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.action == "search":
            return search(args)
        space = load_space(args.space)
        study = open_study(args.study, args.storage, space, create=False)
        best = report(study, space)
        if args.recipe:
            print(yaml.safe_dump(recipe_for(best.settings), sort_keys=False), end="")
        if args.table:
            write_rows({best.name: table_row(best, args.study)})
    except TuneError as error:
        print(f"tools.tune: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
