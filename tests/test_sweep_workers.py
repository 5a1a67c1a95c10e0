"""The sweep workflow (.github/workflows/sweep.yml) played here without GitHub: CI jobs as
parallel processes, each in its own clone, sharing one git remote and one DVC remote.

The project is reproduced on synthetic MNIST (tests/helpers/dvc_project.py) with its DVC remote on
Debian's sshd on 127.0.0.1 (tests/helpers/ssh_server.py) and a bare git repository as `origin`; its
data stages' outputs are pushed once. Three workers then start together, each doing what a matrix
job does: `git clone`, `dvc pull` of the data stages only, `tools/experiments.py run` of one
experiment (one epoch), and `dvc exp push origin <name>`, the three pushes released at the same
moment by a barrier of files. A fresh clone pulls all three and rebuilds the table; another clone
runs the same experiments one after the other, and its table must be the same.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.dvc_project import (
    DVC_TIMEOUT_S,
    Project,
    experiments,
    make_project,
    metrics_of,
    tree_digest,
)
from helpers.ssh_server import SshServer, running_sshd

pytestmark = pytest.mark.slow

REMOTE = "storage"
SWEEP = ("tuned-mlp", "cnn", "app-model")  # rows of tools/sweep.py
QUICK = ("-S", "train.epochs=1")  # on top of each row's own settings
DATA_STAGES = ("download", "decode", "preprocess", "explore")
ONNX = "model.onnx"  # written by the export stage, which the rows do not run

# One matrix job, as the workflow's steps run it (after checkout and `make setup`).
WORKER = """\
set -euo pipefail
dvc pull --with-deps preprocess
python -m tools.experiments run "$NAME" --runner "$RUNNER" --timing "$TIMINGS/$NAME.json" $QUICK
touch "$BARRIER/$NAME"
until [ "$(ls "$BARRIER" | wc -l)" -ge "$WORKERS" ]; do sleep 0.01; done
date +%s.%N > "$BARRIER/../$NAME.push-start"
dvc exp push origin "$NAME"
date +%s.%N > "$BARRIER/../$NAME.push-end"
"""


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def clone(project: Project, sshd: SshServer, name: str) -> Path:
    """`git clone` of origin, with the DVC remote's key in its .dvc/config.local."""
    folder = project.base / name
    project.git("clone", "--quiet", str(project.base / "origin.git"), folder)
    project.dvc("remote", "modify", "--local", REMOTE, "keyfile", sshd.client_key, cwd=folder)
    return folder


def table(project: Project, folder: Path, timings: Path) -> str:
    """The table rows `python -m tools.experiments table` builds from `dvc exp show` in `folder`."""
    return project.run(
        "python", "-m", "tools.experiments", "table", "--timings", timings, "--print", cwd=folder
    ).stdout


def test_parallel_workers_share_a_sweep_that_equals_a_sequential_run(
    tmp_path_factory: pytest.TempPathFactory, sshd: SshServer
):
    started = time.monotonic()
    project = make_project(tmp_path_factory.mktemp("sweep"))
    home = project.base / "home"
    home.mkdir()
    project.env["HOME"] = str(home)  # nothing of the user's ~/.ssh or ~/.gitconfig
    project.dvc("remote", "add", "--default", REMOTE, sshd.url(project.base / "dvc-storage"))
    project.dvc("remote", "modify", "--local", REMOTE, "keyfile", sshd.client_key)
    project.git("commit", "--quiet", "--all", "-m", "DVC remote on the team's SSH server")
    project.git("init", "--quiet", "--bare", "--initial-branch=main", project.base / "origin.git")
    project.git("remote", "add", "origin", str(project.base / "origin.git"))
    project.git("push", "--quiet", "origin", "main")
    project.dvc("push")  # the data stages' outputs, once, for every job

    timings, barrier = project.base / "timings", project.base / "jobs" / "barrier"
    barrier.mkdir(parents=True)
    workers = {}
    for number, name in enumerate(SWEEP, 1):
        folder = clone(project, sshd, f"worker-{number}")
        log = open(project.base / "jobs" / f"{name}.log", "w")  # noqa: SIM115 (closed below)
        environment = {
            **project.env,
            "NAME": name,
            "RUNNER": f"worker-{number}",
            "TIMINGS": str(timings),
            "BARRIER": str(barrier),
            "WORKERS": str(len(SWEEP)),
            "QUICK": " ".join(QUICK),
        }
        process = subprocess.Popen(
            ["bash", "-c", WORKER], cwd=folder, env=environment, stdout=log, stderr=log
        )
        workers[name] = (folder, process, log)
    for name, (_, process, log) in workers.items():
        process.wait(timeout=DVC_TIMEOUT_S)
        log.close()
        output = (project.base / "jobs" / f"{name}.log").read_text()
        assert process.returncode == 0, f"worker {name}:\n{output}"
        assert f"Pushed experiment {name} to Git remote 'origin'" in output, output
        for stage in DATA_STAGES:  # pulled, not run again
            assert f"Running stage '{stage}'" not in output, output
        assert "Running stage 'train'" in output, output
        assert "Running stage 'train-app'" not in output, output  # rows never retrain it
    parallel_seconds = time.monotonic() - started

    # The three pushes overlapped: each started before any of them had finished.
    starts = [float((barrier.parent / f"{name}.push-start").read_text()) for name in SWEEP]
    ends = [float((barrier.parent / f"{name}.push-end").read_text()) for name in SWEEP]
    assert max(starts) < min(ends), (starts, ends)
    refs = project.git("ls-remote", str(project.base / "origin.git"), "refs/exps/*")
    assert sorted(line.rsplit("/", 1)[1] for line in refs.splitlines()) == sorted(SWEEP), refs

    # A fresh clone pulls every experiment: refs from git, outputs from the DVC remote.
    fresh = clone(project, sshd, "fresh")
    project.dvc("exp", "pull", "origin", *SWEEP, cwd=fresh)
    shown = experiments(project, cwd=fresh)
    assert sorted(shown) == sorted(SWEEP), shown.keys()
    for name, (worker, _, _) in workers.items():
        assert metrics_of(shown[name], "metrics/train.json")["epochs"] == 1
        assert metrics_of(shown[name], "metrics/evaluate.json") == metrics_of(
            experiments(project, cwd=worker)[name], "metrics/evaluate.json"
        )
        project.dvc("exp", "apply", name, cwd=fresh)  # its model and data/training-log/, as trained
        for output in ("data/model", "data/training-log"):
            # The rows run evaluate and explore, not export: model.onnx is main's in the fresh
            # clone (exp apply restores the lock's outs) and absent in the worker's.
            applied, trained = (
                {path: sha for path, sha in tree_digest(root / output).items() if path != ONNX}
                for root in (fresh, worker)
            )
            assert applied == trained != {}, (name, output)
    parallel_table = table(project, fresh, timings)

    # The same experiments one after the other in one clone: the same table.
    sequential = clone(project, sshd, "sequential")
    project.dvc("pull", "--with-deps", "preprocess", cwd=sequential)
    started = time.monotonic()
    for name in SWEEP:
        project.run(
            "python", "-m", "tools.experiments", "run", name, "--runner", "one machine",
            "--timing", project.base / "sequential-timings" / f"{name}.json", *QUICK,
            cwd=sequential,
        )  # fmt: skip
    sequential_seconds = time.monotonic() - started
    assert table(project, sequential, timings) == parallel_table
    one_by_one = experiments(project, cwd=sequential)
    for name in SWEEP:  # every metric, not only the table's (training is deterministic)
        assert one_by_one[name]["metrics"] == shown[name]["metrics"], name
    assert parallel_table.count("\n") == 2 + len(SWEEP), parallel_table
    for name, number in zip(SWEEP, range(1, 4), strict=True):
        assert f"| worker-{number} |" in parallel_table.splitlines()[1 + number], parallel_table
        assert name in parallel_table.splitlines()[1 + number], parallel_table
    print(
        f"{len(SWEEP)} workers (set-up, pull, run, push) {parallel_seconds:.0f} s; "
        f"the same {len(SWEEP)} runs one after the other {sequential_seconds:.0f} s\n"
        f"{parallel_table}"
    )
