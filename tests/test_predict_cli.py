"""digits-predict (digits.cli.predict_main), the Predictor and `describe`, with a tiny model
trained here on the synthetic blocks (never data/model, which a fresh clone does not have)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from digits.cli import predict_main, serve_main
from digits.errors import PipelineError
from digits.model import save_model
from digits.predict import Predictor, describe

PROJECT = Path(__file__).parents[1]
RESULT_LINE = re.compile(  # four.png: 4 (97.1%)   top 3: 4 97.1%, 9 2.0%, 1 0.4%
    r"^(?P<file>\S+): (?P<digit>\d) \([\d.]+%\)   top 3: \d [\d.]+%, \d [\d.]+%, \d [\d.]+%$"
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(tiny_model, path)
    return path


def digit_drawing(path: Path, fmt: str = "PNG") -> Path:
    """A hand-drawn-like 4 on a 300x400 sheet, off-centre."""
    sheet = Image.new("RGB", (300, 400), (240, 240, 235))
    pen = ImageDraw.Draw(sheet)
    pen.line([(150, 300), (150, 80), (60, 220), (200, 220)], fill=(20, 20, 40), width=20)
    sheet.save(path, format=fmt)
    return path


def run_predict(*argv: str | Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = predict_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_digit_probability_and_top_3_per_image(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    png = digit_drawing(tmp_path / "four.png")
    jpeg = digit_drawing(tmp_path / "four.jpg", "JPEG")

    code, out, err = run_predict(png, jpeg, "--model", model_file, capsys=capsys)

    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, (png, jpeg), strict=True):
        match = RESULT_LINE.match(line)
        assert match, line
        assert match["file"] == str(path)


def test_json_output_has_one_entry_per_file_in_order(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    png = digit_drawing(tmp_path / "four.png")

    code, out, _ = run_predict(png, png, "--json", "--model", model_file, capsys=capsys)

    assert code == 0
    report = json.loads(out)
    assert [entry["file"] for entry in report] == [str(png), str(png)]
    for entry in report:
        assert set(entry) == {"file", "digit", "probability", "probabilities", "top3"}
        assert len(entry["probabilities"]) == 10
        assert sum(entry["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert entry["top3"][0] == {"digit": entry["digit"], "probability": entry["probability"]}
        top = [item["probability"] for item in entry["top3"]]
        assert top == sorted(top, reverse=True)
        assert len(top) == 3
    assert report[0] == report[1]


def test_bad_files_are_reported_one_by_one_and_the_rest_still_processed(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = digit_drawing(tmp_path / "good.png")
    missing = tmp_path / "missing.png"
    text = tmp_path / "notes.jpg"
    text.write_text("shopping list")
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    too_large = tmp_path / "panorama.png"
    Image.new("1", (5000, 10), 1).save(too_large)
    bad = {
        missing: "no such file",
        text: "not a PNG or JPEG image",
        blank: "blank image",
        too_large: "over the limit of 4096x4096",
        tmp_path: "not a file",
    }

    code, out, err = run_predict(good, *bad, "--model", model_file, capsys=capsys)

    assert code == 1
    assert RESULT_LINE.match(out.strip()), out
    errors = err.splitlines()
    assert len(errors) == len(bad)
    for line, (path, message) in zip(errors, bad.items(), strict=True):
        assert line.startswith(f"error: {path}: "), line
        assert message in line

    code, out, _ = run_predict(good, *bad, "--json", "--model", model_file, capsys=capsys)
    assert code == 1
    report = json.loads(out)
    assert [entry["file"] for entry in report] == [str(p) for p in (good, *bad)]
    assert "digit" in report[0]
    for entry, message in zip(report[1:], bad.values(), strict=True):
        assert set(entry) == {"file", "error"}
        assert message in entry["error"]


def test_a_missing_model_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = digit_drawing(tmp_path / "good.png")

    code, out, err = run_predict(good, "--model", tmp_path / "none.keras", capsys=capsys)

    assert code == 1
    assert out == ""
    assert "none.keras does not exist: run `dvc repro train` first" in err


def test_usage_errors_exit_with_2(capsys: pytest.CaptureFixture) -> None:
    for argv in ([], ["--bogus", "x.png"]):
        with pytest.raises(SystemExit) as exit_info:
            predict_main(argv)
        assert exit_info.value.code == 2
    assert "usage: digits-predict" in capsys.readouterr().err


def test_exit_codes_of_a_real_process(tmp_path: Path) -> None:
    """As the console script runs it: bad files only (TensorFlow is never loaded), no files."""
    code = "import sys; from digits.cli import predict_main; sys.exit(predict_main())"
    missing = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.png'}: no such file"
    usage = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 2
    assert "the following arguments are required: IMAGE" in usage.stderr


def test_console_scripts_point_at_existing_functions() -> None:
    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert set(scripts) == {"digits-predict", "digits-serve"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(import_module(module), function))


def test_predictor_matches_model_predict(model_file: Path, synthetic_data: dict) -> None:
    predictor = Predictor.from_file(model_file)
    images = synthetic_data["test"][0][:20]

    fast = predictor.probabilities(images)

    np.testing.assert_allclose(fast, predictor.model.predict(images, verbose=0), atol=1e-6)
    assert fast.shape == (20, 10)
    assert fast.dtype == np.float32
    single = predictor.probabilities(images[:1])
    np.testing.assert_allclose(single, fast[:1], atol=1e-6)
    # The tiny model has learnt the blocks: the pixels reach it the right way round.
    labels = synthetic_data["test"][1][:20].argmax(axis=1)
    assert (fast.argmax(axis=1) == labels).mean() >= 0.8


def test_predictor_rejects_wrong_shapes(model_file: Path) -> None:
    predictor = Predictor.from_file(model_file)
    with pytest.raises(ValueError, match=r"expected \(N, 28, 28\) images, got \(28, 28\)"):
        predictor.probabilities(np.zeros((28, 28), np.float32))

    flat = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10)])
    with pytest.raises(PipelineError, match=r"the model maps \(None, 784\) -> \(None, 10\)"):
        Predictor(flat)


def test_describe_sorts_the_top_3_and_breaks_ties_by_digit() -> None:
    probabilities = np.array([0.1, 0.3, 0.05, 0.3, 0.0, 0.0, 0.0, 0.2, 0.05, 0.0], np.float32)

    result = describe(probabilities)

    assert result["digit"] == 1
    assert result["probability"] == 0.3
    assert [entry["digit"] for entry in result["top3"]] == [1, 3, 7]
    assert result["probabilities"] == [round(float(p), 6) for p in probabilities]
    json.dumps(result, allow_nan=False)  # plain Python numbers
    with pytest.raises(ValueError, match=r"expected \(10,\) probabilities"):
        describe(np.ones((1, 10)))


def test_output_reads_the_same_from_file_and_bytes(model_file: Path, tmp_path: Path) -> None:
    """The command and the server bring images to MNIST's conventions the same way."""
    from digits.images import decode_image, read_image, to_mnist

    path = digit_drawing(tmp_path / "four.png")
    from_file = to_mnist(read_image(path))
    from_bytes = to_mnist(decode_image(path.read_bytes(), "body"))
    np.testing.assert_array_equal(from_file, from_bytes)


@pytest.mark.parametrize("main", [predict_main, serve_main])
def test_help_says_where_the_default_model_comes_from(main, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: data/model/model.keras" in text
    assert "`dvc repro`" in text
    assert "`dvc pull`" in text
    (artifact,) = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))["artifacts"]
    assert f"`dvc artifacts get REPO_URL {artifact}`" in text
