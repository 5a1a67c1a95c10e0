"""tools/bench_runtimes.py: digits-serve on ONNX Runtime and on Keras, side by side, run for real
with a tiny model and its ONNX export."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers.pipeline import run_tool

from digits.onnx_export import onnx_bytes


def test_a_model_without_its_onnx_file_says_what_makes_it(model_file: Path) -> None:
    run = run_tool("tools.bench_runtimes", "--model", str(model_file))

    assert run.returncode == 1
    onnx = model_file.with_suffix(".onnx")
    assert run.stderr == (
        f"error: {onnx} does not exist: the export stage writes it (dvc repro, make app-model)\n"
    )


@pytest.mark.slow
def test_both_runtimes_get_every_figure(model_file: Path, tiny_model, tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    shutil.copyfile(model_file, model)
    model.with_suffix(".onnx").write_bytes(onnx_bytes(tiny_model))

    run = run_tool(
        "tools.bench_runtimes", "--model", str(model), "--requests", "5", "--rounds", "1"
    )

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert re.fullmatch(r" +Keras \(TensorFlow\) +ONNX Runtime", lines[2])
    figures = {
        line[:40].strip(): [float(value) for value in line[40:].split()] for line in lines[3:]
    }
    labels = [
        f"{payload}, {clients}: {percentile} ms"
        for payload in ("json 28x28", "png 280x280")
        for clients in ("1 client", "4 clients")
        for percentile in ("p50", "p95")
    ]
    assert list(figures) == ["start to first answer s", "idle RSS MB", *labels]
    assert all(len(values) == 2 and all(v > 0 for v in values) for values in figures.values())
    keras_rss, onnx_rss = figures["idle RSS MB"]
    assert onnx_rss < keras_rss  # no TensorFlow in the ONNX Runtime server
