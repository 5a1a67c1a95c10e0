"""stages.train then stages.evaluate, end to end on tiny synthetic data in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers.pipeline import PROJECT, TINY_TRAIN, evaluate_argv, train_argv, write_params

from digits.dataset import load_split
from digits.model import HISTORY_COLUMNS
from stages import evaluate, train
from stages._cli import run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAIN = {**TINY_TRAIN, "epochs": 2}


def test_train_then_evaluate_writes_every_output(processed_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    params = write_params(tmp_path, train=TRAIN)
    _, test_labels = load_split(processed_dir, "test")

    assert run(train.main, train_argv(processed_dir, out, params)) == 0
    assert run(evaluate.main, evaluate_argv(processed_dir, out, params)) == 0

    # train: model, history, curves, metrics
    model = keras.saving.load_model(out / "model" / "model.keras")
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [
        32,
        10,
    ]
    history = pd.read_csv(out / "plots" / "train" / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2]
    curves = (out / "plots" / "train" / "training_curves.png").read_bytes()
    assert curves.startswith(PNG_SIGNATURE)
    train_metrics = json.loads((out / "metrics" / "train.json").read_text(encoding="utf-8"))
    assert set(train_metrics) == {"parameters", "epochs", "best"}
    assert train_metrics["parameters"] == (784 * 32 + 32) + (32 * 10 + 10)
    assert train_metrics["epochs"] == 2
    assert train_metrics["best"]["epoch"] in (1, 2)

    # train: DVCLive's log, one row per epoch, the last epoch's scores in its metrics.json
    live = json.loads((out / "dvclive" / "metrics.json").read_text(encoding="utf-8"))
    assert live["step"] == 2  # the last epoch
    for split, prefix in (("train", ""), ("eval", "val_")):
        for metric in ("loss", "accuracy"):
            assert live[split][metric] == pytest.approx(history[prefix + metric].iloc[-1], abs=1e-6)
            rows = pd.read_csv(
                out / "dvclive" / "plots" / "metrics" / split / f"{metric}.tsv", sep="\t"
            )
            assert list(rows.columns) == ["step", metric]  # no timestamp column
            assert rows["step"].tolist() == history["epoch"].tolist()
            assert rows[metric].tolist() == pytest.approx(
                history[prefix + metric].tolist(), abs=1e-6
            )

    # evaluate: metrics JSON
    test = json.loads((out / "metrics" / "evaluate.json").read_text(encoding="utf-8"))["test"]
    assert 0.5 < test["accuracy"] <= 1  # chance is 0.1 on the synthetic blocks
    assert test["loss"] > 0
    for average in ("macro", "weighted"):
        assert set(test[average]) == {"precision", "recall", "f1"}
        assert all(0 <= value <= 1 for value in test[average].values())
    assert sorted(test) == ["accuracy", "loss", "macro", "weighted"]  # per class: plot data

    # evaluate: plot data and figures
    plots = out / "plots" / "evaluate"
    predictions = pd.read_csv(plots / "predictions.csv")
    assert list(predictions.columns) == ["actual", "predicted"]
    assert len(predictions) == len(test_labels)
    assert predictions["actual"].tolist() == test_labels.argmax(axis=1).tolist()
    assert (predictions["actual"] == predictions["predicted"]).mean() == pytest.approx(
        test["accuracy"], abs=1e-6
    )
    per_class = pd.read_csv(plots / "per_class.csv")
    assert list(per_class.columns) == ["digit", "precision", "recall", "f1", "support"]
    assert per_class["digit"].tolist() == list(range(10))
    supports = np.bincount(test_labels.argmax(axis=1), minlength=10).tolist()
    assert per_class["support"].tolist() == supports
    for figure in ("confusion_matrix.png", "misclassified.png"):
        assert (plots / figure).read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(path.name for path in plots.iterdir()) == [
        "confusion_matrix.png",
        "misclassified.png",
        "per_class.csv",
        "predictions.csv",
    ]
    # Every writer renamed its temp file into place: nothing hidden left behind.
    assert list(out.rglob(".*")) == []


def test_evaluate_without_a_model_fails_with_a_clear_message(
    processed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "no-such" / "model.keras"
    argv = evaluate_argv(processed_dir, out, write_params(tmp_path, train=TRAIN), model=missing)

    assert run(evaluate.main, argv) == 1

    assert str(missing) in capsys.readouterr().err
    assert not out.exists()


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("failure", ["exception", "sigterm"])
def test_a_train_run_that_fails_while_writing_keeps_the_previous_outputs(
    processed_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: str,
) -> None:
    out = tmp_path / "out"
    assert run(train.main, train_argv(processed_dir, out, write_params(tmp_path, train=TRAIN))) == 0
    before = tree_bytes(out)

    def fail_after_the_model_is_written(history: pd.DataFrame) -> None:
        assert any(p.name.startswith(".model.keras.") for p in (out / "model").iterdir())
        if failure == "sigterm":  # what `kill PID` sends; Ctrl+C's SIGINT is handled alike
            os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("the figure could not be drawn")

    monkeypatch.setattr(train, "training_curves_figure", fail_after_the_model_is_written)
    argv = train_argv(processed_dir, out, write_params(tmp_path, train={**TRAIN, "epochs": 1}))
    if failure == "exception":
        with pytest.raises(RuntimeError):
            run(train.main, argv)
    else:
        assert run(train.main, argv) == 130
        assert "interrupted: the previous outputs are kept" in capsys.readouterr().err

    # The 2-epoch model, history, curves and metrics, whole, and no temp file. DVCLive's folder
    # is a progress log: it holds the failed run's epoch (dvc checkout restores it, DVC caches it).
    after = tree_bytes(out)
    live = {name for name in after if name.startswith("dvclive/")}
    assert {name: after[name] for name in after.keys() - live} == {
        name: before[name] for name in before.keys() - live
    }
    assert json.loads(after["dvclive/metrics.json"])["step"] == 1  # the failed run's 1 epoch
    assert list(out.rglob(".*")) == []


# What the train stage leaves TensorFlow's thread pools at, in a fresh process as under dvc.
REPORT_THREADS = """
import sys
import tensorflow as tf
from stages import train
assert train.main(sys.argv[1:]) == 0
print(tf.config.threading.get_intra_op_parallelism_threads(),
      tf.config.threading.get_inter_op_parallelism_threads(),
      tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False))
"""


@pytest.mark.parametrize(("architecture", "settings"), [("mlp", "1 2 True"), ("cnn", "2 2 False")])
def test_the_train_stage_runs_the_mlp_s_ops_on_one_thread_without_grappler_the_cnn_s_on_two(
    processed_dir: Path, tmp_path: Path, architecture: str, settings: str
) -> None:
    # The MLP's ops are too small to share or to gain from Grappler's rewrites (a second inter-op
    # thread feeds it); the CNN's weights depend on the thread count, so it is the same on every
    # machine (digits.model.CNN_THREADS).
    params = write_params(tmp_path, train={**TINY_TRAIN, "architecture": architecture})
    argv = [str(arg) for arg in train_argv(processed_dir, tmp_path / "out", params)]
    result = subprocess.run(
        [sys.executable, "-c", REPORT_THREADS, *argv],
        cwd=PROJECT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert result.stdout.splitlines()[-1] == settings, result.stderr


def test_a_cnn_trains_the_same_bits_whatever_the_machines_core_count(
    processed_dir: Path, tmp_path: Path
) -> None:
    # TensorFlow's default thread count is one per core, or TF_NUM_INTRAOP_THREADS: a 4-core
    # machine stands in for this one. Batch norm's moments and the convolutions' weight gradients
    # are reductions split by thread, so the thread count must not come from the machine.
    params = write_params(
        tmp_path, train={**TINY_TRAIN, "architecture": "cnn", "batch_norm": True, "epochs": 2}
    )
    models = []
    for cores in (None, "4"):
        out = tmp_path / f"cores-{cores}"
        argv = [str(arg) for arg in train_argv(processed_dir, out, params)]
        names = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
        threads = dict.fromkeys(names, cores) if cores else {}
        subprocess.run(
            [sys.executable, "-m", "stages.train", *argv],
            cwd=PROJECT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **threads},
            capture_output=True,
            timeout=300,
            check=True,
        )
        models.append((out / "model" / "model.keras").read_bytes())
    assert models[0] == models[1]
