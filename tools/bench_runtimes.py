"""digits-serve on ONNX Runtime against digits-serve on Keras (TensorFlow), side by side, one run.

    make bench-runtimes    # or: python -m tools.bench_runtimes [--model M] [--requests 300]

The same model twice: as it is, with its ONNX export beside it (the server runs ONNX Runtime),
and the .keras file alone in a temporary folder (the server loads Keras). For each, --rounds
times, in alternation: a fresh digits-serve process (tools/serving.py) timed from its start to
its first answer (a 28x28 JSON drawing); its resident memory (VmRSS) idle after that answer;
then the latency of tools/bench_serve.py's payloads (28x28 JSON, 280x280 PNG) with 1 and 4
keep-alive clients, --requests each. Prints the medians over the rounds.

Needs the trained model and its .onnx file: by default the app's (data/app-model/recogniser/:
`make app-model`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from digits.app.predict import onnx_beside
from tools.bench_serve import make_payloads, measure, model_to_bench, percentile
from tools.serving import Client, serving

CLIENTS = (1, 4)


def one_round(model: Path, payloads: dict, requests: int) -> dict[str, float]:
    """A fresh server on `model`: start to first answer (s), idle RSS (MB), p50/p95 (ms)."""
    first_body = payloads["json 28x28"][0][0]
    started = time.perf_counter()
    with serving(model) as running:
        client = Client(running.host, running.port)
        try:
            client.predict(first_body, "application/json")  # Refused unless HTTP 200
        finally:
            client.close()
        cold_start = time.perf_counter() - started
        time.sleep(1)  # idle: what a replica holds between requests
        figures = {
            "start to first answer s": cold_start,
            "idle RSS MB": running.memory_mb()["VmRSS"],
        }
        for name, (bodies, content_type) in payloads.items():
            for clients in CLIENTS:
                latencies, _ = measure(
                    running.host, running.port, bodies, content_type, clients, requests
                )
                label = f"{name}, {clients} client{'s' if clients > 1 else ''}"
                figures[f"{label}: p50 ms"] = percentile(latencies, 0.5)
                figures[f"{label}: p95 ms"] = percentile(latencies, 0.95)
    return figures


def side_by_side(model: Path, rounds: int, requests: int) -> dict[str, dict[str, float]]:
    """runtime -> figure -> median over the rounds, the two runtimes alternating."""
    payloads = make_payloads()
    with tempfile.TemporaryDirectory(prefix="digits-keras-only-") as folder:
        keras_only = Path(folder) / "model.keras"
        shutil.copyfile(model, keras_only)  # no .onnx beside it: the server loads Keras
        models = {"Keras (TensorFlow)": keras_only, "ONNX Runtime": model}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in models}
        for _ in range(rounds):
            for name, path in models.items():
                runs[name].append(one_round(path, payloads, requests))
    return {
        name: {key: statistics.median(run[key] for run in found) for key in found[0]}
        for name, found in runs.items()
    }


def print_table(medians: dict[str, dict[str, float]]) -> None:
    names = list(medians)
    print(f"{'':40s}" + "".join(f"{name:>20s}" for name in names))
    for key in medians[names[0]]:
        print(f"{key:40s}" + "".join(f"{medians[name][key]:20.2f}" for name in names))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a .keras file with its .onnx beside it")
    parser.add_argument("--requests", type=int, default=300, help="per client and payload")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per runtime (median)")
    args = parser.parse_args(argv)
    for name in ("requests", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: must be 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = model_to_bench(args.model)
    if not onnx_beside(model).is_file():
        raise SystemExit(
            f"error: {onnx_beside(model)} does not exist: the export stage writes it "
            "(dvc repro, make app-model)"
        )
    print(f"model {model}; medians of {args.rounds} rounds, {args.requests} requests per client\n")
    print_table(side_by_side(model, args.rounds, args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
