"""Stage train: data/processed -> model (.keras), history CSV, training curves PNG, metrics JSON,
and DVCLive's per-epoch log (written while training runs)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from digits.dataset import load_split
from digits.determinism import pin_cpu_kernels, seed_everything
from digits.files import atomic_open, atomic_path, save_figure, write_json
from digits.metrics import training_summary
from digits.params import TrainParams, load_section
from digits.plots import training_curves_figure
from stages._cli import argument_parser, run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("processed_dir", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="output .keras file")
    parser.add_argument("--history", type=Path, required=True, help="output per-epoch CSV")
    parser.add_argument("--curves", type=Path, required=True, help="output training curves PNG")
    parser.add_argument("--metrics", type=Path, required=True, help="output metrics JSON")
    parser.add_argument(
        "--live", type=Path, required=True, help="DVCLive's folder, rewritten after every epoch"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_section(args.params, "train", TrainParams)  # bad params stop us before TF loads
    train = load_split(args.processed_dir, "train")
    validation = load_split(args.processed_dir, "validation")

    pin_cpu_kernels()
    seed_everything(params.seed)
    from digits.live import live_metrics_callback
    from digits.model import Network, build_model, save_model, train_model, tune_tensorflow_for

    network = Network.from_params(params)
    tune_tensorflow_for(network)
    model = build_model(network)
    started = time.perf_counter()
    # Keras' progress bar on a terminal, one line per epoch in logs.
    history = train_model(
        model,
        params,
        train,
        validation,
        verbose=1 if sys.stdout.isatty() else 2,
        callbacks=[live_metrics_callback(args.live)],  # progress as it goes, not all at once
    )
    seconds = time.perf_counter() - started  # printed only: no clock time goes into outputs
    print(f"trained {len(history)} epochs in {seconds:.1f} s ({model.count_params():,} parameters)")

    # All four outputs or none: each goes to a temp file, and all are renamed into place only
    # when every one is written, so a failure keeps the previous run's set whole. (DVCLive's
    # folder is the exception, a progress log: DVC caches it, `dvc checkout` restores it.)
    with (
        atomic_path(args.model) as model_file,
        atomic_open(args.history) as history_file,
        atomic_path(args.curves) as curves_file,
        atomic_path(args.metrics) as metrics_file,
    ):
        save_model(model, model_file)
        history.to_csv(history_file, index=False, float_format="%.6f", lineterminator="\n")
        save_figure(training_curves_figure(history), curves_file)
        write_json(metrics_file, training_summary(history, model.count_params()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
