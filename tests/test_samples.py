"""digits.app.samples: the labelled pictures other than MNIST (drawn, scanned, printed in every
font with digits, scikit-learn's UCI handwriting) and the non-digits, each a picture that the
app's preprocessing brings to MNIST's conventions."""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

from digits.app import samples
from digits.app.images import to_mnist

MATPLOTLIB_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def test_only_fonts_that_draw_digits_are_used() -> None:
    assert samples.has_digits(MATPLOTLIB_FONTS / "DejaVuSans.ttf")
    assert samples.has_digits(MATPLOTLIB_FONTS / "cmr10.ttf")
    assert not samples.has_digits(MATPLOTLIB_FONTS / "cmsy10.ttf")  # prime, infinity, ...
    assert not samples.has_digits(MATPLOTLIB_FONTS / "STIXSizOneSymReg.ttf")  # no digits at all

    ((name, cases),) = samples.printed_cases().items()

    fonts = int(re.fullmatch(r"printed \((\d+) fonts\)", name)[1])
    assert fonts >= 10  # matplotlib's own: DejaVu, STIX, Computer Modern
    assert [digit for digit, _ in cases] == list(range(10)) * fonts
    for digit, image in cases[:10]:
        mnist = to_mnist(image, f"printed {digit}")
        assert mnist.shape == (28, 28)
        assert mnist.max() > 0.5


def test_without_system_fonts_matplotlibs_own_are_used(tmp_path: Path) -> None:
    ((name, _),) = samples.printed_cases(folders=(str(tmp_path),)).items()
    assert int(re.fullmatch(r"printed \((\d+) fonts\)", name)[1]) >= 10


def test_uci_digits_are_dark_on_paper_and_preprocess_like_a_scan() -> None:
    ((name, cases),) = samples.uci_cases().items()

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


def test_drawn_digits_are_labelled_and_repeatable() -> None:
    first = samples.drawn_cases(np.random.default_rng(3), per_digit=2)
    again = samples.drawn_cases(np.random.default_rng(3), per_digit=2)

    assert list(first) == ["canvas (as the page draws)", "paper scan 600x800", "light ink on dark"]
    for kind, cases in first.items():
        assert [digit for digit, _ in cases] == [d for d in range(10) for _ in range(2)], kind
        for (_, image), (_, same) in zip(cases, again[kind], strict=True):
            assert np.array_equal(np.asarray(image), np.asarray(same)), kind
    assert first["paper scan 600x800"][0][1].size == (600, 800)
    canvas = first["canvas (as the page draws)"][0][1]
    assert (canvas.format, canvas.mode, canvas.size) == ("PNG", "RGBA", (280, 280))
    light = np.asarray(first["light ink on dark"][0][1])
    assert np.median(light) < 64  # dark paper
    for kind, cases in first.items():
        assert to_mnist(cases[0][1], kind).max() > 0.5


def test_canvas_png_is_what_the_page_sends() -> None:
    png = samples.canvas_png(7, np.random.default_rng(0))
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (280, 280))
    assert np.asarray(image)[..., 3].min() == 255  # opaque


def test_mnist_cases_keep_the_arrays_as_they_are() -> None:
    images = np.zeros((3, 28, 28), np.float32)
    labels = np.eye(10, dtype=np.float32)[[4, 0, 9]]
    ((name, cases),) = samples.mnist_cases(images, labels).items()
    assert name == "MNIST test"
    assert [digit for digit, _ in cases] == [4, 0, 9]
    np.testing.assert_array_equal(np.stack([image for _, image in cases]), images)


def test_scribbles_are_canvas_sized_and_of_every_kind() -> None:
    scribbles = samples.scribble_cases(np.random.default_rng(0), 2)
    assert set(scribbles) == {
        "grey noise",
        "colour noise",
        "scattered dots",
        "one dot",
        "filled blob",
        "random scribble",
    }
    for kind, images in scribbles.items():
        assert len(images) == 2, kind
        assert all(image.size == (280, 280) for image in images), kind
