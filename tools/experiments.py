"""The documented sweep: queue it as DVC experiments, then tabulate `dvc exp show` in the docs.

    python -m tools.experiments queue     # dvc exp run --queue -n <name> -S ... for each row
    dvc queue start --jobs 1              # run them (one at a time: timings stay honest)
    dvc queue status                      # until every experiment is Success
    python -m tools.experiments table     # rewrite the docs' table from dvc exp show --json
    python -m tools.experiments table NAME...  # only these rows (the others stay as they are)
    python -m tools.experiments show      # compare them in a terminal: SHOW, 120 columns wide

The same sweep as parallel CI jobs (.github/workflows/sweep.yml), one job per experiment:

    python -m tools.experiments matrix [NAMES]          # the jobs: {"include": [{name, runner}]}
    python -m tools.experiments run NAME --timing FILE  # dvc exp run -n NAME ...; its timing
    python -m tools.experiments table --timings FOLDER  # the docs' table from those timings

The table's numbers come only from `dvc exp show --json` (params and metrics) and from the
train stage's own log line "trained N epochs in S s": read back with `dvc queue logs <name>`
after a local queue, or from each CI job's timing file (never from a tracked output). `table`
writes them as a Markdown table, in the docs and in the README's results (the same table in
both), and as docs/experiments.json, one record per row
(tools/experiment_records.py), which the app-model pipeline's card-app stage reads for the app's
training time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tools.experiment_records import (
    HAND,
    TABLE_RECORDS,
    Timing,
    read_records,
    row_record,
    write_atomically,
)
from tools.sweep import EXPERIMENTS, SHOW, command

ROOT = Path(__file__).resolve().parents[1]
TABLE_PAGE = ROOT / "docs" / "experiments.md"  # the table lives between its markers,
README_PAGE = ROOT / "README.md"  # and the same table in the README's results
START, END = "<!-- experiments:start -->", "<!-- experiments:end -->"
# What the table says for timings read back with `dvc queue logs`: this machine's queue.
LOCAL_RUNNER = f"local queue, {os.cpu_count()} cores"


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


def queue_timing(name: str) -> Timing:
    """The timing of `name` from `dvc queue logs <name>`: a run of this machine's queue."""
    logs = subprocess.run(
        ["dvc", "queue", "logs", name], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    try:
        return Timing(*parse_training_log(logs), runner=LOCAL_RUNNER)
    except ValueError as error:
        raise SystemExit(f"`dvc queue logs {name}`: {error}") from None


def read_timings(folder: Path) -> dict[str, Timing]:
    """name -> Timing from the JSON files `run` wrote (one per CI job)."""
    timings = {}
    for path in sorted(folder.glob("*.json")):
        fields = json.loads(path.read_text(encoding="utf-8"))
        name = fields.pop("name")
        if name not in EXPERIMENTS:
            raise SystemExit(f"{path}: {name!r} is not an experiment of {list(EXPERIMENTS)}")
        timings[name] = Timing(**fields)
    return timings


def run(name: str, runner: str, timing_path: Path, extra_settings: Sequence[str] = ()) -> None:
    """`dvc exp run` for one row (its output passed through), then its Timing to `timing_path`.

    The timing file is for the CI job's artifact: the experiment's own outputs hold no times.
    """
    process = subprocess.Popen(
        command(name, extra_settings),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if process.wait() != 0:
        raise SystemExit(
            f"`{shlex.join(command(name, extra_settings))}` exited {process.returncode}"
        )
    try:
        timing = Timing(*parse_training_log("".join(lines)), runner=runner)
    except ValueError as error:
        raise SystemExit(f"`dvc exp run -n {name}`: {error}") from None
    timing_path.parent.mkdir(parents=True, exist_ok=True)
    partial = timing_path.with_name(f".{timing_path.name}.tmp")
    partial.write_text(json.dumps({"name": name, **asdict(timing)}, indent=2) + "\n")
    partial.replace(timing_path)
    print(f"{name}: trained {timing.epochs} epochs in {timing.seconds} s on {runner}")


def matrix(selection: str, runners: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """The CI jobs for the comma-separated `selection` (empty: every experiment), each with its
    runner label: the row's own, unless `runners` names another for it."""
    names = [name.strip() for name in selection.split(",") if name.strip()] or list(EXPERIMENTS)
    unknown = sorted({*names, *runners} - set(EXPERIMENTS))
    if unknown:
        raise SystemExit(f"not experiments of tools/sweep.py: {unknown}")
    return {
        "include": [
            {"name": name, "runner": runners.get(name, EXPERIMENTS[name].runner)} for name in names
        ]
    }


def exp_show() -> list[dict]:
    return json.loads(
        subprocess.run(
            ["dvc", "exp", "show", "--json", "--all-commits"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def experiments_by_name(shown: list[dict]) -> dict[str, dict]:
    """name -> data of the newest run of each experiment of the sweep in `dvc exp show --json
    --all-commits` output, whatever its commit (an older run of a name is an older recipe's)."""
    runs = [
        revision
        for baseline in shown
        for experiment in baseline.get("experiments") or []
        for revision in experiment.get("revs", [])
        if revision.get("name") in EXPERIMENTS and (revision.get("data") or {}).get("metrics")
    ]
    runs.sort(key=lambda revision: revision["data"].get("timestamp", ""))  # the newest last
    return {revision["name"]: revision["data"] for revision in runs}


NOT_RECORDED = "\u2013"  # an en dash: a row timed before the validation column existed


def format_row(name: str, record: Mapping[str, Any]) -> str:
    """A record as a line of the Markdown table (NOT_RECORDED for a missing validation score)."""
    validation = record.get("validation_accuracy")
    return (
        f"| {name}: {record['description']} "
        f"| {NOT_RECORDED if validation is None else f'{validation:.4f}'} "
        f"| {record['test_accuracy']:.4f} | {record['macro_f1']:.4f} | {record['parameters']:,} "
        f"| {record['seconds']:.0f} s ({record['epochs']} epochs) | {record['runner']} "
        f"| {record['chosen_by']} | `{record['reproduce']}` |"
    )


def table_row(name: str, data: dict, timing: Timing) -> str:
    """One table row from `dvc exp show --json` data and the run's Timing."""
    return format_row(name, row_record(name, data, timing))


HEADER = [
    "| experiment | validation accuracy | test accuracy | macro F1 | parameters | training time "
    "| runner | chosen by | reproduce with |",
    "|---|---|---|---|---|---|---|---|---|",
]


def table_records(shown: list[dict], timings: Mapping[str, Timing]) -> dict[str, dict]:
    """name -> record for each timed experiment, in the sweep's order."""
    found = experiments_by_name(shown)
    missing = [name for name in timings if name not in found]
    if missing:
        raise SystemExit(f"not in `dvc exp show` (run, or pull, them first): {missing}")
    ordered = [name for name in EXPERIMENTS if name in timings]
    return {name: row_record(name, found[name], timings[name]) for name in ordered}


def readme_rows(text: str) -> dict[str, str]:
    """name -> row of the table as it is."""
    _, rest = text.split(START)
    inside, _ = rest.split(END)
    return {line[2:].split(":", 1)[0]: line for line in inside.strip().splitlines()[len(HEADER) :]}


def write_table(timings: Mapping[str, Timing]) -> None:
    """The table and its records with a new row for each timed experiment; the other rows as
    they were."""
    write_rows(table_records(exp_show(), timings))


def write_rows(new_records: Mapping[str, Mapping[str, Any]]) -> None:
    """The table and its records with `new_records` in place of those of the same names: the
    sweep's rows in its order, then the tuner's best trials in the order they were added. Rows
    written by hand for experiments no longer in the sweep are dropped."""
    records = {**read_records(TABLE_RECORDS), **new_records}
    missing = [name for name in EXPERIMENTS if name not in records]
    if missing:
        raise SystemExit(f"no row and no timing for {missing}")
    tuned = [name for name, row in records.items() if row["chosen_by"] != HAND]
    records = {name: records[name] for name in [*EXPERIMENTS, *tuned]}
    table = "\n".join([*HEADER, *(format_row(name, records[name]) for name in records)])
    pages = {page: page.read_text(encoding="utf-8") for page in (TABLE_PAGE, README_PAGE)}
    write_atomically(TABLE_RECORDS, json.dumps({"experiments": records}, indent=2) + "\n")
    for page, text in pages.items():
        before, rest = text.split(START)
        _, after = rest.split(END)
        write_atomically(page, f"{before}{START}\n{table}\n{END}{after}")
    print(f"rewrote the experiments table in {TABLE_PAGE}, {README_PAGE} and {TABLE_RECORDS}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("queue", help="queue every experiment in this machine's DVC queue")
    actions.add_parser("show", help="compare the experiments in a terminal, 120 columns wide")
    table = actions.add_parser("table", help="rewrite the table in docs/experiments.md")
    table.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="re-time only these rows from `dvc queue logs` (default: every row)",
    )
    table.add_argument(
        "--timings",
        type=Path,
        help="a folder of `run` timing files (default: `dvc queue logs` of every experiment)",
    )
    table.add_argument(
        "--print", action="store_true", help="print the timed rows instead of rewriting the table"
    )
    jobs = actions.add_parser("matrix", help="print the GitHub Actions matrix (JSON)")
    jobs.add_argument("names", nargs="?", default="", help="comma-separated; default: all")
    one = actions.add_parser("run", help="dvc exp run one experiment, write its timing")
    one.add_argument("name", choices=list(EXPERIMENTS))
    one.add_argument("--timing", type=Path, required=True, help="the timing file to write")
    one.add_argument("--runner", default=LOCAL_RUNNER, help="where it runs (the table's column)")
    one.add_argument(
        "-S", dest="extra_settings", action="append", default=[], help="another -S value"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.action == "queue":
        queue()
    elif args.action == "show":
        subprocess.run([*SHOW, "--no-pager"], cwd=ROOT, check=True)
    elif args.action == "matrix":
        runners = json.loads(os.environ.get("SWEEP_RUNNERS") or "{}")
        print(json.dumps(matrix(args.names, runners)))
    elif args.action == "run":
        run(args.name, args.runner, args.timing, args.extra_settings)
    else:
        unknown = sorted(set(args.names) - set(EXPERIMENTS))
        if unknown:
            raise SystemExit(f"not experiments of tools/sweep.py: {unknown}")
        if args.timings is not None:
            timings = read_timings(args.timings)
        else:
            timings = {name: queue_timing(name) for name in args.names or EXPERIMENTS}
        if args.print:
            records = table_records(exp_show(), timings)
            print("\n".join([*HEADER, *(format_row(n, r) for n, r in records.items())]))
        else:
            write_table(timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
