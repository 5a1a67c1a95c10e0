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
import shlex
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.experiments import TABLE_PAGE, write_rows
from tools.tune_result import (
    ROOT,
    Shown,
    dvc,
    exp_states,
    git,
    queue_trial,
    recipe_for,
    report,
    table_record,
)
from tools.tune_space import SPACE, Space, TuneError, load_space, objective_value, suggest

DEFAULT_STUDY = "tune"
POLL_SECONDS = 5.0
# Workers take seconds to start and take the queue's trials: a second `dvc queue start` before
# then would start the same workers again.
WORKER_START_SECONDS = 30.0
# A failed trial whose experiment never ran (the search was killed first) is marked in the study's
# attrs: it does not count against --trials, and its params are asked again.
NEVER_RAN = "never ran"


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
    # A study's trials are experiments of one commit, with one search space: comparable.
    head = git("rev-parse", "HEAD").strip()
    attrs = study.user_attrs
    if "space" not in attrs:
        study.set_user_attr("space", space.text)
        study.set_user_attr("commit", head)
    elif attrs["space"] != space.text:
        raise TuneError(
            f"study {name!r} was started with another search space: restore tools/tune.yaml "
            "as it was, or start another study with --study"
        )
    elif attrs["commit"] != head:
        raise TuneError(
            f"study {name!r} runs on commit {attrs['commit'][:7]}, HEAD is {head[:7]}: "
            f"`git checkout {attrs['commit'][:7]}` to resume it, or start another --study"
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


def check_workspace(commit: str) -> None:
    """`dvc exp run --queue` takes HEAD and the work tree's changes as they are when a trial is
    queued: a commit or an edit during the search would slip into the later trials."""
    head = git("rev-parse", "HEAD").strip()
    if head != commit:
        raise TuneError(
            f"HEAD moved to {head[:7]} during the search of commit {commit[:7]}: no more trials "
            f"are queued; `git checkout {commit[:7]}` and rerun to resume"
        )
    changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
    if changed:
        raise TuneError(
            f"tracked files changed during the search ({', '.join(c[3:] for c in changed[:3])}): "
            "trials would not be of the commit; no more trials are queued, run the search from "
            "a clean work tree (a clone or `git worktree add`) and rerun to resume"
        )


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
    workers_started = -WORKER_START_SECONDS
    while True:
        shown = exp_states(study.user_attrs["commit"])
        for name, number in list(in_flight.items()):
            if tell(study, space, number, shown.get(name)):
                del in_flight[name]
                print(f"{name}: {describe(study.get_trials(deepcopy=False)[number])}")
        left = args.trials - counted(study)
        timed_out = args.timeout is not None and time.monotonic() - started > args.timeout
        queued = False
        while len(in_flight) < args.jobs and left > 0 and not timed_out:
            check_workspace(study.user_attrs["commit"])
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
        waiting = queued or any(
            shown.get(name, Shown("queued", {})).state == "queued" for name in in_flight
        )
        if waiting and time.monotonic() - workers_started > WORKER_START_SECONDS:
            dvc("queue", "start", "--jobs", str(args.jobs))
            workers_started = time.monotonic()
        time.sleep(args.poll)
    report(study, space)
    return 0


def describe(trial: Any) -> str:
    if trial.value is not None:
        return f"validation {trial.value:.4f}"
    return f"{trial.state.name.lower()} (see `dvc queue logs {trial.user_attrs.get('experiment')}`)"


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
            params = git("show", f"{study.user_attrs['commit']}:params.yaml")
            print(yaml.safe_dump(recipe_for(best.settings, params), sort_keys=False), end="")
        if args.table:
            write_rows({best.name: table_record(best, args.study)})
    except TuneError as error:
        print(f"tools.tune: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
