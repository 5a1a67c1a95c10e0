"""The documented sweep: queue it as DVC experiments, then tabulate `dvc exp show` in the README.

    python tools/experiments.py queue     # dvc exp run --queue -n <name> -S ... for each row
    dvc queue start --jobs 1              # run them (one at a time: timings stay honest)
    dvc queue status                      # until every experiment is Success
    python tools/experiments.py table     # rewrite the README table from dvc exp show --json
    python tools/experiments.py show      # compare them in a terminal: SHOW, 120 columns wide

The table's numbers come only from `dvc exp show --json` (params and metrics) and from the
train stage's own log line "trained N epochs in S s", read back with `dvc queue logs <name>`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- experiments:start -->", "<!-- experiments:end -->"

CNN = [
    "train.model=cnn",
    "train.conv_filters=[32,64]",
    "train.hidden_units=[128]",
    "train.dropout_rate=0.5",
    "train.schedule=cosine",
]
AUGMENTED_CNN = [
    "train.model=cnn",
    "train.conv_filters=[32,64]",
    "train.convs_per_block=2",
    "train.hidden_units=[256]",
    "train.dropout_rate=0.25",
    "train.schedule=cosine",
    "train.learning_rate=0.002",
    "train.augmentation.enabled=true",
]
# name -> (what it is, the -S values). The baseline forces a run so that it gets a timing too.
EXPERIMENTS: dict[str, tuple[str, list[str]]] = {
    "notebook-mlp": ("the notebook's MLP (the defaults)", []),
    "tuned-mlp": (
        "wider MLP, cosine schedule",
        [
            "train.hidden_units=[512,256]",
            "train.dropout_rate=0.3",
            "train.schedule=cosine",
            "train.epochs=30",
        ],
    ),
    "cnn": ("CNN", [*CNN, "train.epochs=15"]),
    "cnn-augmented": (
        "deeper CNN with shifts, rotations and zoom",
        [*AUGMENTED_CNN, "train.epochs=18"],
    ),
    "cnn-augmented-14": ("the same, 14 epochs", [*AUGMENTED_CNN, "train.epochs=14"]),
    "fashion-mlp": ("Fashion-MNIST, the notebook's MLP", ["download.dataset=fashion-mnist"]),
    "fashion-cnn": (
        "Fashion-MNIST, CNN",
        ["download.dataset=fashion-mnist", *CNN, "train.epochs=15"],
    ),
}


# The sweep side by side in at most 120 columns: the experiment, its headline scores and size,
# and the two params that tell the rows apart besides their names. (`dvc exp show` alone has a
# column for every metric, param and dependency.)
SHOW = [
    "dvc",
    "exp",
    "show",
    "--drop",
    ".*",
    "--keep",
    r"Experiment|test\.(accuracy|macro\.f1)|parameters|train\.(model|epochs)",
]


def command(name: str) -> list[str]:
    settings = EXPERIMENTS[name][1]
    return ["dvc", "exp", "run", "-n", name, *(["-f"] if not settings else [])] + [
        part for setting in settings for part in ("-S", setting)
    ]


def queue() -> None:
    for name in EXPERIMENTS:
        subprocess.run([*command(name), "--queue"], cwd=ROOT, check=True)


TRAINING_LINE = re.compile(r"trained (\d+) epochs in ([\d.]+) s \(([\d,]+) parameters\)")


def parse_training_log(logs: str) -> tuple[int, float, int]:
    """(epochs, seconds, parameters) from the train stage's last "trained ..." line."""
    found = TRAINING_LINE.findall(logs)
    if not found:
        raise ValueError("no 'trained N epochs in S s (P parameters)' line")
    epochs, seconds, parameters = found[-1]
    return int(epochs), float(seconds), int(parameters.replace(",", ""))


def training_log(name: str) -> tuple[int, float, int]:
    """(epochs, seconds, parameters) from `dvc queue logs <name>`."""
    logs = subprocess.run(
        ["dvc", "queue", "logs", name], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    try:
        return parse_training_log(logs)
    except ValueError as error:
        raise SystemExit(f"`dvc queue logs {name}`: {error}") from None


def experiments_by_name() -> dict[str, dict]:
    shown = json.loads(
        subprocess.run(
            ["dvc", "exp", "show", "--json", "--all-commits"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            for revision in experiment.get("revs", []):
                data = revision.get("data") or {}
                if revision.get("name") in EXPERIMENTS and data.get("metrics"):
                    found[revision["name"]] = data
    return found


def table_row(name: str, data: dict, log: tuple[int, float, int]) -> str:
    """One README row from `dvc exp show --json` data and the run's (epochs, seconds, parameters).

    The log must be this run's: a queue task left over from an earlier run of the same name
    would give another run's time, so its epochs and parameter count must match the metrics.
    """
    test = data["metrics"]["metrics/evaluate.json"]["data"]["test"]
    train = data["metrics"]["metrics/train.json"]["data"]
    epochs, seconds, parameters = log
    if (epochs, parameters) != (train["epochs"], train["parameters"]):
        raise SystemExit(
            f"`dvc queue logs {name}` is another run's ({epochs} epochs, {parameters:,} "
            f"parameters; the experiment has {train['epochs']} and {train['parameters']:,}): "
            "remove the stale task with `dvc queue remove <task>`"
        )
    description = EXPERIMENTS[name][0]
    reproduce = shlex.join(part for part in command(name) if part not in ("-n", name))
    return (
        f"| {name}: {description} | {test['accuracy']:.4f} | {test['macro']['f1']:.4f} "
        f"| {parameters:,} | {seconds:.0f} s ({epochs} epochs) | `{reproduce}` |"
    )


def table() -> str:
    found = experiments_by_name()
    missing = [name for name in EXPERIMENTS if name not in found]
    if missing:
        raise SystemExit(f"not in `dvc exp show` (queue and run them first): {missing}")
    header = [
        "| experiment | test accuracy | macro F1 | parameters | training time | reproduce with |",
        "|---|---|---|---|---|---|",
    ]
    rows = [table_row(name, found[name], training_log(name)) for name in EXPERIMENTS]
    return "\n".join(header + rows)


def write_table() -> None:
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(START)
    _, after = rest.split(END)
    README.write_text(f"{before}{START}\n{table()}\n{END}{after}", encoding="utf-8")
    print(f"rewrote the experiments table in {README}")


if __name__ == "__main__":
    actions = {
        "queue": queue,
        "table": write_table,
        "show": lambda: subprocess.run([*SHOW, "--no-pager"], cwd=ROOT, check=True),
    }
    if len(sys.argv) != 2 or sys.argv[1] not in actions:
        raise SystemExit(f"usage: {sys.argv[0]} {{{','.join(actions)}}}")
    actions[sys.argv[1]]()
