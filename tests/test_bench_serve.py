"""tools/bench_serve.py's accuracy part: the pictures it sends (printed digits in every font with
digits, scikit-learn's UCI handwriting) and its table, one column per model, run for real with
two tiny models (`--accuracy-only`: no latency benchmark)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from helpers.pipeline import tiny_train_params, trained_model
from helpers.project_tools import load_tool
from helpers.synthetic import synthetic_split

from digits.app.artifacts import read_model_info
from digits.app.images import to_mnist
from digits.dataset import save_split

PROJECT = Path(__file__).parents[1]
MATPLOTLIB_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
bench = load_tool("bench_serve")


def test_only_fonts_that_draw_digits_are_used() -> None:
    assert bench.has_digits(MATPLOTLIB_FONTS / "DejaVuSans.ttf")
    assert bench.has_digits(MATPLOTLIB_FONTS / "cmr10.ttf")
    assert not bench.has_digits(MATPLOTLIB_FONTS / "cmsy10.ttf")  # prime, infinity, ...
    assert not bench.has_digits(MATPLOTLIB_FONTS / "STIXSizOneSymReg.ttf")  # no digits at all

    ((name, cases),) = bench.printed_cases().items()

    fonts = int(re.fullmatch(r"printed \((\d+) fonts\)", name)[1])
    assert fonts >= 10  # matplotlib's own: DejaVu, STIX, Computer Modern
    assert [digit for digit, _ in cases] == list(range(10)) * fonts
    for digit, image in cases[:10]:
        mnist = to_mnist(image, f"printed {digit}")
        assert mnist.shape == (28, 28)
        assert mnist.max() > 0.5


def test_uci_digits_are_dark_on_paper_and_preprocess_like_a_scan() -> None:
    ((name, cases),) = bench.uci_cases().items()

    assert name == "UCI 8x8 scans (sklearn)"
    assert len(cases) == 1797
    assert np.bincount([digit for digit, _ in cases]).min() >= 170  # every digit, ~180 each
    for digit, image in cases[:20]:
        pixels = np.asarray(image)
        assert image.mode == "L"
        assert pixels.shape[0] > 8 * 8  # upscaled
        assert pixels[0].min() == 255  # a margin of white paper
        assert pixels.min() < 64  # dark ink
        mnist = to_mnist(image, f"uci {digit}")
        assert mnist[0].max() < 0.1  # bright ink on black, centred: MNIST's conventions
        assert mnist.max() > 0.9


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
            str(PROJECT / "tools" / "bench_serve.py"),
            "--accuracy-only",
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
