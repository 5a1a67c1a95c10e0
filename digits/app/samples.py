"""Pictures of digits that are not MNIST, labelled, to measure how the recogniser reads them.

Each builder returns {kind: [(digit, picture), ...]}: hand-drawn-like digits (stroke templates
with random size, position, slant, stroke width and polarity) as the page's canvas draws them,
as paper scans and light on dark (`drawn_cases`); the ten digits printed in every TrueType font
found that has digits (`printed_cases`); another set of people's handwriting, scikit-learn's
bundled UCI digits (`uci_cases`); and what is not a digit, noise and scribbles
(`scribble_cases`, unlabelled). Pictures are PIL images as a person would send them; the MNIST
test split is already in MNIST's conventions and stays (28, 28) arrays (`mnist_cases`).
Nothing is read from the network; the random ones depend only on the generator given.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CANVAS = 280  # the page's canvas, px
CANVAS_LINE_WIDTH = 22  # as in digits/app/web/draw.js
FONT_FOLDERS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
UCI_SIZE = 128  # the 8x8 UCI scans are upscaled to this, as a phone photo of them would be
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

Picture = Image.Image | np.ndarray  # a picture as sent, or (28, 28) in MNIST's conventions
Cases = dict[str, list[tuple[int, Picture]]]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, count: int = 24):
    """Points on an ellipse from angle `start` to `end` in degrees (0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(start, end, count)
    ]


# How people draw each digit: strokes of (x, y) points in a unit box, y down.
STROKES = {
    0: [arc(0.5, 0.5, 0.38, 0.5, -90, 270, 40)],
    1: [[(0.35, 0.15), (0.55, 0.0), (0.55, 1.0)]],
    2: [[*arc(0.5, 0.28, 0.38, 0.28, 190, 380, 20), (0.1, 1.0), (0.92, 1.0)]],
    3: [arc(0.48, 0.25, 0.36, 0.25, 200, 450, 20) + arc(0.48, 0.74, 0.42, 0.26, -90, 160, 20)],
    4: [[(0.65, 1.0), (0.65, 0.0), (0.05, 0.68), (0.95, 0.68)]],
    5: [[(0.88, 0.0), (0.22, 0.0), (0.16, 0.44), *arc(0.5, 0.68, 0.4, 0.32, 230, 500, 24)]],
    6: [[(0.78, 0.02), *arc(0.5, 0.7, 0.36, 0.3, 180, 540, 30)]],
    7: [[(0.08, 0.0), (0.92, 0.0), (0.38, 1.0)]],
    8: [arc(0.5, 0.24, 0.3, 0.24, 90, 450, 24), arc(0.5, 0.73, 0.38, 0.27, -90, 270, 28)],
    9: [arc(0.52, 0.28, 0.34, 0.28, 0, 360, 28), [(0.86, 0.28), (0.8, 1.0)]],
}


def draw_digit(
    digit: int,
    rng: np.random.Generator,
    size: tuple[int, int] = (CANVAS, CANVAS),
    height: float = 0.7 * CANVAS,
    line_width: float = CANVAS_LINE_WIDTH,
    centre: tuple[float, float] | None = None,
    ink: int = 31,
    paper: int = 255,
) -> Image.Image:
    """A jittered drawing of `digit`, `height` px tall: random slant, tilt, width, wobble."""
    tilt = math.radians(rng.uniform(-10, 10))
    slant = rng.uniform(-0.25, 0.1)
    aspect = rng.uniform(0.55, 0.75)
    cx, cy = centre if centre is not None else (size[0] / 2, size[1] / 2)
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    width = max(1, round(line_width))
    for stroke in STROKES[digit]:
        points = []
        for x, y in stroke:
            x, y = (x - 0.5) * aspect + slant * (y - 0.5), y - 0.5
            x, y = x * math.cos(tilt) - y * math.sin(tilt), x * math.sin(tilt) + y * math.cos(tilt)
            wobble = rng.normal(0, 0.01, 2)
            points.append((cx + (x + wobble[0]) * height, cy + (y + wobble[1]) * height))
        draw.line(points, fill=ink, width=width, joint="curve")
        for px, py in (points[0], points[-1]):  # round caps, like the canvas
            draw.ellipse((px - width / 2, py - width / 2, px + width / 2, py + width / 2), ink)
    return image


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def canvas_png(digit: int, rng: np.random.Generator) -> bytes:
    """What the page sends: an opaque RGBA 280x280 PNG of a digit drawn at a random place."""
    height = rng.uniform(0.45, 0.85) * CANVAS
    margin = min(height / 2 + CANVAS_LINE_WIDTH / 2, CANVAS / 2)
    centre = (
        rng.uniform(margin * 0.7, CANVAS - margin * 0.7),
        rng.uniform(margin, CANVAS - margin),
    )
    image = draw_digit(digit, rng, height=height, centre=centre)
    return png_bytes(image.convert("RGBA"))


def drawn_cases(rng: np.random.Generator, per_digit: int) -> Cases:
    """Hand-drawn-like digits in the situations the preprocessing has to handle."""
    cases: Cases = {"canvas (as the page draws)": [], "paper scan 600x800": []}
    cases["light ink on dark"] = []
    for digit in range(10):
        for _ in range(per_digit):
            cases["canvas (as the page draws)"].append(
                (digit, Image.open(io.BytesIO(canvas_png(digit, rng))))
            )
            height = rng.uniform(120, 500)
            scan = draw_digit(
                digit,
                rng,
                size=(600, 800),
                height=height,
                line_width=height * rng.uniform(0.02, 0.1),
                centre=(rng.uniform(200, 400), rng.uniform(280, 520)),
                ink=int(rng.uniform(20, 90)),
                paper=int(rng.uniform(200, 250)),
            )
            noisy = np.asarray(scan, np.float32) + rng.normal(0, 6, (800, 600))
            jpeg = io.BytesIO()
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(jpeg, "JPEG", quality=70)
            cases["paper scan 600x800"].append((digit, Image.open(jpeg)))
            light = draw_digit(digit, rng, height=rng.uniform(0.4, 0.8) * CANVAS, ink=235, paper=20)
            cases["light ink on dark"].append((digit, light))
    return cases


def font_files(folders: tuple[str, ...] = FONT_FOLDERS) -> list[Path]:
    """TrueType fonts of the system (`folders`) and matplotlib's bundled ones (always there:
    DejaVu, STIX, Computer Modern), one per file name."""
    import matplotlib

    every = [*map(Path, folders), Path(matplotlib.get_data_path()) / "fonts" / "ttf"]
    found: dict[str, Path] = {}
    for folder in every:
        for path in sorted(folder.glob("*.ttf")):
            found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def has_digits(font_path: Path) -> bool:
    """Whether the font draws digits at '0'..'9' (its glyphs there are named zero..nine, or
    zerooldstyle..): symbol fonts put other glyphs there (cmsy10: prime, infinity, ...) or none."""
    from fontTools.ttLib import TTFont  # matplotlib's dependency

    cmap = TTFont(font_path, lazy=True).getBestCmap() or {}
    return all(
        str(cmap.get(ord(str(digit)))).startswith(name) for digit, name in enumerate(DIGIT_NAMES)
    )


def printed_digits(font_path: Path) -> list[Image.Image]:
    """The ten digits in black on white, 200 px tall, in the font."""
    font = ImageFont.truetype(str(font_path), 200)
    images = []
    for digit in range(10):
        image = Image.new("L", (300, 400), 255)
        ImageDraw.Draw(image).text((150, 200), str(digit), fill=0, font=font, anchor="mm")
        images.append(image)
    return images


def printed_cases(folders: tuple[str, ...] = FONT_FOLDERS) -> Cases:
    """Every digit in every font that has digits (DejaVu Math TeX Gyre left out: a math font)."""
    fonts = [path for path in font_files(folders) if "Math" not in path.name and has_digits(path)]
    cases = [(digit, image) for path in fonts for digit, image in enumerate(printed_digits(path))]
    return {f"printed ({len(fonts)} fonts)": cases}


def uci_cases() -> Cases:
    """scikit-learn's bundled UCI handwritten digits (1,797 8x8 scans of 43 people, 17 grey
    levels, ink bright), as dark ink on white paper: upscaled to UCI_SIZE and given a margin of
    paper (the 8x8 blocks are cropped to the digit). Another set of handwriting than MNIST."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    cases: list[tuple[int, Picture]] = []
    margin = UCI_SIZE // 4
    for image, label in zip(digits.images, digits.target, strict=True):
        ink = (255 - image * (255 / 16)).astype(np.uint8)
        sheet = Image.new("L", (UCI_SIZE + 2 * margin,) * 2, 255)
        sheet.paste(
            Image.fromarray(ink).resize((UCI_SIZE, UCI_SIZE), Image.Resampling.BICUBIC),
            (margin, margin),
        )
        cases.append((int(label), sheet))
    return {"UCI 8x8 scans (sklearn)": cases}


def other_handwriting_cases(
    rng: np.random.Generator, per_digit: int, font_folders: tuple[str, ...] = FONT_FOLDERS
) -> Cases:
    """Every labelled kind of picture that is not MNIST: drawn (`per_digit` of each digit per
    situation), printed (in the fonts of `font_folders` and matplotlib's) and the UCI scans."""
    return {**drawn_cases(rng, per_digit), **printed_cases(font_folders), **uci_cases()}


def mnist_cases(images: np.ndarray, labels: np.ndarray, name: str = "MNIST test") -> Cases:
    """A split as stored in data/processed ((N, 28, 28) float32, (N, 10) one-hot) as cases:
    already in MNIST's conventions, to be read as they are."""
    digits = labels.argmax(axis=1).tolist()
    return {name: list(zip(digits, images, strict=True))}


def scribble_cases(rng: np.random.Generator, count: int) -> dict[str, list[Image.Image]]:
    """What is not a digit: noise, and what a person might draw instead of one (a canvas)."""

    def canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
        image = Image.new("L", (CANVAS, CANVAS), 255)
        return image, ImageDraw.Draw(image)

    def dot(pen: ImageDraw.ImageDraw, x: float, y: float, radius: float) -> None:
        pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=31)

    kinds = ("grey noise", "colour noise", "scattered dots", "one dot", "filled blob")
    cases: dict[str, list[Image.Image]] = {name: [] for name in kinds}
    cases["random scribble"] = []
    for _ in range(count):
        cases["grey noise"].append(
            Image.fromarray(rng.integers(0, 256, (CANVAS, CANVAS), dtype=np.uint8))
        )
        cases["colour noise"].append(
            Image.fromarray(rng.integers(0, 256, (CANVAS, CANVAS, 3), dtype=np.uint8))
        )
        image, pen = canvas()
        for _ in range(rng.integers(5, 40)):
            dot(pen, *rng.uniform(0, CANVAS, 2), rng.uniform(3, 12))
        cases["scattered dots"].append(image)
        image, pen = canvas()
        dot(pen, *rng.uniform(40, CANVAS - 40, 2), CANVAS_LINE_WIDTH / 2)
        cases["one dot"].append(image)
        image, pen = canvas()
        dot(pen, *rng.uniform(80, CANVAS - 80, 2), rng.uniform(30, 80))
        cases["filled blob"].append(image)
        image, pen = canvas()
        points = [tuple(rng.uniform(20, CANVAS - 20, 2)) for _ in range(rng.integers(6, 20))]
        pen.line(points, fill=31, width=CANVAS_LINE_WIDTH, joint="curve")
        cases["random scribble"].append(image)
    return cases
