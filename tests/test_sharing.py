"""Sharing what the pipeline made, for real: a DVC remote on an SSH server, experiments through a
git remote, and the model as a DVC artifact.

A module fixture starts Debian's sshd on 127.0.0.1 (tests/helpers/ssh_server.py), copies the
pipeline into a new repository reproduced on synthetic MNIST (tests/helpers/dvc_project.py), commits
a DVC remote on that server (`ssh://...`, through DVC's dvc-ssh plugin) and pushes `main` to a bare
git repository, the team's git remote. The client key is set in each clone's git-ignored
.dvc/config.local. The commands run with a HOME made for the tests, so that nothing of the user's
~/.ssh is used; its known_hosts lists the server, though dvc-ssh 4.3 does not check host keys (sshfs
passes known_hosts=None to asyncssh; README: "A remote on an SSH server"). Everything runs the real
`git`, `dvc`, `sshd` and the installed `digits-predict`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.dvc_project import (
    DVC_TIMEOUT_S,
    VENV_BIN,
    Project,
    experiments,
    make_project,
    metrics_of,
    tree_digest,
)
from helpers.ssh_server import SshServer, running_sshd
from PIL import Image

pytestmark = pytest.mark.slow

REMOTE = "storage"  # the DVC remote's name, as the README sets it up
ARTIFACTS = {  # dvc.yaml's artifacts: entries -> their paths (a model file, or a folder with one)
    "digits-classifier": "data/model/model.keras",
    "digits-recogniser": "data/app-model/recogniser",
}
BIG_FILE_BYTES = 200 * 2**20  # long enough a push to cut it off halfway


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, sshd: SshServer) -> Project:
    """The project with its DVC remote on the SSH server (committed) and its git remote `origin`."""
    project = make_project(tmp_path_factory.mktemp("sharing"))
    home = project.base / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line(), encoding="utf-8")
    project.env["HOME"] = str(home)

    project.dvc("remote", "add", "--default", REMOTE, sshd.url(project.base / "dvc-storage"))
    use_client_key(project, sshd, project.root)
    project.git("commit", "--quiet", "--all", "-m", "DVC remote on the team's SSH server")
    origin = project.base / "origin.git"
    project.git("init", "--quiet", "--bare", str(origin))
    project.git("remote", "add", "origin", str(origin))
    project.git("push", "--quiet", "origin", "main")
    return project


def use_client_key(project: Project, sshd: SshServer, clone: Path) -> None:
    """The key goes in .dvc/config.local (git-ignored), never in the committed .dvc/config."""
    project.dvc("remote", "modify", "--local", REMOTE, "keyfile", sshd.client_key, cwd=clone)


def fresh_clone(project: Project, sshd: SshServer, name: str, branch: str = "main") -> Path:
    """`git clone` of origin into a new folder, with the client key set: no data yet."""
    clone = project.base / name
    project.git("clone", "--quiet", "--branch", branch, str(project.base / "origin.git"), clone)
    use_client_key(project, sshd, clone)
    assert not (clone / "data" / "model").exists()
    return clone


def write_digit_image(path: Path) -> None:
    """A 140x140 PNG: a dark vertical stroke on light paper, like a photographed 1."""
    pixels = np.full((140, 140), 255, dtype=np.uint8)
    pixels[20:120, 62:78] = 0
    Image.fromarray(pixels).save(path)


def predict(project: Project, cwd: Path, *args: str | Path) -> list[dict]:
    return json.loads(project.run(VENV_BIN / "digits-predict", "--json", *args, cwd=cwd).stdout)


def test_push_over_ssh_then_a_fresh_clone_pulls_and_predicts(shared: Project, sshd: SshServer):
    started = time.monotonic()
    pushed = shared.dvc("push")
    push_seconds = time.monotonic() - started
    assert re.search(r"\d+ files? pushed", pushed), pushed
    assert (shared.base / "dvc-storage" / "files" / "md5").is_dir()
    assert "keyfile" not in (shared.root / ".dvc" / "config").read_text(encoding="utf-8")

    clone = fresh_clone(shared, sshd, "clone-pull")
    started = time.monotonic()
    shared.dvc("pull", cwd=clone)
    pull_seconds = time.monotonic() - started
    print(f"dvc push {push_seconds:.1f} s, dvc pull {pull_seconds:.1f} s over ssh")

    assert tree_digest(clone / "data") == tree_digest(shared.root / "data")
    assert shared.status(cwd=clone) == {}
    image = shared.base / "digit.png"
    write_digit_image(image)
    (result,) = predict(shared, clone, image)  # the default, data/app-model/, as pulled
    assert set(result) >= {"file", "digit", "probability", "top3"}, result
    assert predict(shared, shared.root, image) == [result]


def test_a_push_cut_off_by_the_server_fails_clearly_and_the_next_push_completes(
    shared: Project, sshd: SshServer
):
    shared.dvc("push")  # the pipeline's outputs first: only the big file is left to upload
    with shared.on_branch("big-file", new=True):
        blob = shared.root / "big.bin"
        blob.write_bytes(np.random.default_rng(0).bytes(BIG_FILE_BYTES))
        shared.dvc("add", "big.bin")
        shared.git("add", "big.bin.dvc", ".gitignore")
        shared.git("commit", "--quiet", "-m", "a big file")
        digest = (shared.root / "big.bin.dvc").read_text(encoding="utf-8").split("md5: ")[1][:32]
        stored = shared.base / "dvc-storage" / "files" / "md5" / digest[:2]

        push = subprocess.Popen(
            [VENV_BIN / "dvc", "push"],
            cwd=shared.root,
            env=shared.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + DVC_TIMEOUT_S
        # Cut the server off once the big file's upload has started (its first bytes arrived).
        while time.monotonic() < deadline and push.poll() is None:
            # dvc-objects uploads to a temp file beside the final one, then renames it.
            if any(partial.stat().st_size > 0 for partial in stored.glob(".*.tmp")):
                break
            time.sleep(0.002)
        assert push.poll() is None, f"the push ended before the server was killed: {push.stderr}"
        sshd.kill()
        _, stderr = push.communicate(timeout=DVC_TIMEOUT_S)

        assert push.returncode != 0
        assert f"failed to transfer '{digest}'" in stderr, stderr
        assert "failed to push data to the cloud - 1 files failed to upload" in stderr, stderr
        print(f"dvc push with the server killed mid-transfer:\n{stderr}")

        sshd.start()
        pushed = shared.dvc("push")
        assert re.search(r"\d+ files? pushed", pushed), pushed
        assert json.loads(shared.dvc("status", "--cloud", "--json")) == {}
        shared.git("push", "--quiet", "origin", "big-file")

        clone = fresh_clone(shared, sshd, "clone-after-cut", branch="big-file")
        shared.dvc("pull", cwd=clone)
        assert (clone / "big.bin").read_bytes() == blob.read_bytes()
        assert shared.status(cwd=clone) == {}


def test_exp_push_and_pull_share_an_experiment_with_its_metrics(shared: Project, sshd: SshServer):
    name = "one-epoch"
    try:
        shared.dvc("exp", "run", "--name", name, "-S", "train.epochs=1")
        author = experiments(shared)[name]
        shared.reset()
        # The experiment's git ref to origin, its outputs (the model) to the SSH remote.
        pushed = shared.dvc("exp", "push", "origin", name)
        assert f"Pushed experiment {name} to Git remote 'origin'" in pushed, pushed

        other = fresh_clone(shared, sshd, "clone-exp")
        shared.dvc("exp", "pull", "origin", name, cwd=other)
        shown = experiments(shared, cwd=other)
        assert name in shown, shown.keys()
        for path in ("metrics/train.json", "metrics/evaluate.json"):
            assert metrics_of(shown[name], path) == metrics_of(author, path), path
        assert metrics_of(shown[name], "metrics/train.json")["epochs"] == 1
        table = shared.dvc("exp", "show", "--md", cwd=other)
        assert name in table, table

        shared.dvc("exp", "apply", name, cwd=other)  # its model came through the SSH remote
        assert shared.status(cwd=other) == {}
    finally:
        shared.reset()
        shared.dvc("exp", "remove", name, check=False)


@pytest.mark.parametrize("artifact", list(ARTIFACTS))
def test_artifacts_get_fetches_the_model_that_loads_and_predicts(
    shared: Project, sshd: SshServer, tmp_path: Path, artifact: str
):
    shared.dvc("push")
    # A version of the artifact is a git tag in GTO's format (what DVC Studio's model registry
    # and `gto register` write): `dvc artifacts get` takes the latest unless --rev names one.
    shared.git("tag", "--annotate", f"{artifact}@v1.0.0", "--message", "first model")
    shared.git("push", "--quiet", "origin", f"{artifact}@v1.0.0")
    # The repo to fetch from: a clone with git only (no data, no cache), its remote on sshd.
    source = fresh_clone(shared, sshd, f"clone-{artifact}")
    target = tmp_path / "fetched"
    target.mkdir()

    shared.dvc("artifacts", "get", source, artifact, "-o", target, cwd=tmp_path)

    fetched = target / Path(ARTIFACTS[artifact]).name
    assert [path.name for path in target.iterdir()] == [fetched.name]
    model = fetched / "model.keras" if fetched.is_dir() else fetched
    assert (
        model.read_bytes()
        == (shared.root / ARTIFACTS[artifact] / model.relative_to(fetched)).read_bytes()
    )
    import keras

    probabilities = keras.saving.load_model(model).predict(np.zeros((1, 28, 28)), verbose=0)
    assert probabilities.shape == (1, 10)
    assert probabilities.sum() == pytest.approx(1, abs=1e-5)
    image = tmp_path / "digit.png"
    write_digit_image(image)
    assert predict(shared, tmp_path, "--model", fetched, image) == predict(
        shared, shared.root, "--model", ARTIFACTS[artifact], image
    )
    # Outside a clone (tmp_path), the recogniser says which model it is from its own card.
    which = shared.run(VENV_BIN / "digits-predict", "--model", fetched, image, cwd=tmp_path)
    if fetched.is_dir():
        assert sorted(path.name for path in fetched.iterdir()) == [
            "MODEL_CARD.md",
            "model.json",
            "model.keras",
            "model.onnx",
        ]
        card = json.loads((fetched / "model.json").read_text(encoding="utf-8"))
        assert which.stderr.startswith(f"model: {artifact} ("), which.stderr
        assert f"test accuracy {card['test']['accuracy']:.4f} (model.json)" in which.stderr
