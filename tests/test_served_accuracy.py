"""tools/served_accuracy.py: the table of how well the served models read pictures other than
MNIST, one column per model, run for real with two tiny models."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.pipeline import tiny_train_params, trained_model
from helpers.synthetic import synthetic_split

from digits.app.artifacts import read_model_info
from digits.dataset import save_split

PROJECT = Path(__file__).parents[1]


@pytest.mark.slow
def test_the_accuracy_table_has_a_column_per_model(
    model_file: Path, synthetic_data: dict, tmp_path: Path
) -> None:
    from digits.model import save_model

    other = tmp_path / "cnn.keras"
    save_model(trained_model(tiny_train_params(architecture="cnn"), synthetic_data)[0], other)
    mnist = tmp_path / "processed"
    save_split(mnist, "test", *synthetic_split(50, 7))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.served_accuracy",
            "--compare",
            str(model_file),
            str(other),
            "--per-digit",
            "1",
            "--mnist",
            str(mnist / "test.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT,
    )

    assert run.returncode == 0, run.stderr
    out = run.stdout
    versions = [read_model_info(path).version for path in (model_file, other)]
    assert re.search(r"^ +model\.keras +cnn\.keras$", out, re.MULTILINE), out
    assert re.search(rf"^ +{versions[0]} +{versions[1]}$", out, re.MULTILINE), out
    rows = {
        match["name"].strip(): match["cells"].split()
        for match in re.finditer(
            r"^  (?P<name>\S.{27}) +(?P<images>\d+)(?P<cells>( +[\d.]+%| +-)+)$", out, re.MULTILINE
        )
    }
    kinds = [
        "canvas (as the page draws)",
        "paper scan 600x800",
        "light ink on dark",
        "UCI 8x8 scans (sklearn)",
        "MNIST test (JSON)",
    ]
    for kind in kinds:
        assert len(rows[kind]) == 6, (kind, out)  # read, naive, not a digit; per model
    assert rows["MNIST test (JSON)"][1::3] == ["-", "-"]  # no naive resize: already 28x28
    assert any(kind.startswith("printed (") for kind in rows), out
    assert "grey noise" in rows, out
    assert "p95" not in out  # no latency run
