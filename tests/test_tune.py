"""tools/tune.py: the search space gives valid params, the choice is made on validation (never
test), and a search on synthetic data runs its trials as DVC experiments in parallel, survives
being killed, and resumes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from dvc.utils.hydra import apply_overrides
from helpers.dvc_project import VENV_BIN, make_project, metrics_of, params_of, queue_report
from helpers.dvc_project import experiments as exp_show
from optuna.trial import TrialState

from digits.params import TrainParams, load_section
from tools import experiments, sweep, tune, tune_result, tune_space
from tools.tune_result import Shown
from tools.tune_space import TuneError

PROJECT = Path(__file__).parents[1]


def corner_settings(space: tune_space.Space) -> list[list[str]]:
    """Trials at every end of every range and at every choice, one family at a time."""
    found = []
    for family, params in space.families.items():
        searched = [param for param in params if param.kind != "fixed"]
        for position in range(max((len(param.values) for param in searched), default=1)):
            asked = {"family": family}
            for param in searched:
                value = param.values[position % len(param.values)]
                text = param.kind == "choice"
                asked[f"{family}/{param.key}"] = tune_space.override_value(value) if text else value
            found.append(tune_space.suggest(space, optuna.trial.FixedTrial(asked)))
    return found


def train_value(train: dict, key: str) -> object:
    """The value of an -S key (train.augmentation.enabled) in a dumped train section."""
    for part in key.split(".")[1:]:
        train = train[part]
    return train


COMMITTED_SPACES = sorted(PROJECT.glob("tools/tune*.yaml"))  # tune.yaml, tune-mlp.yaml


@pytest.mark.parametrize(
    "settings",
    [s for path in COMMITTED_SPACES for s in corner_settings(tune_space.load_space(path))],
    ids=str,
)
def test_the_committed_space_gives_valid_params(settings: list[str], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(PROJECT / "params.yaml", params)
    apply_overrides(params, settings)
    train = load_section(params, "train", TrainParams)
    for setting in settings:  # each -S value took effect
        key, value = setting.split("=", 1)
        assert train_value(train.model_dump(), key) == yaml.safe_load(value), setting


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"float": [0.5, 0.1]}, r"families.mlp.train.dropout_rate: float must be \[low, high\]"),
        ({"int": [1, 3], "choice": [1]}, "give exactly one of choice, int, float"),
        ({"float": [0.0, 0.1], "log": True}, r"low > 0 with log: true"),
        ({"choice": []}, "choice must be a non-empty list"),
        ({"uniform": [0, 1]}, "give exactly one of"),
    ],
)
def test_a_bad_range_is_refused_naming_it(spec: dict, message: str, tmp_path: Path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "objective": {"metrics": "metrics/train.json", "key": "best.val_accuracy"},
                "sampler_seed": 1,
                "families": {"mlp": {"train.dropout_rate": spec}},
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(tune_space.TuneError, match=message):
        tune_space.load_space(path)


def test_the_sampler_is_seeded() -> None:
    space = tune_space.load_space()

    def first_trials() -> list[list[str]]:
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=space.sampler_seed)
        )
        asked = []
        for value in (0.9, 0.8, 0.95):
            trial = study.ask()
            asked.append(tune_space.suggest(space, trial))
            study.tell(trial, value)
        return asked

    assert first_trials() == first_trials()


def shown_trial(validation: float, test: float) -> tune_result.Shown:
    return tune_result.Shown(
        "success",
        {
            "metrics": {
                "metrics/train.json": {"data": {"best": {"val_accuracy": validation}}},
                "metrics/evaluate.json": {"data": {"test": {"accuracy": test}}},
            }
        },
    )


def test_the_best_trial_is_chosen_on_validation_not_test() -> None:
    """Trial 1 has the best test score, trial 0 the best validation score: 0 is chosen, and its
    own test score is reported."""
    space = tune_space.load_space()
    study = optuna.create_study(direction="maximize")
    shown = {"s-0": shown_trial(0.97, 0.90), "s-1": shown_trial(0.95, 0.99)}
    for name in shown:
        trial = study.ask()
        trial.set_user_attr("experiment", name)
        trial.set_user_attr("settings", [f"train.epochs={trial.number + 1}"])
        assert tune.tell(study, space, trial.number, shown[name])

    best = tune_result.best_trial(study, space, shown)
    assert (best.name, best.validation, best.test) == ("s-0", 0.97, 0.90)
    assert best.settings == ["train.epochs=1"]


def test_a_trial_whose_experiment_never_ran_is_failed_and_asked_again() -> None:
    space = tune_space.load_space()
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    tune_space.suggest(space, trial)
    asked = dict(trial.params)

    assert not tune.tell(study, space, trial.number, Shown("running", {}))  # still waits
    assert tune.tell(study, space, trial.number, None)  # not in `dvc exp show`: never ran
    assert study.trials[0].state == TrialState.FAIL
    assert tune.counted(study) == 0
    again = study.ask()
    tune_space.suggest(space, again)
    assert again.params == asked

    failed = study.ask()
    tune_space.suggest(space, failed)
    assert tune.tell(study, space, failed.number, Shown("failed", {}))  # ran, and failed
    assert tune.counted(study) == 2  # the one asked again and the failed one count


SHOW_RACE = (
    "ERROR: failed to show experiments - directory '.dvc/tmp/exps/tmp4_728lca/.dvc' does not exist"
)


@pytest.mark.parametrize("failures", [1, tune_result.EXP_SHOW_TRIES])
def test_exp_show_is_asked_again_when_it_meets_a_workspace_being_made(
    failures: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `dvc exp show` fails while a worker creates or removes an experiment's temporary workspace:
    # a search polling it then must not stop, unless it keeps failing.
    shown = [{"experiments": [{"name": "s-0", "revs": [{"data": {}}], "executor": None}]}]
    answers = [subprocess.CompletedProcess([], 1, "", SHOW_RACE)] * failures
    answers.append(subprocess.CompletedProcess([], 0, json.dumps(shown), ""))

    def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        answer = answers.pop(0)
        if check and answer.returncode:
            raise TuneError(answer.stderr)
        return answer

    monkeypatch.setattr(tune_result, "dvc", dvc)
    monkeypatch.setattr(tune_result, "EXP_SHOW_RETRY_SECONDS", 0)
    if failures < tune_result.EXP_SHOW_TRIES:
        assert tune_result.exp_states("HEAD") == {"s-0": Shown("success", {})}
    else:
        with pytest.raises(TuneError, match="does not exist"):
            tune_result.exp_states("HEAD")


def test_dvc_returns_when_the_command_ends_not_when_what_it_started_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `dvc queue start` leaves a process holding its stdout and stderr while its workers run: the
    # search must go on polling, not wait on that output until the workers leave.
    fake = tmp_path / "dvc"
    fake.write_text("#!/bin/sh\nsleep 20 &\necho \"Started '1' new worker.\"\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    result = tune_result.dvc("queue", "start", "--jobs", "1")
    assert time.monotonic() - started < 10
    assert result.stdout == "Started '1' new worker.\n"


def test_the_recipe_is_params_train_section_with_the_trial_applied() -> None:
    recipe = tune_result.recipe_for(
        ["train.architecture=cnn", "train.conv_filters=[16,32]"],
        (PROJECT / "params.yaml").read_text(encoding="utf-8"),
    )
    train = TrainParams(**recipe["train"])
    assert (train.architecture, train.conv_filters) == ("cnn", [16, 32])
    committed = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))["train"]
    assert {
        k: v for k, v in recipe["train"].items() if k not in ("architecture", "conv_filters")
    } == {k: v for k, v in committed.items() if k not in ("architecture", "conv_filters")}


def test_the_app_s_recipe_is_a_trial_of_the_committed_space() -> None:
    # `tools.tune best --recipe` writes app-model/recipe.yaml: a search can find today's recipe.
    recipe = yaml.safe_load((PROJECT / "app-model" / "recipe.yaml").read_text(encoding="utf-8"))
    train = TrainParams(**recipe["train"]).model_dump()
    space = tune_space.load_space()
    asked: dict[str, object] = {"family": train["architecture"]}
    for param in space.families[train["architecture"]]:
        value = train_value(train, param.key)
        name = f"{train['architecture']}/{param.key}"
        if param.kind == "choice":
            assert tune_space.override_value(value) in map(tune_space.override_value, param.values)
            asked[name] = tune_space.override_value(value)
        elif param.kind in ("int", "float"):
            low, high = param.values
            assert low <= value <= high, (param.key, value)
            asked[name] = value
    settings = tune_space.suggest(space, optuna.trial.FixedTrial(asked))

    params = (PROJECT / "params.yaml").read_text(encoding="utf-8")
    assert tune_result.recipe_for(settings, params) == {"train": train}


# A search on synthetic data


TINY_SPACE = {
    "objective": {"metrics": "metrics/train.json", "key": "best.val_accuracy"},
    "sampler_seed": 7,
    "families": {
        "mlp": {
            "train.hidden_units": {"choice": [[8], [16]]},
            "train.learning_rate": {"float": [0.003, 0.03], "log": True},
            "train.epochs": 1,
        }
    },
}
SEARCH_DEADLINE_S = 420


@pytest.mark.slow
def test_a_search_runs_in_parallel_survives_a_kill_and_resumes(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    space = project.root / "tiny-space.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE), encoding="utf-8")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search = [
        sys.executable, "-m", "tools.tune", "search", "--study", "s", "--storage", storage,
        "--space", space, "--trials", "3", "--jobs", "2", "--poll", "1",
    ]  # fmt: skip
    env = {**project.env, "PATH": f"{VENV_BIN}:{project.env['PATH']}"}
    try:
        # Killed once two trials are queued, in parallel: their experiments go on without it.
        first = subprocess.Popen(
            search, cwd=project.root, env=env, stdout=subprocess.PIPE, text=True
        )
        assert first.stdout is not None
        queued = []
        for line in first.stdout:
            queued += [line] if ": queued " in line else []
            if len(queued) == 2:
                break
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert [line.split(":")[0] for line in queued] == ["s-0", "s-1"]
        states = {name: data["executor"] for name, data in exp_show(project).items()}
        assert {"s-0", "s-1"} <= set(states), states

        # A trial asked but never queued (killed in between): failed, its params asked again.
        study = optuna.load_study(study_name="s", storage=storage)
        orphan = study.ask()
        tune_space.suggest(tune_space.load_space(space), orphan)
        orphan.set_user_attr("experiment", "s-2")
        orphan.set_user_attr("host", f"{socket.gethostname()}:{project.root.resolve()}")

        try:
            resumed = project.run(*search, timeout=SEARCH_DEADLINE_S)
        except subprocess.TimeoutExpired as timeout:
            printed = (timeout.stdout or b"").decode(errors="replace")  # bytes, even with text=True
            pytest.fail(
                f"the resumed search did not end in {SEARCH_DEADLINE_S} s; it printed:\n"
                f"{printed}\nthe queue:\n{queue_report(project)}"
            )
    finally:
        project.dvc("queue", "stop", check=False)

    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [trial.state for trial in trials] == [
        TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE,
    ]  # fmt: skip
    assert trials[3].params == trials[2].params
    shown = exp_show(project)
    for trial in (trials[0], trials[1], trials[3]):
        data = shown[trial.user_attrs["experiment"]]
        assert (data["executor"] or {"state": "success"})["state"] == "success"
        assert trial.value == metrics_of(data, "metrics/train.json")["best"]["val_accuracy"]
        hidden = params_of(data)["train"]["hidden_units"]
        assert str(hidden).replace(" ", "") == trial.params["mlp/train.hidden_units"]
    assert "s-2" not in shown

    # The choice is the best validation score; its test score is reported after it.
    chosen = max((trials[0], trials[1], trials[3]), key=lambda trial: trial.value)
    name = chosen.user_attrs["experiment"]
    test = metrics_of(shown[name], "metrics/evaluate.json")["test"]["accuracy"]
    assert f"best of 3 trials: {name}, validation" in resumed.stdout, resumed.stdout
    assert f"{chosen.value:.4f}; its test accuracy {test:.4f}" in resumed.stdout
    best = project.run(sys.executable, "-m", "tools.tune", "best", "--study", "s",
                       "--storage", storage, "--space", space, "--recipe")  # fmt: skip
    assert "reproduce: dvc exp run evaluate explore -S train.architecture=mlp" in best.stdout
    recipe = yaml.safe_load(best.stdout.split("\n", 2)[2])
    assert TrainParams(**recipe["train"]).epochs == 1

    # The study belongs to its commit: after a new commit `best` still finds its trials, and
    # resuming the search there is refused, saying why.
    project.git("commit", "--quiet", "--allow-empty", "-m", "another commit")
    assert best.stdout == project.run(*best.args).stdout
    moved = project.run(*search, check=False)
    assert moved.returncode == 1
    assert moved.stderr.startswith("tools.tune: study 's' runs on commit "), moved.stderr


def test_the_best_trial_becomes_a_table_row_after_the_sweep_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "experiments.md"
    shutil.copy(experiments.TABLE_PAGE, page)
    monkeypatch.setattr(experiments, "TABLE_PAGE", page)
    shutil.copy(experiments.README_PAGE, tmp_path / "README.md")
    monkeypatch.setattr(experiments, "README_PAGE", tmp_path / "README.md")
    records = tmp_path / "experiments.json"
    shutil.copy(experiments.TABLE_RECORDS, records)
    monkeypatch.setattr(experiments, "TABLE_RECORDS", records)
    timing = experiments.Timing(12, 80.4, 421930, experiments.LOCAL_RUNNER)
    monkeypatch.setattr(tune_result, "queue_timing", lambda name: timing)
    data = shown_trial(0.9951, 0.9937).data
    data["metrics"]["metrics/train.json"]["data"].update(epochs=12, parameters=421930)
    data["metrics"]["metrics/evaluate.json"]["data"]["test"]["macro"] = {"f1": 0.9936}
    data["params"] = {"params.yaml": {"data": {"train": {"epochs": 12}}}}
    settings = ["train.architecture=cnn", "train.conv_filters=[16,32]", "train.epochs=12"]
    best = tune_result.Best("mnist-7", settings, 0.9951, 0.9937, trials=20, jobs=2, data=data)

    before = experiments.readme_rows(page.read_text(encoding="utf-8"))
    experiments.write_rows({"mnist-7": tune_result.table_record(best, "mnist")})
    experiments.write_rows({})  # a later rewrite of the sweep's rows keeps it, last

    rows = experiments.readme_rows(page.read_text(encoding="utf-8"))
    assert list(rows) == [*before, "mnist-7"]
    assert list(rows)[: len(sweep.EXPERIMENTS)] == list(sweep.EXPERIMENTS)
    assert rows["mnist-7"] == (
        "| mnist-7: best of study mnist (20 trials) | 0.9951 | 0.9937 | 0.9936 | 421,930 "
        f"| 80 s (12 epochs) | {experiments.LOCAL_RUNNER}, 2 trials at once "
        "| tuner, on validation | `dvc exp run evaluate explore -S train.architecture=cnn "
        "-S 'train.conv_filters=[16,32]' -S train.epochs=12` |"
    )


@pytest.mark.parametrize(
    ("head", "status", "message"),
    [
        ("b" * 40, "", "HEAD moved to bbbbbbb during the search of commit aaaaaaa"),
        ("a" * 40, " M digits/model.py\n", "tracked files changed during the search (digits/"),
    ],
)
def test_no_trial_is_queued_once_the_work_tree_left_the_commit(
    head: str, status: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"rev-parse": head + "\n", "status": status}
    monkeypatch.setattr(tune, "git", lambda *args: answers[args[0]])

    with pytest.raises(tune_space.TuneError, match=re.escape(message)):
        tune.check_workspace("a" * 40)


def test_a_clean_work_tree_on_the_commit_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"rev-parse": "a" * 40 + "\n", "status": ""}
    monkeypatch.setattr(tune, "git", lambda *args: answers[args[0]])

    tune.check_workspace("a" * 40)  # no error
