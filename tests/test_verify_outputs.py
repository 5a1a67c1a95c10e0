"""tools/verify_outputs.py: the reproducibility check's report, on small git repos in tmp_path.

The full check (`make verify` after a from-scratch `dvc repro --force`) runs in
tests/test_dvc_workflows.py; here each kind of difference is made by hand, in a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools import verify_outputs

SCRIPT = Path(verify_outputs.__file__)  # run by its path: the test repositories have no tools/

MODEL_MD5 = "7bf20bcb4b036385f3126c2bfb813a74"
OTHER_MD5 = "c945d6ebdc9a2a670b92b34ca1b76adb"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def lock(model_md5: str = MODEL_MD5, epochs: int = 20) -> dict:
    """A dvc.lock with the shape DVC writes: stages -> cmd, deps, params, outs."""
    model = {"path": "data/model/model.keras", "hash": "md5", "md5": model_md5, "size": 1000}
    processed = {"path": "data/processed", "hash": "md5", "md5": "9d04.dir", "nfiles": 3}
    return {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "python -m stages.train",
                "deps": [dict(processed)],
                "params": {"params.yaml": {"train": {"epochs": epochs, "seed": 42}}},
                "outs": [model],
            },
            "evaluate": {
                "cmd": "python -m stages.evaluate",
                "deps": [dict(processed), {**model, "md5": MODEL_MD5}],
                "outs": [{"path": "metrics/evaluate.json", "hash": "md5", "md5": "ab", "size": 9}],
            },
        },
    }


def test_diff_lock_names_stage_kind_path_and_both_hashes():
    assert verify_outputs.diff_lock(lock(), lock()) == []
    assert verify_outputs.diff_lock(lock(), lock(model_md5=OTHER_MD5)) == [
        f"stage 'train': out data/model/model.keras: md5 {MODEL_MD5} -> {OTHER_MD5}"
    ]


def test_diff_lock_reports_params_deps_and_stages():
    new = lock(epochs=5)
    new["stages"]["evaluate"]["deps"][0]["md5"] = "ffff.dir"
    new["stages"]["explore"] = {"cmd": "python -m stages.explore"}
    del new["stages"]["train"]["outs"]
    assert verify_outputs.diff_lock(lock(), new) == [
        "stage 'explore': not in the committed lock",
        "stage 'train': out data/model/model.keras: in the committed lock only",
        "stage 'train': param params.yaml.train.epochs: 20 -> 5",
        "stage 'evaluate': dep data/processed: md5 9d04.dir -> ffff.dir",
    ]


def test_diff_values_lists_each_changed_metric():
    old = {"test": {"accuracy": 0.98, "loss": 0.07, "macro": {"f1": 0.97}}, "epochs": 20}
    new = {"test": {"accuracy": 0.97, "loss": 0.07, "macro": {"f1": 0.96}}, "epochs": 20}
    assert verify_outputs.diff_values(old, new) == [
        "test.accuracy: 0.98 -> 0.97",
        "test.macro.f1: 0.97 -> 0.96",
    ]
    assert verify_outputs.diff_values(old, old) == []


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo with dvc.lock, metrics/ and plots/ committed."""
    root = tmp_path / "repo"
    (root / "metrics").mkdir(parents=True)
    (root / "plots" / "train").mkdir(parents=True)
    (root / "dvc.lock").write_text(yaml.safe_dump(lock(), sort_keys=False), encoding="utf-8")
    (root / "metrics" / "evaluate.json").write_text(
        json.dumps({"test": {"accuracy": 0.98}}), encoding="utf-8"
    )
    (root / "plots" / "train" / "history.csv").write_text("epoch,loss\n1,0.5\n2,0.3\n")
    (root / "plots" / "train" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    git(root, "init", "--quiet")
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "results")
    return root


def check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=root, capture_output=True, text=True, timeout=60
    )


def test_unchanged_results_pass_with_one_line(repo: Path):
    result = check(repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Reproducibility check passed")
    assert len(result.stdout.splitlines()) == 1


def test_changed_results_fail_naming_every_difference(repo: Path):
    (repo / "dvc.lock").write_text(
        yaml.safe_dump(lock(model_md5=OTHER_MD5), sort_keys=False), encoding="utf-8"
    )
    (repo / "metrics" / "evaluate.json").write_text(
        json.dumps({"test": {"accuracy": 0.97}}), encoding="utf-8"
    )
    (repo / "plots" / "train" / "history.csv").write_text("epoch,loss\n1,0.5\n2,0.4\n")
    (repo / "plots" / "train" / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(99))
    (repo / "plots" / "train" / "extra.csv").write_text("a\n")

    result = check(repo, "--strict")  # as on the reference platform, whatever this one is

    assert result.returncode == 1
    assert result.stdout == ""
    header, what, *lines = result.stderr.splitlines()
    assert header.startswith("REPRODUCIBILITY CHECK FAILED")
    assert what.startswith("What differs")
    assert [line.strip() for line in lines] == [
        f"dvc.lock: stage 'train': out data/model/model.keras: md5 {MODEL_MD5} -> {OTHER_MD5}",
        "metrics/evaluate.json: test.accuracy: 0.98 -> 0.97",
        "plots/train/curves.png: content differs (108 -> 107 bytes)",
        "plots/train/extra.csv: not committed",
        "plots/train/history.csv: content differs (1 of 3 lines)",
    ]


def test_the_app_models_results_are_checked_too(repo: Path):
    """The app's model has a pipeline of its own: its lock (app-model/dvc.lock) and its
    metrics/app-model/ and plots/app-model/ (not declared as DVC metrics, but committed results
    all the same)."""
    (repo / "app-model").mkdir()
    (repo / "metrics" / "app-model").mkdir()
    (repo / "plots" / "app-model").mkdir()
    app_lock = repo / "app-model" / "dvc.lock"
    app_metrics = repo / "metrics" / "app-model" / "evaluate.json"
    app_history = repo / "plots" / "app-model" / "history.csv"
    app_lock.write_text(yaml.safe_dump(lock(), sort_keys=False), encoding="utf-8")
    app_metrics.write_text(json.dumps({"test": {"accuracy": 0.995}}), encoding="utf-8")
    app_history.write_text("epoch,loss\n1,0.2\n")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "the app's model")
    app_lock.write_text(
        yaml.safe_dump(lock(model_md5=OTHER_MD5), sort_keys=False), encoding="utf-8"
    )
    app_metrics.write_text(json.dumps({"test": {"accuracy": 0.994}}), encoding="utf-8")
    app_history.write_text("epoch,loss\n1,0.3\n")

    result = check(repo, "--strict")

    assert result.returncode == 1
    assert "app-model/dvc.lock, metrics/, plots/" in result.stderr.splitlines()[1]
    assert [line.strip() for line in result.stderr.splitlines()[2:]] == [
        f"app-model/dvc.lock: stage 'train': out data/model/model.keras: md5 {MODEL_MD5} -> "
        f"{OTHER_MD5}",
        "metrics/app-model/evaluate.json: test.accuracy: 0.995 -> 0.994",
        "plots/app-model/history.csv: content differs (1 of 2 lines)",
    ]


def test_a_deleted_output_fails(repo: Path):
    (repo / "metrics" / "evaluate.json").unlink()
    result = check(repo, "--strict")
    assert result.returncode == 1
    assert "metrics/evaluate.json: committed but missing from the working tree" in result.stderr


@pytest.mark.parametrize("reference", [True, False])
def test_off_the_reference_platform_differences_are_reported_not_failed(
    repo: Path,
    reference: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    (repo / "metrics" / "evaluate.json").write_text(
        json.dumps({"test": {"accuracy": 0.97}}), encoding="utf-8"
    )
    monkeypatch.chdir(repo)
    monkeypatch.setattr(verify_outputs, "on_reference_platform", lambda: reference)
    monkeypatch.setattr(verify_outputs, "this_platform", lambda: "Darwin arm64")

    status = verify_outputs.main([])

    out, err = capsys.readouterr()
    difference = "metrics/evaluate.json: test.accuracy: 0.98 -> 0.97"
    if reference:
        assert status == 1
        assert err.startswith("REPRODUCIBILITY CHECK FAILED")
        assert difference in err
    else:
        assert status == 0
        assert out.startswith(
            "Not the reference platform: this is Darwin arm64; the committed "
            "results are promised bit for bit on Linux x86-64 only"
        )
        assert difference in out
        assert verify_outputs.main(["--strict"]) == 1


def test_outside_a_git_repo_the_check_cannot_run(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=tmp_path,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not inside a git work tree" in result.stderr
