"""stages.explore on small synthetic processed data (its figures: tests/test_plots.py)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from helpers.pipeline import write_params
from helpers.synthetic import synthetic_split

from digits.dataset import save_split
from stages import explore as explore_stage
from stages._cli import run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZES = {"train": 50, "validation": 20, "test": 30}
ROWS, COLUMNS = 2, 5


def write_processed(folder: Path) -> dict[str, np.ndarray]:
    """data/processed with one-hot float32 labels; returns the digits of each split."""
    digits = {}
    for seed, (split, count) in enumerate(SIZES.items()):
        images, one_hot = synthetic_split(count, seed)
        save_split(folder, split, images, one_hot)
        digits[split] = one_hot.argmax(axis=1)
    return digits


def explore_params(folder: Path, rows: int = ROWS, columns: int = COLUMNS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_params(folder, explore={"sample_rows": rows, "sample_columns": columns})


@pytest.fixture
def processed(tmp_path: Path) -> Path:
    write_processed(tmp_path / "processed")
    return tmp_path / "processed"


@pytest.fixture
def params(tmp_path: Path) -> Path:
    return explore_params(tmp_path)


@dataclass
class Explored:
    """Two stage runs on the same inputs (shared by the read-only tests: rendering is slow)."""

    digits: dict[str, np.ndarray]
    first: Path
    second: Path
    stdout: str


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> Explored:
    root = tmp_path_factory.mktemp("explore")
    digits = write_processed(root / "processed")
    params = explore_params(root)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run_stage(params, root / "processed", root / "first") == 0
    assert run_stage(params, root / "processed", root / "second") == 0
    return Explored(digits, root / "first", root / "second", stdout.getvalue())


def run_stage(params: Path, processed: Path, out_dir: Path) -> int:
    return run(explore_stage.main, ["--params", str(params), str(processed), str(out_dir)])


# --- the stage ----------------------------------------------------------------------------------


def test_stage_writes_the_class_distribution_csv(explored: Explored) -> None:
    out_dir = explored.first
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "class_distribution.csv",
        "class_distribution.png",
        "mean_digits.png",
        "samples.png",
    ]
    table = pd.read_csv(out_dir / "class_distribution.csv")
    assert list(table.columns) == ["digit", "train", "validation", "test"]
    assert table["digit"].tolist() == list(range(10))
    for split, labels in explored.digits.items():
        assert table[split].tolist() == np.bincount(labels, minlength=10).tolist(), split
        assert table[split].sum() == SIZES[split]
    assert (
        (out_dir / "class_distribution.csv")
        .read_text(encoding="utf-8")
        .startswith("digit,train,validation,test\n0,5,2,3\n")
    )
    assert "digit  train  validation  test" in explored.stdout


@pytest.mark.parametrize(
    ("name", "inches"),
    [
        ("class_distribution.png", (8, 4)),
        ("samples.png", (COLUMNS * 0.9, ROWS * 1.05)),
        ("mean_digits.png", (10 * 0.9, 1.05)),
    ],
)
def test_stage_writes_valid_pngs(
    explored: Explored, name: str, inches: tuple[float, float]
) -> None:
    path = explored.first / name
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert width > 100
    assert height > 100
    assert (width, height) == pytest.approx((inches[0] * 100, inches[1] * 100), abs=1)
    assert pixels.std() > 0.01  # something was drawn, not a blank canvas


def test_stage_output_is_byte_identical_across_runs(explored: Explored) -> None:
    names = sorted(p.name for p in explored.first.iterdir())
    assert names == sorted(p.name for p in explored.second.iterdir())
    for name in names:
        assert (explored.first / name).read_bytes() == (explored.second / name).read_bytes(), name


def test_stage_rerun_replaces_its_previous_output(
    tmp_path: Path, processed: Path, params: Path
) -> None:
    out_dir = tmp_path / "explore"
    out_dir.mkdir()
    (out_dir / "stale.png").write_bytes(b"from an older run")
    assert run_stage(params, processed, out_dir) == 0
    assert not (out_dir / "stale.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_stage_sample_grid_follows_the_params(tmp_path: Path, processed: Path) -> None:
    small = explore_params(tmp_path / "small", rows=1, columns=3)
    large = explore_params(tmp_path / "large", rows=3, columns=3)
    assert run_stage(small, processed, tmp_path / "a") == 0
    assert run_stage(large, processed, tmp_path / "b") == 0
    small_height = matplotlib.image.imread(tmp_path / "a" / "samples.png").shape[0]
    large_height = matplotlib.image.imread(tmp_path / "b" / "samples.png").shape[0]
    assert large_height == pytest.approx(3 * small_height, abs=2)
