"""Latency of the drawing page's API under concurrent clients, and the server's memory.

    make bench-serve    # or: python -m tools.bench_serve [--requests 500] [--rounds 3]
    python -m tools.bench_serve --memory    # the memory under huge images only

Needs a trained model: --model, or what digits-serve loads by default (the app's model,
data/app-model/model.keras: `make app-model` or `dvc pull train-app`; else the pipeline's MLP).

Latency: starts digits-serve (tools/serving.py) with the model on 127.0.0.1 in its own process.
Then, --rounds times, for each payload and client count: every client (a thread with its own
keep-alive connection, like a browser tab) sends --requests requests back to back after a short
warm-up. Payloads:

  json 28x28   {"pixels": ...}: an MNIST-ready image; measures HTTP + JSON + the model
  png 280x280  a canvas-like drawing (dark strokes on white, RGBA PNG as canvas.toBlob makes
               it); adds PNG decoding and the MNIST preprocessing

Prints the median over the rounds of p50 / p95 / p99 / max latency in ms and of requests per
second, and exits 1 if the p95 with 4 clients is over its target (10 ms for json 28x28, 25 ms
for png 280x280).

Memory (--memory): digits-serve in a fresh process, its resident memory before, at the peak
and after 900 clients that send the largest body allowed and leave at once (behind two of the
costliest JPEGs), then, in another process, 32 parallel POSTs of a 4096x4096 16-bit RGBA PNG.

How well the models read pictures other than MNIST is tools/served_accuracy.py.
"""

from __future__ import annotations

import argparse
import io
import statistics
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digits.app.artifacts import default_model
from digits.app.images import MAX_JPEG_SCANS, to_mnist
from digits.app.samples import canvas_png
from digits.app.server import MAX_BODY_BYTES
from digits.errors import DigitsError
from tools.serving import (
    Client,
    ServerProcess,
    abandon_posts,
    huge_png,
    largest_png,
    pixels_json,
    post_in_parallel,
    progressive_jpeg,
    require_models,
    serving,
)

TARGETS_MS = {"json 28x28": 10.0, "png 280x280": 25.0}
TARGET_CLIENTS = 4


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


def make_payloads(drawings_per_digit: int = 5) -> dict[str, tuple[list[bytes], str]]:
    """name -> (bodies, Content-Type): canvas drawings as PNG, and the same as JSON pixels."""
    rng = np.random.default_rng(0)
    drawings = [canvas_png(digit, rng) for digit in range(10) for _ in range(drawings_per_digit)]
    return {
        "json 28x28": (
            [pixels_json(to_mnist(Image.open(io.BytesIO(png)))) for png in drawings],
            "application/json",
        ),
        "png 280x280": (drawings, "image/png"),
    }


def latency_report(running: ServerProcess, payloads: dict, requests: int, rounds: int) -> list[str]:
    """Measure every payload and client count once per round; print the median of each figure
    over the rounds. Return the targets missed."""
    sizes = {name: statistics.mean(map(len, bodies)) for name, (bodies, _) in payloads.items()}
    cells = [(name, clients) for name in payloads for clients in (1, TARGET_CLIENTS)]
    figures: dict[tuple, list[list[float]]] = {cell: [] for cell in cells}
    for _ in range(rounds):
        for name, clients in cells:
            bodies, content_type = payloads[name]
            latencies, wall = measure(
                running.host, running.port, bodies, content_type, clients, requests
            )
            figures[(name, clients)].append(
                [
                    percentile(latencies, 0.5),
                    percentile(latencies, 0.95),
                    percentile(latencies, 0.99),
                    max(latencies),
                    len(latencies) / wall,
                ]
            )
    print(
        f"{'payload':12s} {'body':>8s} {'clients':>7s} {'requests':>8s} "
        f"{'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'req/s':>7s}"
    )
    missed = []
    for name, clients in cells:
        p50, p95, p99, slowest, rate = np.median(figures[(name, clients)], axis=0)
        print(
            f"{name:12s} {sizes[name]:7.0f}B {clients:7d} {clients * requests:8d} "
            f"{p50:7.2f} {p95:7.2f} {p99:7.2f} {slowest:7.2f} {rate:7.0f}"
        )
        if clients == TARGET_CLIENTS and p95 > TARGETS_MS[name]:
            missed.append(f"{name}: p95 {p95:.1f} ms > {TARGETS_MS[name]:.0f} ms")
    return missed


def memory_report(model: Path, clients: int = 32, abandoned: int = 900) -> None:
    """digits-serve in a fresh process for each burst: resident memory before, at the peak and
    after (once a drawing has been answered after the burst), from /proc/PID/status. Bursts:
    `abandoned` clients that each send the largest body allowed (a 1 MiB 4096x4096 PNG) behind
    two of the costliest JPEGs allowed, and leave at once; `clients` parallel POSTs of a
    4096x4096 16-bit RGBA PNG (137 KB)."""
    png = huge_png()
    columns = ("before MB", "peak MB", "after MB", "seconds")
    header = " ".join(f"{name:>9s}" for name in columns) + "  answers"
    print(
        f"{abandoned} clients sending a {MAX_BODY_BYTES:,}-byte 4096x4096 PNG and leaving, "
        f"behind 2 JPEGs of {MAX_JPEG_SCANS} scans; model {model}"
    )
    print(header)
    with serving(model) as running:
        before = running.memory_mb()
        started = time.perf_counter()
        costly = progressive_jpeg(4096, MAX_JPEG_SCANS - 1, refine=True)
        answers: list[tuple[int, bytes]] = []
        blockers = threading.Thread(
            target=lambda: answers.extend(post_in_parallel(running, costly, "image/jpeg", 2))
        )
        blockers.start()
        time.sleep(0.2)  # the JPEGs are being decoded
        abandon_posts(running, largest_png(), "image/png", abandoned)
        blockers.join()
        seconds = time.perf_counter() - started
        post_in_parallel(running, png, "image/png", 1)  # answered: the burst is over
        time.sleep(1)
        after = running.memory_mb()
    print_memory_row(before, after, seconds, answers)

    print(
        f"{clients} parallel POSTs of a {len(png):,}-byte 4096x4096 16-bit RGBA PNG; model {model}"
    )
    print(header)
    with serving(model) as running:
        before = running.memory_mb()
        started = time.perf_counter()
        answers = post_in_parallel(running, png, "image/png", clients)
        seconds = time.perf_counter() - started
        time.sleep(1)  # the last decodes finish and are freed
        after = running.memory_mb()
    print_memory_row(before, after, seconds, answers)


def print_memory_row(
    before: dict[str, float], after: dict[str, float], seconds: float, answers: list
) -> None:
    statuses = statistics.multimode(status for status, _ in answers)
    print(
        f"{before['VmRSS']:9.0f} {after['VmHWM']:9.0f} {after['VmRSS']:9.0f} "
        f"{seconds:9.1f}  {len(answers)} x HTTP {statuses}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="default: what digits-serve loads")
    parser.add_argument("--requests", type=int, default=500, help="per client and payload")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds (median)")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="only the server's memory (a fresh process per burst): 900 abandoned 1 MiB "
        "PNGs, then 32 parallel 4096x4096 16-bit RGBA PNGs",
    )
    return parser.parse_args(argv)


def model_to_bench(given: Path | None) -> Path:
    """--model, else what digits-serve loads by default; SystemExit naming a missing file."""
    try:
        model = given or default_model().path
    except DigitsError as error:
        raise SystemExit(f"error: {error}") from None
    require_models([model])
    return model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = model_to_bench(args.model)
    if args.memory:
        memory_report(model)
        return 0
    print(f"model {model}; keep-alive clients; medians of {args.rounds} rounds\n")
    with serving(model) as running:
        missed = latency_report(running, make_payloads(), args.requests, args.rounds)
    for line in missed:
        print(f"target missed: {line}")
    if not missed:
        print(
            f"\ntargets met with {TARGET_CLIENTS} clients: "
            + ", ".join(f"{name} p95 <= {ms:.0f} ms" for name, ms in TARGETS_MS.items())
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
