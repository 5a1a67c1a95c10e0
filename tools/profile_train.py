"""Where training time goes: the pipeline's training with one thing changed at a time.

    make profile-train        # or: python -m tools.profile_train [--networks mlp] [--epochs 3]

For the notebook MLP and for tools/bench_frameworks.py's augmented CNN (AUGMENTED_CNN), trains the
pipeline's code path (digits.model, as the train stage runs it) and variants of it that each change
one thing: the thread count, op determinism, oneDNN and its kernels, XLA, the optimiser, dropout,
the augmentation layers, batch norm, the convolutions per block. Each run is a fresh process
(TensorFlow's thread and oneDNN settings are per process) on the first --fraction of the training
split, for --epochs epochs; the first epoch (graph tracing) is left out. Prints, per variant, the
wall-clock and CPU seconds of an epoch scaled to the whole split (medians over the counted
epochs), and CPU / wall: how many cores the run kept busy.
Needs data/processed (dvc repro preprocess).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from tools.bench_frameworks import NETWORKS, train_params


class Variant(NamedTuple):
    overrides: tuple[str, ...] = ()  # -S values on top of the network's
    threads: int | None = None  # None: the pipeline's rule (digits.model.tune_tensorflow_for);
    # else intra-op threads (inter-op 1), or 0 for TensorFlow's default (a thread per core, both)
    determinism: bool = True
    xla: bool = False  # Keras turns XLA off under op determinism: only without it
    environment: tuple[tuple[str, str], ...] = ()
    fused_batch_norm: bool = True  # False: Keras' own batch norm ops (digits.model)
    isa: str = "AVX2"  # oneDNN's kernels (digits.determinism pins AVX2: the same bits everywhere)


COMMON = {
    "pipeline": Variant(),
    "1 thread": Variant(threads=1),
    "2 threads": Variant(threads=2),
    "no op determinism": Variant(determinism=False),
    "oneDNN off": Variant(environment=(("TF_ENABLE_ONEDNN_OPTS", "0"),)),
    "XLA (no op determinism)": Variant(determinism=False, xla=True),
}
FRACTIONS = {"mlp": 1.0, "cnn-augmented": 0.25}  # of the training split, unless --fraction
EPOCHS = {"mlp": 8, "cnn-augmented": 3}  # unless --epochs
VARIANTS = {
    "mlp": {
        **COMMON,
        "TensorFlow's default threads": Variant(threads=0),
        "AVX-512 kernels (other bits)": Variant(isa="AVX512_CORE"),
        "SGD instead of Adam": Variant(("train.optimizer=sgd",)),
        "no dropout": Variant(("train.dropout_rate=0",)),
    },
    "cnn-augmented": {
        **COMMON,
        "no augmentation": Variant(("train.augmentation.enabled=false",)),
        "no batch norm": Variant(("train.batch_norm=false",)),
        "Keras' batch norm (not fused)": Variant(fused_batch_norm=False),
        "1 conv per block": Variant(("train.convs_per_block=1",)),
    },
}


def epoch_seconds(network: str, variant: Variant, args: argparse.Namespace) -> list[list[float]]:
    """[wall, cpu] seconds of each epoch: this process trains (call it in a fresh one)."""
    from digits.dataset import load_split
    from digits.determinism import pin_cpu_kernels

    pin_cpu_kernels()
    os.environ["ONEDNN_MAX_CPU_ISA"] = variant.isa  # TensorFlow is not imported yet
    overrides = [*NETWORKS[network][0], *variant.overrides, f"train.epochs={args.epochs}"]
    params = train_params(args.params, overrides)
    train = load_split(args.processed, "train")
    count = round(len(train[0]) * args.fraction)
    train = (train[0][:count], train[1][:count])
    validation = load_split(args.processed, "validation")

    import keras
    import tensorflow as tf

    import digits.model
    from digits.model import Network, build_model, train_model, tune_tensorflow_for

    if not variant.fused_batch_norm:
        digits.model.use_fused_batch_norm = lambda model: None

    keras.utils.set_random_seed(params.seed)
    if variant.determinism:
        tf.config.experimental.enable_op_determinism()
    network_spec = Network.from_params(params)
    if variant.threads is None:
        tune_tensorflow_for(network_spec)
    else:
        tf.config.threading.set_intra_op_parallelism_threads(variant.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1 if variant.threads else 0)
    model = build_model(network_spec)
    if variant.xla:
        model.compile = functools.partial(model.compile, jit_compile=True)

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[list[float]] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = (time.perf_counter(), time.process_time())

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            wall, cpu = self.start
            self.seconds.append([time.perf_counter() - wall, time.process_time() - cpu])

    times = EpochTimes()
    train_model(model, params, train, validation, verbose=0, callbacks=[times])
    return times.seconds


def run_variant(network: str, name: str, args: argparse.Namespace) -> list[list[float]]:
    variant = VARIANTS[network][name]
    command = [sys.executable, "-m", "tools.profile_train", "--worker", network, name]
    command += ["--processed", args.processed, "--params", args.params]
    command += ["--fraction", str(args.fraction), "--epochs", str(args.epochs)]
    environment = {**os.environ, **dict(variant.environment)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--processed", type=Path, default=Path("data/processed"))
    arguments.add_argument("--params", type=Path, default=Path("params.yaml"))
    arguments.add_argument(
        "--fraction", type=float, help="of the training split (default: all for mlp, 0.25 for cnn)"
    )
    arguments.add_argument(
        "--epochs", type=int, help="the first is not counted (default: 8 for mlp, 3 for cnn)"
    )
    arguments.add_argument("--networks", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    arguments.add_argument("--variants", nargs="+", help="only these (default: all)")
    arguments.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = arguments.parse_args()
    if args.worker:
        network, name = args.worker
        print(json.dumps(epoch_seconds(network, VARIANTS[network][name], args)))
        return
    fraction, epochs = args.fraction, args.epochs
    if not 0 < (fraction or 1) <= 1 or (epochs or 2) < 2:
        arguments.error("--fraction must be in (0, 1] and --epochs at least 2")
    for network in args.networks:
        unknown = sorted(set(args.variants or ()) - set(VARIANTS[network]))
        if unknown:
            arguments.error(
                f"{network} has no variants {unknown}; allowed: {list(VARIANTS[network])}"
            )

    for network in args.networks:
        args.fraction = fraction or FRACTIONS[network]
        args.epochs = epochs or EPOCHS[network]
        print(
            f"{network}: seconds per epoch of the whole training split "
            f"(from {args.fraction:g} of it, epochs 2-{args.epochs}, each run a fresh process)"
        )
        print(f"  {'variant':30s} {'wall':>7s} {'cpu':>7s}  cpu/wall  wall vs pipeline")
        baseline = None
        for name in args.variants or VARIANTS[network]:
            counted = run_variant(network, name, args)[1:]
            wall = statistics.median(w for w, _ in counted) / args.fraction
            cpu = statistics.median(c for _, c in counted) / args.fraction
            baseline = baseline or wall
            print(
                f"  {name:30s} {wall:7.2f} {cpu:7.2f}  {cpu / wall:8.2f}  {wall / baseline:9.2f}x"
            )


if __name__ == "__main__":
    main()
