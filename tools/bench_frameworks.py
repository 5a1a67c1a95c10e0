"""Training time of the pipeline's Keras code against plain PyTorch, alternating, in one run.

    make bench-torch                  # or: python -m tools.bench_frameworks --repeats 3

For each network, each repeat trains once with the pipeline's own code path (digits.model's
build_model + train_model, with the train stage's determinism and thread settings, in a fresh
process as under dvc) and once in PyTorch (tools/bench_torch.py, in build/torch-venv: PyTorch is
not a dependency of the pipeline), one after the other. Networks: the notebook MLP for the full
20 epochs, and the augmented CNN (AUGMENTED_CNN, below) for 2 epochs, of which the
second is reported (the first also holds Keras' graph tracing). Times are of training and
validation only: no imports, no data loading. Prints every run, the medians, the ratio
Keras / PyTorch and samples per second.
Needs data/processed (dvc repro preprocess).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dvc.utils.hydra import apply_overrides

from digits.dataset import load_split
from digits.determinism import pin_cpu_kernels, seed_everything
from digits.params import TrainParams, load_section

TORCH_PYTHON = Path("build/torch-venv/bin/python")
# The augmented CNN these benchmarks and tools/profile_train.py train.
AUGMENTED_CNN = [
    "train.architecture=cnn",
    "train.conv_filters=[32,64]",
    "train.convs_per_block=2",
    "train.hidden_units=[256]",
    "train.dropout_rate=0.25",
    "train.schedule=cosine",
    "train.learning_rate=0.002",
    "train.augmentation.enabled=true",
    "train.batch_norm=true",
]
# network -> (overrides of params.yaml's train section, epochs, which epochs count)
NETWORKS = {
    "mlp": ([], 20, slice(None)),
    "cnn-augmented": ([*AUGMENTED_CNN, "train.epochs=2"], 2, slice(1, None)),
}


def train_params(params_file: Path, overrides: list[str]) -> TrainParams:
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "params.yaml"
        shutil.copy(params_file, copy)
        apply_overrides(copy, overrides)
        return load_section(copy, "train", TrainParams)


def keras_epoch_seconds(params: TrainParams, processed: Path) -> list[float]:
    """Seconds of each epoch (training and validation) with the pipeline's code path, in this
    process: call it in a fresh one (`--keras-worker`), as dvc runs the train stage."""
    import keras

    from digits.model import Network, build_model, train_model, tune_tensorflow_for

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    train = load_split(processed, "train")
    validation = load_split(processed, "validation")
    seed_everything(params.seed)
    network = Network.from_params(params)
    tune_tensorflow_for(network)
    model = build_model(network)
    times = EpochTimes()
    train_model(model, params, train, validation, verbose=0, callbacks=[times])
    return times.seconds


def keras_seconds(network: str, args: argparse.Namespace) -> list[float]:
    command = [sys.executable, "-m", "tools.bench_frameworks", "--keras-worker", network]
    command += ["--processed", args.processed, "--params", args.params]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])["epoch_seconds"]


def torch_seconds(network: str, epochs: int, processed: Path) -> list[float]:
    command = [TORCH_PYTHON, "-m", "tools.bench_torch", "--network", network]
    command += ["--epochs", str(epochs), "--processed", processed]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["epoch_seconds"]


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--processed", type=Path, default=Path("data/processed"))
    arguments.add_argument("--params", type=Path, default=Path("params.yaml"))
    arguments.add_argument("--repeats", type=int, default=3)
    arguments.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    arguments.add_argument("--keras-worker", choices=list(NETWORKS), help=argparse.SUPPRESS)
    args = arguments.parse_args()
    if args.keras_worker:  # one Keras run in this fresh process; its epoch times as JSON
        pin_cpu_kernels()  # before anything imports TensorFlow
        params = train_params(args.params, NETWORKS[args.keras_worker][0])
        print(json.dumps({"epoch_seconds": keras_epoch_seconds(params, args.processed)}))
        return
    if not TORCH_PYTHON.is_file():
        raise SystemExit(f"{TORCH_PYTHON} is missing: run `make bench-torch`")
    samples_per_epoch = len(load_split(args.processed, "train")[0])
    for network in args.networks:
        _, epochs, counted = NETWORKS[network]
        times: dict[str, list[float]] = {"keras (pipeline)": [], "pytorch": []}
        for _ in range(args.repeats):
            times["keras (pipeline)"].append(sum(keras_seconds(network, args)[counted]))
            times["pytorch"].append(sum(torch_seconds(network, epochs, args.processed)[counted]))
        counted_epochs = len(range(epochs)[counted])
        samples = counted_epochs * samples_per_epoch
        what = "20 epochs" if counted_epochs == epochs else f"epoch {epochs} of {epochs}"
        print(f"{network} ({what}, {args.repeats} runs each, alternating):")
        for name, seconds in times.items():
            median = statistics.median(seconds)
            runs = ", ".join(f"{s:.1f}" for s in seconds)
            print(
                f"  {name:17s} median {median:7.2f} s  {samples / median:9,.0f} samples/s  "
                f"(runs: {runs})"
            )
        ratio = statistics.median(times["keras (pipeline)"]) / statistics.median(times["pytorch"])
        print(f"  ratio keras / pytorch {ratio:.2f}")


if __name__ == "__main__":
    main()
