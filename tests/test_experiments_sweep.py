"""tools/experiments.py: every experiment of the documented sweep has valid params, and the README
table reads the train stage's own log line and refuses a log from another run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import apply_overrides
from helpers import TINY_TRAIN, train_argv, write_params
from project_tools import load_tool

from digits.params import SECTIONS, load_section
from stages import train
from stages._cli import run

PROJECT = Path(__file__).parents[1]
experiments = load_tool("experiments")


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_each_experiment_has_valid_params(name: str, tmp_path: Path) -> None:
    """The -S overrides, applied the way `dvc exp run -S` applies them, give valid params:
    a typo would otherwise surface only when the queue reaches that experiment."""
    params = tmp_path / "params.yaml"
    shutil.copy(PROJECT / "params.yaml", params)
    overrides = experiments.EXPERIMENTS[name][1]
    apply_overrides(params, overrides)

    sections = {key: load_section(params, key, model) for key, model in SECTIONS.items()}
    for override in overrides:  # each override took effect
        key, value = override.split("=", 1)
        section, *path = key.split(".")
        found = sections[section].model_dump(by_alias=True)
        for part in path:
            found = found[part]
        assert found == yaml.safe_load(value), override


def test_command_reproduces_the_named_experiment() -> None:
    assert experiments.command("cnn") == [
        "dvc", "exp", "run", "-n", "cnn",
        *[part for setting in experiments.EXPERIMENTS["cnn"][1] for part in ("-S", setting)],
    ]  # fmt: skip
    assert experiments.command("notebook-mlp") == ["dvc", "exp", "run", "-n", "notebook-mlp", "-f"]


def test_table_row_reads_the_train_stage_log(
    processed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        run(train.main, train_argv(processed_dir, out, write_params(tmp_path, train=TINY_TRAIN)))
        == 0
    )
    log = experiments.parse_training_log(capsys.readouterr().out)
    train_metrics = json.loads((out / "metrics" / "train.json").read_text(encoding="utf-8"))
    data = {
        "metrics": {
            "metrics/train.json": {"data": train_metrics},
            "metrics/evaluate.json": {"data": {"test": {"accuracy": 0.5, "macro": {"f1": 0.25}}}},
        }
    }

    epochs, seconds, parameters = log
    assert (epochs, parameters) == (train_metrics["epochs"], train_metrics["parameters"])
    assert seconds > 0
    row = experiments.table_row("notebook-mlp", data, log)
    assert row.startswith("| notebook-mlp: the notebook's MLP (the defaults) | 0.5000 | 0.2500 |")
    assert f"| {parameters:,} | {seconds:.0f} s ({epochs} epochs) | `dvc exp run -f` |" in row

    with pytest.raises(SystemExit, match=r"another run's .* `dvc queue remove"):
        experiments.table_row("notebook-mlp", data, (epochs + 1, seconds, parameters))


def test_a_log_without_the_training_line_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'trained N epochs"):
        experiments.parse_training_log("Epoch 1/20\nKilled\n")
    assert experiments.parse_training_log(
        "trained 3 epochs in 9.0 s (10 parameters)\n"
        "trained 18 epochs in 669.0 s (642,018 parameters)\n"
    ) == (18, 669.0, 642018)
