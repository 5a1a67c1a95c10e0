"""Time the pipeline's training against a plain `model.fit`, in one process, on the real data.

    make bench                      # or: python -m tools.bench_train --repeats 3
Needs data/processed (dvc repro preprocess). Both runs use params.yaml's train section and
the pipeline's determinism settings; the plain run is `model.compile(...)` with Keras defaults
and `model.fit(x, y, epochs, batch_size, validation_data)`. Prints medians, their ratio and
samples per second, and whether both runs ended with the same weights.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import time
from pathlib import Path

from digits.dataset import load_split
from digits.determinism import pin_cpu_kernels, seed_everything
from digits.params import TrainParams, load_section


def weights_digest(model) -> str:
    return hashlib.sha256(b"".join(w.numpy().tobytes() for w in model.weights)).hexdigest()[:16]


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--processed", type=Path, default=Path("data/processed"))
    arguments.add_argument("--params", default="params.yaml")
    arguments.add_argument("--repeats", type=int, default=1)
    args = arguments.parse_args()
    params = load_section(args.params, "train", TrainParams)
    train = load_split(args.processed, "train")
    validation = load_split(args.processed, "validation")

    pin_cpu_kernels()
    from digits.model import Network, build_model, compile_model, train_model

    def plain() -> str:
        seed_everything(params.seed)
        model = build_model(Network.from_params(params))
        steps_per_epoch = math.ceil(len(train[0]) / params.batch_size)
        compile_model(model, params, steps_per_epoch)  # Keras default: one step per call
        model.fit(
            *train,
            epochs=params.epochs,
            batch_size=params.batch_size,
            validation_data=validation,
            verbose=0,
        )
        return weights_digest(model)

    def pipeline() -> str:
        seed_everything(params.seed)
        model = build_model(Network.from_params(params))
        train_model(model, params, train, validation, verbose=0)
        return weights_digest(model)

    times: dict[str, list[float]] = {"plain model.fit": [], "pipeline train_model": []}
    digests: dict[str, set[str]] = {name: set() for name in times}
    for _ in range(args.repeats):
        for name, run in zip(times, (plain, pipeline), strict=True):
            start = time.perf_counter()
            digests[name].add(run())
            times[name].append(time.perf_counter() - start)

    samples = params.epochs * len(train[0])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(
            f"{name:22s} median {median:6.2f} s  ({samples / median:,.0f} samples/s; runs: {runs})"
        )
    ratio = statistics.median(times["pipeline train_model"]) / statistics.median(
        times["plain model.fit"]
    )
    print(f"ratio pipeline/plain   {ratio:.2f}")
    all_digests = sorted(set.union(*digests.values()))
    verdict = "yes" if len(all_digests) == 1 else "NO"
    print(f"same final weights     {verdict} ({', '.join(all_digests)})")


if __name__ == "__main__":
    main()
