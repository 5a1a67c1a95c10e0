"""A copy of the pipeline, reproduced on synthetic MNIST in a new git + DVC repository, and the
helpers that run the real `dvc` and `git` there (shared by the test modules that need them).

`make_project` copies both pipelines (stages/, digits/, dvc.yaml, app-model/, the Makefile and
the check script) into a new git repository, writes small synthetic MNIST files (gzipped IDX, 300
training and 100 test images) into local mirror folders (MNIST's, and other ones as
Fashion-MNIST's), pins them in data/datasets.yaml with a tiny network in params.yaml and a tiny
CNN in the app's recipe (app-model/recipe.yaml), runs the real `dvc repro --all-pipelines` and
commits the results on `main`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.synthetic import encode_idx, synthetic_digits
from tools.tune_result import EXP_SHOW_RETRY_SECONDS, EXP_SHOW_TRIES

PROJECT = Path(__file__).parents[2]
VENV_BIN = Path(sys.executable).parent

# What the copy needs to run the pipeline, `make verify` and the sweep's jobs.
COPIED = (
    "stages",
    "digits",
    "tools/__init__.py",
    "tools/verify_outputs.py",
    "tools/check_params_file.py",  # make repro, app-model and verify run it first
    "tools/experiments.py",
    "tools/experiment_records.py",
    "tools/sweep.py",
    "tools/tune.py",
    "tools/tune_result.py",
    "tools/tune_space.py",
    "tools/tune.yaml",
    "docs/experiments.json",
    "dvc.yaml",
    "app-model",
    "pyproject.toml",
    "requirements.lock",
    "Makefile",
    ".gitignore",
    ".dvcignore",
)
APP_PIPELINE = "app-model/dvc.yaml"  # the app's model: a pipeline that `dvc repro` leaves alone


def stage_names(pipeline: str) -> tuple[str, ...]:
    """The stages of a dvc.yaml as DVC's commands name them (`app-model/dvc.yaml:train-app`)."""
    stages = yaml.safe_load((PROJECT / pipeline).read_text(encoding="utf-8"))["stages"]
    return tuple(name if pipeline == "dvc.yaml" else f"{pipeline}:{name}" for name in stages)


PIPELINE_STAGES = stage_names("dvc.yaml")  # what a plain `dvc repro` at the root runs
APP_STAGES = stage_names(APP_PIPELINE)
TRAIN_APP, EVALUATE_APP, OTHER_HANDWRITING, EXPORT_APP, CARD_APP = APP_STAGES
STAGES = (*PIPELINE_STAGES, *APP_STAGES)  # `dvc repro --all-pipelines`
DATASETS = Path("data/datasets.yaml")  # the download stage's dataset sources (mirrors, pins)
# Small enough that `dvc repro` of the whole pipeline takes about 15 s on 2 cores.
TRAIN_IMAGES, TEST_IMAGES = 300, 100
TINY_PARAMS = {
    "explore": {"sample_rows": 2, "sample_columns": 5},
    "train": {"hidden_units": [16], "epochs": 2, "batch_size": 32, "learning_rate": 0.01},
    "evaluate": {"misclassified_examples": 9},
}
# The app's recipe (stage train-app) stays a CNN with augmentation, but thin and short. It differs
# from the tiny params' MLP, so the two models never have the same bytes.
APP_RECIPE = Path("app-model/recipe.yaml")
TINY_APP_RECIPE = {
    "conv_filters": [4, 8],
    "convs_per_block": 1,
    "hidden_units": [16],
    "epochs": 2,
    "batch_size": 32,
    "learning_rate": 0.01,
}
DVC_TIMEOUT_S = 300


# Synthetic MNIST


def write_mirror(folder: Path, first_seed: int = 0) -> dict[str, dict[str, Any]]:
    """The four MNIST files, gzipped, in `folder`; returns their pins for params.yaml."""
    folder.mkdir(parents=True)
    pins = {}
    sizes = (("train", TRAIN_IMAGES), ("t10k", TEST_IMAGES))
    for seed, (prefix, count) in enumerate(sizes, first_seed):
        images, labels = synthetic_digits(count, seed)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            content = encode_idx(array)
            (folder / f"{name}.gz").write_bytes(gzip.compress(content, mtime=0))
            pins[name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    return pins


# Running commands in the copy


@dataclass(frozen=True)
class Repro:
    """What `dvc repro` said it did with each stage."""

    ran: frozenset[str]
    skipped: frozenset[str]  # "didn't change, skipping"
    restored: frozenset[str]  # "is cached - skipping run": outputs from the run cache
    output: str


def parse_repro(output: str, stages: tuple[str, ...] = STAGES) -> Repro:
    """What `dvc repro` did with each stage; it must report every one of `stages`."""
    result = Repro(
        ran=frozenset(re.findall(r"^Running stage '([^']+)'", output, re.MULTILINE)),
        skipped=frozenset(
            re.findall(r"^Stage '([^']+)' didn't change, skipping", output, re.MULTILINE)
        ),
        restored=frozenset(
            re.findall(r"^Stage '([^']+)' is cached - skipping run", output, re.MULTILINE)
        ),
        output=output,
    )
    reported = result.ran | result.skipped | result.restored
    assert sorted(reported) == sorted(stages), f"dvc repro did not report every stage:\n{output}"
    return result


@dataclass
class Project:
    root: Path  # the git + DVC repository
    base: Path  # its parent: the mirror, remotes, clones
    env: dict[str, str]

    def run(
        self,
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        check: bool = True,
        timeout: float = DVC_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        command = [str(arg) for arg in args]
        result = subprocess.run(
            command,
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"`{' '.join(command)}` exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
                pytrace=False,
            )
        return result

    def dvc(self, *args: str | os.PathLike[str], **kwargs: Any) -> str:
        return self.run(VENV_BIN / "dvc", *args, **kwargs).stdout

    def git(self, *args: str, **kwargs: Any) -> str:
        return self.run("git", *args, **kwargs).stdout

    def repro(self, cwd: Path | None = None) -> Repro:
        """`dvc repro --all-pipelines`: the pipeline and the app's model."""
        return parse_repro(self.dvc("repro", "--all-pipelines", cwd=cwd))

    def status(self, cwd: Path | None = None) -> dict[str, Any]:
        return json.loads(self.dvc("status", "--json", cwd=cwd))

    def set_params(self, section: str, **values: Any) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
        params[section].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    def reset(self) -> None:
        """Back to the fixture's state: `main` checked out, clean, its data in the workspace."""
        self.git("reset", "--quiet", "--hard")
        self.git("checkout", "--quiet", "main")
        self.git("clean", "--quiet", "-d", "--force")
        self.dvc("checkout", "--force")
        assert self.status() == {}, "the copy did not return to main's state"

    @contextlib.contextmanager
    def on_branch(self, name: str, *, new: bool = False) -> Iterator[Project]:
        """Work on branch `name` (created from main if `new`); back to main afterwards."""
        self.git("checkout", "--quiet", *(["-b", name, "main"] if new else [name]))
        if not new:
            self.dvc("checkout")  # its DVC-cached outputs too (the model, data/training-log/)
        try:
            yield self
        finally:
            self.reset()


def subprocess_env(base: Path, mirror: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIT_", "DVC_")) and key not in ("CI", "PYTHONPATH")
    }
    dvc_global = base / "dvc-global"
    dvc_global.mkdir()
    # No update check or analytics daemon: they would try the network.
    (dvc_global / "config").write_text(
        "[core]\n    analytics = false\n    check_update = false\n", encoding="utf-8"
    )
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dvc.yaml's `python`
        MNIST_MIRROR=str(mirror),
        TF_CPP_MIN_LOG_LEVEL="2",
        DVC_NO_ANALYTICS="1",
        DVC_STUDIO_OFFLINE="1",
        DVC_GLOBAL_CONFIG_DIR=str(dvc_global),
        DVC_SYSTEM_CONFIG_DIR=str(base / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(base / "dvc-site-cache"),
        GIT_AUTHOR_NAME="DVC workflow test",
        GIT_AUTHOR_EMAIL="dvc-workflow-test@example.invalid",
        GIT_COMMITTER_NAME="DVC workflow test",
        GIT_COMMITTER_EMAIL="dvc-workflow-test@example.invalid",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def copy_project(destination: Path) -> None:
    for name in COPIED:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def make_project(base: Path) -> Project:
    """The pipeline reproduced on synthetic MNIST and committed on `main` in `base`/repo."""
    mirror = base / "mirror"
    pins = write_mirror(mirror)
    root = base / "repo"
    root.mkdir()
    copy_project(root)
    project = Project(root, base, subprocess_env(base, mirror))

    # Fashion-MNIST: other synthetic files (other noise, the same blocks), so that the sweep's
    # Fashion-MNIST rows change data/processed as the real ones do.
    fashion_mirror = base / "fashion-mirror"
    fashion_pins = write_mirror(fashion_mirror, first_seed=2)
    datasets = yaml.safe_load((PROJECT / DATASETS).read_text(encoding="utf-8"))
    datasets["mnist"].update(mirrors=[str(mirror)], files=pins)
    datasets["fashion-mnist"].update(mirrors=[str(fashion_mirror)], files=fashion_pins)
    (root / DATASETS).parent.mkdir(parents=True, exist_ok=True)
    (root / DATASETS).write_text(yaml.safe_dump(datasets, sort_keys=False), encoding="utf-8")
    params = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
    params["download"].update(retries=0, timeout_seconds=5)
    for section, values in TINY_PARAMS.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    recipe = yaml.safe_load((PROJECT / APP_RECIPE).read_text(encoding="utf-8"))
    recipe["train"].update(TINY_APP_RECIPE)
    (root / APP_RECIPE).write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")

    project.git("init", "--quiet", "--initial-branch=main")
    project.dvc("init", "--quiet")
    project.dvc("config", "core.analytics", "false")
    # The offline report template, as `make setup` builds and configures it (build/ and
    # .dvc/config.local are git-ignored: a clone of this repo has neither).
    project.run(
        sys.executable,
        PROJECT / "tools" / "build_plots_template.py",
        root / "build" / "plots_template.html",
    )
    project.dvc("config", "--local", "plots.html_template", "../build/plots_template.html")
    project.git("add", "--all")
    project.git("commit", "--quiet", "-m", "pipeline on synthetic MNIST")

    first = project.repro()
    assert first.ran == set(STAGES), first.output
    project.git("add", "--all")
    project.git("commit", "--quiet", "-m", "dvc repro")
    assert project.git("status", "--porcelain") == ""
    return project


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# Experiments


def experiments(project: Project, cwd: Path | None = None) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json`: every experiment of main by name, with its data and executor.

    Asked again when it fails while a queue worker creates or removes an experiment's temporary
    workspace, as tools.tune_result.exp_states does."""
    for attempt in range(1, EXP_SHOW_TRIES + 1):
        shown = project.run(VENV_BIN / "dvc", "exp", "show", "--json", cwd=cwd, check=False)
        if shown.returncode == 0 or attempt == EXP_SHOW_TRIES:
            break
        time.sleep(EXP_SHOW_RETRY_SECONDS)
    if shown.returncode != 0:
        pytest.fail(f"`dvc exp show --json` exited {shown.returncode}: {shown.stderr}")
    found = {}
    for commit in json.loads(shown.stdout):
        for experiment in commit.get("experiments") or []:
            (latest, *_) = experiment["revs"]
            found[experiment["name"]] = {**latest["data"], "executor": experiment["executor"]}
    return found


def queue_report(project: Project, lines: int = 6) -> str:
    """What the project's DVC queue is doing, for a test that waited on it in vain: `dvc queue
    status`, the machine's dvc processes, and the last lines of each worker's and run's log."""
    status = project.run(VENV_BIN / "dvc", "queue", "status", check=False, timeout=60)
    processes = subprocess.run(["ps", "-eo", "pid,etime,pcpu,args"], capture_output=True, text=True)
    report = [
        status.stdout + status.stderr,
        *(p for p in processes.stdout.splitlines() if "dvc" in p),
    ]
    for log in sorted((project.root / ".dvc/tmp/exps").glob("*/**/*.out")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        report += [f"--- {log.relative_to(project.root)}", *tail]
    return "\n".join(report)


def metrics_of(data: dict[str, Any], path: str) -> dict[str, Any]:
    return data["metrics"][path]["data"]


def params_of(data: dict[str, Any]) -> dict[str, Any]:
    return data["params"]["params.yaml"]["data"]
