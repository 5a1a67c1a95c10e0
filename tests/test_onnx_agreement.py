"""tools/onnx_agreement.py: Keras against ONNX Runtime on the MNIST test split and the pictures
of other handwriting, on a tiny model and synthetic digits."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from digits.dataset import save_split
from digits.model import Network, build_model, save_model
from digits.onnx_export import onnx_bytes
from tools import onnx_agreement


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """model.keras and its model.onnx (a small CNN), and other.onnx: another model's."""
    folder = tmp_path_factory.mktemp("agreement")
    keras.utils.set_random_seed(0)
    model = build_model(Network(architecture="cnn", conv_filters=(4,), hidden_units=(16,)))
    save_model(model, folder / "model.keras")
    (folder / "model.onnx").write_bytes(onnx_bytes(model))
    keras.utils.set_random_seed(1)
    other = build_model(Network(architecture="cnn", conv_filters=(4,), hidden_units=(16,)))
    (folder / "other.onnx").write_bytes(onnx_bytes(other))
    return {
        name: folder / file
        for name, file in (
            ("model", "model.keras"),
            ("onnx", "model.onnx"),
            ("other", "other.onnx"),
        )
    }


@pytest.fixture
def mnist(tmp_path: Path, synthetic_data: dict) -> Path:
    save_split(tmp_path, "test", *synthetic_data["test"])
    return tmp_path / "test.npz"


def test_the_exported_model_agrees_on_every_set(
    model_files: dict[str, Path], mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", str(model_files["model"]), "--mnist", str(mnist), "--per-digit", "1"]

    assert onnx_agreement.main(argv) == 0

    out = capsys.readouterr().out
    for name in ("MNIST test", "UCI", "canvas", "paper scan", "light ink", "printed"):
        assert name in out
    assert "the same digit for every picture, probabilities within 1e-05" in out


def test_another_models_onnx_file_is_caught(
    model_files: dict[str, Path], mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--model",
        str(model_files["model"]),
        "--onnx",
        str(model_files["other"]),
        "--mnist",
        str(mnist),
        "--per-digit",
        "1",
    ]

    assert onnx_agreement.main(argv) == 1

    err = capsys.readouterr().err
    assert err.startswith("error: the ONNX model disagrees on MNIST test")


def test_a_missing_onnx_file_is_named(
    model_files: dict[str, Path], mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.onnx"
    argv = ["--model", str(model_files["model"]), "--onnx", str(missing), "--mnist", str(mnist)]

    assert onnx_agreement.main(argv) == 1

    assert (
        capsys.readouterr().err == f"error: {missing} does not exist (made by the export stage)\n"
    )


def test_compare_counts_other_digits_and_the_largest_difference() -> None:
    reference = np.float32([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    candidate = np.float32([[0.8, 0.2], [0.6, 0.4], [0.5, 0.5]])

    found = onnx_agreement.compare(reference, candidate)

    assert (found.pictures, found.other_digit) == (3, 1)
    assert found.largest_difference == pytest.approx(0.2)
    assert not found.holds(1.0)
    assert onnx_agreement.compare(reference, reference).holds(0.0)
