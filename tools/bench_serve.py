"""Latency of the drawing page's API under concurrent clients, and accuracy on drawn digits.

    make bench-serve        # or: python tools/bench_serve.py [--requests 500] [--rounds 3]
    python tools/bench_serve.py --accuracy-only    # the accuracy of both models, no latency

Needs the trained models: the app's (data/app-model/model.keras: `make app-model` or `dvc pull
train-app`) and the pipeline's MLP (data/model/model.keras: `make repro` or `dvc pull`).

Latency (skipped with --accuracy-only): starts each server of --servers (default: digits-serve
and, for comparison, the old standard-library server; see tests/helpers/serving.py) with --model
(default: what digits-serve loads, the app's model when it exists) on 127.0.0.1, each in its
own process. Then, --rounds times, for each payload and client count, measures the servers in
turn: every client (a thread with its own keep-alive connection, like a browser tab) sends
--requests requests back to back after a short warm-up. Payloads:

  json 28x28   {"pixels": ...}: an MNIST-ready image; measures HTTP + JSON + the model
  png 280x280  a canvas-like drawing (dark strokes on white, RGBA PNG as canvas.toBlob makes
               it); adds PNG decoding and the MNIST preprocessing

Prints the median over the rounds of p50 / p95 / p99 / max latency in ms and of requests per
second, and exits 1 if digits-serve's p95 with 4 clients is over its target (10 ms for json
28x28, 25 ms for png 280x280).

Accuracy: starts digits-serve once per model of --compare (default: the app's model and the
pipeline's MLP) and sends each the same pictures through the same API as the page, so the same
preprocessing: hand-drawn-like digits (stroke templates with random size, position, slant,
stroke width and polarity) as the canvas draws them, as paper scans and light on dark; digits
printed in every TrueType font found (the system's and matplotlib's bundled DejaVu, STIX and
Computer Modern); a different handwriting set, scikit-learn's bundled UCI digits (1,797 8x8
scans of 43 people's handwriting, `sklearn.datasets.load_digits`, upscaled to 128x128); and the
MNIST test set (--mnist, as JSON). Prints one column per model: the accuracy, the accuracy
without the MNIST preprocessing (the picture only shrunk to 28x28 and inverted) and the share
flagged "not a digit"; then that share for noise and scribbles.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digits.app.artifacts import APP_MODEL, PIPELINE_MODEL, default_model, read_model_info
from digits.app.images import to_mnist
from digits.dataset import split_path
from digits.errors import DigitsError

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from helpers.serving import SERVER_COMMANDS, ServerProcess, huge_png, post_in_parallel, serving

TARGETS_MS = {"json 28x28": 10.0, "png 280x280": 25.0}
TARGET_CLIENTS = 4
CANVAS = 280
CANVAS_LINE_WIDTH = 22  # as in digits/app/web/draw.js
FONT_FOLDERS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
UCI_SIZE = 128  # the 8x8 UCI scans are upscaled to this, as a phone photo of them would be


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


def pixels_json(image: np.ndarray) -> bytes:
    """(28, 28) float in [0, 1] -> the API's JSON body (3 decimals, as a client would send)."""
    return json.dumps({"pixels": np.round(image, 3).tolist()}).encode()


class Client:
    """One keep-alive connection to the server."""

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=30)

    def predict(self, body: bytes, content_type: str) -> dict:
        self.connection.request(
            "POST", "/api/predict", body=body, headers={"Content-Type": content_type}
        )
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {answer}")
        return answer

    def close(self) -> None:
        self.connection.close()


def measure(
    host: str, port: int, bodies: list[bytes], content_type: str, clients: int, requests: int
) -> tuple[list[float], float]:
    """Latencies in ms of clients x requests requests, and the wall time in seconds."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[BaseException] = []
    start_line = threading.Barrier(clients + 1)

    def work(number: int) -> None:
        client = Client(host, port)
        try:
            for index in range(20):  # warm-up: connection, server thread, caches
                client.predict(bodies[(number + index) % len(bodies)], content_type)
            start_line.wait()
            for index in range(requests):
                body = bodies[(number * requests + index) % len(bodies)]
                started = time.perf_counter()
                client.predict(body, content_type)
                latencies[number].append((time.perf_counter() - started) * 1000)
        except BaseException as error:
            failures.append(error)
            start_line.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"a client failed: {failures[0]!r}")
    return [value for values in latencies for value in values], wall


def percentile(values: list[float], fraction: float) -> float:
    return float(np.percentile(values, fraction * 100))


def accuracy(
    client: Client, cases: list[tuple[int, Image.Image]], send: Callable[[Image.Image], tuple]
) -> tuple[float, list[float], float]:
    """Share of `cases` read correctly, overall and per digit; share flagged "not a digit"."""
    right = np.zeros(10)
    total = np.zeros(10)
    flagged = 0
    for digit, image in cases:
        answer = client.predict(*send(image))
        right[digit] += answer["digit"] == digit
        total[digit] += 1
        flagged += answer["not_a_digit"] is not None
    per_digit = [float(r / t) if t else math.nan for r, t in zip(right, total, strict=True)]
    return float(right.sum() / total.sum()), per_digit, flagged / len(cases)


def scribble_cases(rng: np.random.Generator, count: int) -> dict[str, list[Image.Image]]:
    """What is not a digit: noise, and what a person might draw instead of one (a canvas)."""

    def canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
        image = Image.new("L", (CANVAS, CANVAS), 255)
        return image, ImageDraw.Draw(image)

    def dot(pen: ImageDraw.ImageDraw, x: float, y: float, radius: float) -> None:
        pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=31)

    cases: dict[str, list[Image.Image]] = {
        name: []
        for name in ("grey noise", "colour noise", "scattered dots", "one dot", "filled blob")
    }
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


def drawn_cases(rng: np.random.Generator, per_digit: int) -> dict[str, list]:
    """Hand-drawn-like digits in the situations the preprocessing has to handle."""
    cases: dict[str, list] = {"canvas (as the page draws)": [], "paper scan 600x800": []}
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
            cases["light ink on dark"].append(
                (
                    digit,
                    draw_digit(
                        digit, rng, height=rng.uniform(0.4, 0.8) * CANVAS, ink=235, paper=20
                    ),
                )
            )
    return cases


def font_files() -> list[Path]:
    """TrueType fonts of the system (FONT_FOLDERS) and matplotlib's bundled ones (always there),
    one per file name."""
    import matplotlib

    folders = [*map(Path, FONT_FOLDERS), Path(matplotlib.get_data_path()) / "fonts" / "ttf"]
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.ttf")):
            found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


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


def printed_cases() -> dict[str, list]:
    """Every digit in every font that has digits (DejaVu Math TeX Gyre left out: a math font)."""
    fonts = [path for path in font_files() if "Math" not in path.name and has_digits(path)]
    cases = [(digit, image) for path in fonts for digit, image in enumerate(printed_digits(path))]
    return {f"printed ({len(fonts)} fonts)": cases}


def uci_cases() -> dict[str, list]:
    """scikit-learn's bundled UCI handwritten digits (8x8, 17 grey levels, ink bright), as dark
    ink on white paper: upscaled to UCI_SIZE and given a margin of paper (the 8x8 blocks are
    cropped to the digit). Another set of people's handwriting than MNIST."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    cases = []
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


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument(
        "--model",
        type=Path,
        help="the model of the latency and memory runs (default: digits-serve's default)",
    )
    arguments.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        default=[APP_MODEL.path, PIPELINE_MODEL.path],
        metavar="MODEL",
        help="the models whose accuracy is compared, one column each (default: %(default)s)",
    )
    arguments.add_argument(
        "--accuracy-only", action="store_true", help="the accuracy only, no latency benchmark"
    )
    arguments.add_argument("--requests", type=int, default=500, help="per client and payload")
    arguments.add_argument("--per-digit", type=int, default=30, help="drawn digits per class")
    arguments.add_argument(
        "--mnist",
        type=Path,
        default=split_path("data/processed", "test"),
        help="MNIST images to measure too, if the file exists (default: %(default)s)",
    )
    arguments.add_argument(
        "--servers",
        nargs="+",
        choices=sorted(SERVER_COMMANDS),
        default=["digits-serve", "stdlib"],
        help="servers to measure side by side (default: %(default)s)",
    )
    arguments.add_argument("--rounds", type=int, default=3, help="latency rounds (median)")
    arguments.add_argument(
        "--memory",
        action="store_true",
        help="only the memory of each server (a fresh process) under 32 parallel 4096x4096 "
        "16-bit RGBA PNGs, then exit",
    )
    args = arguments.parse_args()
    needed = [] if args.memory else list(args.compare)
    model = args.model
    if not args.accuracy_only:  # the latency run's (or the memory run's) model
        try:
            model = model or default_model().path
        except DigitsError as error:
            raise SystemExit(f"error: {error}") from None
        needed.insert(0, model)
    for path in needed:
        if not path.is_file():
            how = HOW_TO_GET.get(path, "no such file")
            raise SystemExit(f"error: {path} does not exist: {how}")

    if args.memory:
        memory_report(model, args.servers)
        return 0
    missed = []
    if not args.accuracy_only:
        rng = np.random.default_rng(0)
        drawings = [canvas_png(digit, rng) for digit in range(10) for _ in range(5)]
        payloads = {
            "json 28x28": (
                [pixels_json(to_mnist(Image.open(io.BytesIO(png)))) for png in drawings],
                "application/json",
            ),
            "png 280x280": (drawings, "image/png"),
        }
        print(
            f"model {model}; keep-alive clients; servers: {', '.join(args.servers)}, all "
            f"running, measured in turn; medians of {args.rounds} rounds\n"
        )
        with contextlib.ExitStack() as stack:
            running = {name: stack.enter_context(serving(model, name)) for name in args.servers}
            missed = latency_report(running, payloads, args.requests, args.rounds)
        print()

    rng = np.random.default_rng(1)  # the same pictures with or without the latency run
    cases = {**drawn_cases(rng, args.per_digit), **printed_cases(), **uci_cases()}
    if args.mnist.is_file():
        cases.update(mnist_cases(args.mnist))
    scribbles = scribble_cases(rng, args.per_digit * 10)
    with contextlib.ExitStack() as stack:
        servers = {}
        for path in args.compare:
            info = read_model_info(path)
            label = f"{info.name}, {info.version}"
            print(f"model: {info.line()}")
            servers[label] = stack.enter_context(serving(path))
        print(
            "\naccuracy through the API, as the page sends pictures (read: with the MNIST "
            "preprocessing; naive: the picture only shrunk to 28x28; not a digit: flagged so)"
        )
        accuracy_report(servers, cases)
        print("\nthe not-a-digit signal on noise and scribbles (rule: digits/app/predict.py)")
        not_a_digit_report(servers, scribbles)

    for line in missed:
        print(f"target missed: {line}")
    if not args.accuracy_only and not missed:
        print(
            f"\ntargets met with {TARGET_CLIENTS} clients: "
            + ", ".join(f"{name} p95 <= {ms:.0f} ms" for name, ms in TARGETS_MS.items())
        )
    return 1 if missed else 0


HOW_TO_GET = {
    APP_MODEL.path: "`make app-model` or `dvc pull train-app`",
    PIPELINE_MODEL.path: "`make repro` or `dvc pull`",
}


def latency_report(
    servers: dict[str, ServerProcess], payloads: dict, requests: int, rounds: int
) -> list[str]:
    """Measure every server, payload and client count once per round, the servers in turn
    (so that they share the machine's load); print the median of each figure over the rounds.
    Return the targets digits-serve missed."""
    sizes = {name: statistics.mean(map(len, bodies)) for name, (bodies, _) in payloads.items()}
    cells = [
        (server, name, clients)
        for server in servers
        for name in payloads
        for clients in (1, TARGET_CLIENTS)
    ]
    figures: dict[tuple, list[list[float]]] = {cell: [] for cell in cells}
    for _ in range(rounds):
        for name, (bodies, content_type) in payloads.items():
            for clients in (1, TARGET_CLIENTS):
                for server, running in servers.items():
                    latencies, wall = measure(
                        running.host, running.port, bodies, content_type, clients, requests
                    )
                    figures[(server, name, clients)].append(
                        [
                            percentile(latencies, 0.5),
                            percentile(latencies, 0.95),
                            percentile(latencies, 0.99),
                            max(latencies),
                            len(latencies) / wall,
                        ]
                    )
    print(
        f"{'server':12s} {'payload':12s} {'body':>8s} {'clients':>7s} {'requests':>8s} "
        f"{'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'req/s':>7s}"
    )
    missed = []
    for server, name, clients in cells:
        p50, p95, p99, slowest, rate = np.median(figures[(server, name, clients)], axis=0)
        print(
            f"{server:12s} {name:12s} {sizes[name]:7.0f}B {clients:7d} {clients * requests:8d} "
            f"{p50:7.2f} {p95:7.2f} {p99:7.2f} {slowest:7.2f} {rate:7.0f}"
        )
        if server == "digits-serve" and clients == TARGET_CLIENTS and p95 > TARGETS_MS[name]:
            missed.append(f"{name}: p95 {p95:.1f} ms > {TARGETS_MS[name]:.0f} ms")
    return missed


def memory_report(model: Path, servers: list[str], clients: int = 32) -> None:
    """Each server in a fresh process: resident memory before, at the peak and after `clients`
    parallel POSTs of a 4096x4096 16-bit RGBA PNG (137 KB), from /proc/PID/status."""
    png = huge_png()
    print(
        f"{clients} parallel POSTs of a {len(png):,}-byte 4096x4096 16-bit RGBA PNG; model {model}"
    )
    columns = ("before MB", "peak MB", "after MB", "seconds")
    print(f"{'server':12s} " + " ".join(f"{name:>9s}" for name in columns) + "  answers")
    for server in servers:
        with serving(model, server) as running:
            before = running.memory_mb()
            started = time.perf_counter()
            answers = post_in_parallel(running, png, "image/png", clients)
            seconds = time.perf_counter() - started
            time.sleep(1)  # the last decodes finish and are freed
            after = running.memory_mb()
        statuses = statistics.multimode(status for status, _ in answers)
        print(
            f"{server:12s} {before['VmRSS']:9.0f} {after['VmHWM']:9.0f} {after['VmRSS']:9.0f} "
            f"{seconds:9.1f}  {len(answers)} x HTTP {statuses}"
        )


def as_png(image: Image.Image) -> tuple[bytes, str]:
    """What the page sends: the picture, preprocessed by the server."""
    return png_bytes(image), "image/png"


def as_naive_pixels(image: Image.Image) -> tuple[bytes, str]:
    """The picture only shrunk to 28x28 (and inverted if it is light), sent as pixels."""
    small = np.asarray(image.convert("L").resize((28, 28), Image.Resampling.BOX))
    grey = small.astype(np.float32) / 255
    return pixels_json(1 - grey if np.median(grey) > 0.5 else grey), "application/json"


def as_pixels(image: np.ndarray) -> tuple[bytes, str]:
    """An image already in MNIST's conventions, sent as it is."""
    return pixels_json(image), "application/json"


def mnist_cases(path: Path) -> dict[str, list]:
    """Real MNIST digits (already in MNIST's conventions), sent as JSON pixels."""
    with np.load(path) as split:
        images, labels = split["images"], split["labels"].argmax(axis=1)
    return {f"MNIST {path.stem} (JSON)": list(zip(labels.tolist(), images, strict=True))}


COLUMN = 28  # characters per model in the tables


def print_header(labels: list[str], columns: str) -> None:
    """The tables' head: each model's name, then its version ("NAME, md5 ..."), then `columns`
    under each."""
    for part in (0, 1):
        print(f"  {'':36s}" + "".join(f"{label.split(', ')[part]:>{COLUMN}s}" for label in labels))
    print(f"  {'pictures':28s} {'images':>7s}" + columns * len(labels))


def accuracy_report(servers: dict[str, ServerProcess], cases_by_kind: dict[str, list]) -> None:
    """Per kind of picture, one column per server (model): accuracy with the server's
    preprocessing and with a naive resize, and the share flagged "not a digit"; then the
    accuracy per digit."""
    print_header(list(servers), f"{'read':>9s}{'naive':>7s}{'not a digit':>12s}")
    per_digit: dict[tuple[str, str], list[float]] = {}
    for name, cases in cases_by_kind.items():
        pictures = not isinstance(cases[0][1], np.ndarray)
        cells = []
        for label, running in servers.items():
            # A connection per row: one left idle while the other model works would be closed.
            client = Client(running.host, running.port)
            try:
                score, digits, flagged = accuracy(client, cases, as_png if pictures else as_pixels)
                naive = accuracy(client, cases, as_naive_pixels)[0] if pictures else None
            finally:
                client.close()
            naive_cell = "-" if naive is None else f"{naive:.1%}"
            cells.append(f"{score:9.1%}{naive_cell:>7s}{flagged:12.1%}")
            per_digit[(name, label)] = digits
        print(f"  {name:28s} {len(cases):7d}" + "".join(cells))
    print("\n  per digit (read)")
    for (name, label), digits in per_digit.items():
        shares = " ".join(f"{digit}:{share:4.0%}" for digit, share in enumerate(digits))
        print(f"  {name:28s} {label:>{COLUMN}s}  {shares}")


def not_a_digit_report(servers: dict[str, ServerProcess], cases_by_kind: dict[str, list]) -> None:
    """Per kind of non-digit and server: the share flagged "not a digit" (a blank image is
    refused, 400, and counted apart)."""
    print_header(list(servers), f"{'not a digit':>14s}{'blank':>14s}")
    for name, images in cases_by_kind.items():
        cells = []
        for running in servers.values():
            flagged = refused = 0
            client = Client(running.host, running.port)
            try:
                for image in images:
                    try:
                        answer = client.predict(png_bytes(image), "image/png")
                    except RuntimeError:
                        refused += 1
                        continue
                    flagged += answer["not_a_digit"] is not None
            finally:
                client.close()
            cells.append(f"{flagged / len(images):14.1%}{refused / len(images):14.1%}")
        print(f"  {name:28s} {len(images):7d}" + "".join(cells))


if __name__ == "__main__":
    raise SystemExit(main())
