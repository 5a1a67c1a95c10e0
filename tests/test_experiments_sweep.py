"""tools/sweep.py and tools/experiments.py: every experiment of the documented sweep has valid
params and never retrains the app's model, the docs' table reads the train stage's own log line
(from the local queue or a CI job's timing file) and refuses one from another run, and the CI
matrix comes from the same list."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import apply_overrides
from helpers.pipeline import TINY_TRAIN, train_argv, write_params

from digits.params import SECTIONS, load_section
from stages import train
from stages._cli import run
from tools import experiment_records, experiments, sweep

PROJECT = Path(__file__).parents[1]


@pytest.mark.parametrize("name", list(sweep.EXPERIMENTS))
def test_each_experiment_has_valid_params(name: str, tmp_path: Path) -> None:
    """The -S overrides, applied the way `dvc exp run -S` applies them, give valid params:
    a typo would otherwise surface only when the queue reaches that experiment."""
    params = tmp_path / "params.yaml"
    shutil.copy(PROJECT / "params.yaml", params)
    overrides = sweep.EXPERIMENTS[name].settings
    apply_overrides(params, overrides)

    sections = {key: load_section(params, key, model) for key, model in SECTIONS.items()}
    for override in overrides:  # each override took effect
        key, value = override.split("=", 1)
        section, *path = key.split(".")
        found = sections[section].model_dump(by_alias=True)
        for part in path:
            found = found[part]
        assert found == yaml.safe_load(value), override


def test_command_reproduces_the_named_experiment() -> None:
    assert sweep.command("cnn") == [
        "dvc", "exp", "run", "-n", "cnn", "evaluate", "explore",
        *[part for setting in sweep.EXPERIMENTS["cnn"].settings for part in ("-S", setting)],
    ]  # fmt: skip
    assert sweep.command("notebook-mlp") == [
        "dvc", "exp", "run", "-n", "notebook-mlp", "-f", "--downstream", "train"
    ]  # fmt: skip
    assert sweep.command("cnn", ["train.epochs=1"])[-2:] == ["-S", "train.epochs=1"]


def upstream(stages: dict, names: set[str]) -> set[str]:
    """`names` and every stage whose outputs they read, directly or not (dvc.yaml's graph)."""
    made_by = {out: name for name, spec in stages.items() for out in map(out_path, spec["outs"])}
    found, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(made_by[dep] for dep in stages[name]["deps"] if dep in made_by)
    return found


def out_path(out: str | dict) -> str:
    return out if isinstance(out, str) else next(iter(out))


@pytest.mark.parametrize("name", list(sweep.EXPERIMENTS))
def test_no_experiment_retrains_the_app_model(name: str) -> None:
    """A row reproduces the pipeline's stages it targets and what they need, never train-app or
    evaluate-app (the Fashion-MNIST rows change data/processed, which train-app reads)."""
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    app = yaml.safe_load((PROJECT / "app-model/dvc.yaml").read_text(encoding="utf-8"))["stages"]
    stages |= app  # the graph across both pipelines, as DVC sees it
    run = sweep.command(name)
    options = run[run.index(name) + 1 :]
    targets = options[: options.index("-S")] if "-S" in options else options
    if targets[:2] == ["-f", "--downstream"]:  # the baseline: train and what reads its outputs
        (start,) = targets[2:]
        reproduced = {start} | {
            stage for stage in stages if start in upstream(stages, {stage}) and stage != start
        }
    else:
        assert targets, f"{name}: `dvc exp run` without targets reproduces every stage"
        reproduced = upstream(stages, set(targets))
    assert "train" in reproduced
    assert "evaluate" in reproduced
    assert not reproduced & {"train-app", "evaluate-app"}, (name, sorted(reproduced))


def test_table_row_reads_the_train_stage_log(
    processed_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        run(train.main, train_argv(processed_dir, out, write_params(tmp_path, train=TINY_TRAIN)))
        == 0
    )
    log = experiments.parse_training_log(capsys.readouterr().out)
    train_metrics = json.loads((out / "metrics" / "train.json").read_text(encoding="utf-8"))
    data = {
        "params": {"params.yaml": {"data": {"train": TINY_TRAIN}}},
        "metrics": {
            "metrics/train.json": {"data": train_metrics},
            "metrics/evaluate.json": {"data": {"test": {"accuracy": 0.5, "macro": {"f1": 0.25}}}},
        },
    }

    epochs, seconds, parameters = log
    assert (epochs, parameters) == (train_metrics["epochs"], train_metrics["parameters"])
    assert seconds > 0
    timing = experiment_records.Timing(*log, runner="local queue, 2 cores")
    row = experiments.table_row("notebook-mlp", data, timing)
    validation = f"{train_metrics['best']['val_accuracy']:.4f}"
    assert row.startswith(
        f"| notebook-mlp: the notebook's MLP (the defaults) | {validation} | 0.5000 | 0.2500 |"
    )
    assert row.endswith(
        f"| {parameters:,} | {seconds:.0f} s ({epochs} epochs) | local queue, 2 cores "
        "| written by hand | `dvc exp run -f --downstream train` |"
    )
    assert row.count("|") == experiments.HEADER[0].count("|")

    stale = experiment_records.Timing(epochs + 1, seconds, parameters, "ubuntu-24.04")
    with pytest.raises(SystemExit, match=r"another run's .* `dvc queue remove"):
        experiments.table_row("notebook-mlp", data, stale)


def test_a_log_without_the_training_line_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'trained N epochs"):
        experiments.parse_training_log("Epoch 1/20\nKilled\n")
    assert experiments.parse_training_log(
        "trained 3 epochs in 9.0 s (10 parameters)\n"
        "trained 18 epochs in 669.0 s (642,018 parameters)\n"
    ) == (18, 669.0, 642018)


def test_the_matrix_has_a_job_per_selected_experiment_on_its_runner() -> None:
    every = experiments.matrix("", {})["include"]
    assert [job["name"] for job in every] == list(sweep.EXPERIMENTS)
    assert {job["runner"] for job in every} == {sweep.DEFAULT_RUNNER}

    chosen = experiments.matrix(" cnn,fashion-cnn ", {"fashion-cnn": "self-hosted-gpu"})
    assert chosen == {
        "include": [
            {"name": "cnn", "runner": "ubuntu-24.04"},
            {"name": "fashion-cnn", "runner": "self-hosted-gpu"},
        ]
    }
    with pytest.raises(SystemExit, match=r"not experiments .*\['cnn-typo'\]"):
        experiments.matrix("cnn-typo", {})
    with pytest.raises(SystemExit, match=r"not experiments .*\['gpu-row'\]"):
        experiments.matrix("", {"gpu-row": "gpu"})


def test_timing_files_round_trip(tmp_path: Path) -> None:
    timing = experiment_records.Timing(
        epochs=2, seconds=3.5, parameters=12730, runner="ubuntu-24.04"
    )
    (tmp_path / "cnn.json").write_text(
        json.dumps({"name": "cnn", **dataclasses.asdict(timing)}), encoding="utf-8"
    )
    assert experiments.read_timings(tmp_path) == {"cnn": timing}
    (tmp_path / "other.json").write_text(
        json.dumps({"name": "other", **dataclasses.asdict(timing)}), encoding="utf-8"
    )
    with pytest.raises(SystemExit, match="'other' is not an experiment"):
        experiments.read_timings(tmp_path)


def test_the_docs_table_has_a_row_per_experiment_with_its_runner() -> None:
    """The sweep's rows in its order, then any best trial of a search (tools/tune.py), each
    saying what chose it."""
    text = experiments.TABLE_PAGE.read_text(encoding="utf-8")  # docs/experiments.md
    rows = experiments.readme_rows(text)
    readme = experiments.README_PAGE.read_text(encoding="utf-8")
    assert experiments.readme_rows(readme) == rows  # the same table in the README
    assert list(rows)[: len(sweep.EXPERIMENTS)] == list(sweep.EXPERIMENTS)
    assert "\n".join(experiments.HEADER) in text
    for name, row in rows.items():
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == len(experiments.HEADER[0].strip("|").split(" | ")), row
        runner, chosen_by, reproduce = cells[-3:]
        assert runner, row
        if name in sweep.EXPERIMENTS:
            assert chosen_by == experiments.HAND, row
            expected = [part for part in sweep.command(name) if part not in ("-n", name)]
            assert reproduce == f"`{shlex.join(expected)}`", row
        else:
            assert chosen_by == "tuner, on validation", row
            assert reproduce.startswith("`dvc exp run evaluate explore -S "), row


def test_the_table_rewrites_the_timed_rows_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = tmp_path / "experiments.md"
    shutil.copy(experiments.TABLE_PAGE, readme)
    metrics = {
        "metrics/train.json": {
            "data": {"epochs": 15, "parameters": 421930, "best": {"val_accuracy": 0.995}}
        },
        "metrics/evaluate.json": {"data": {"test": {"accuracy": 0.99, "macro": {"f1": 0.98}}}},
    }
    params = {"params.yaml": {"data": {"train": {"architecture": "cnn", "epochs": 15}}}}
    data = {"metrics": metrics, "params": params}
    shown = [{"experiments": [{"revs": [{"name": "cnn", "data": data}]}]}]
    records = tmp_path / "experiments.json"
    shutil.copy(experiment_records.TABLE_RECORDS, records)
    monkeypatch.setattr(experiments, "TABLE_PAGE", readme)
    shutil.copy(experiments.README_PAGE, tmp_path / "README.md")
    monkeypatch.setattr(experiments, "README_PAGE", tmp_path / "README.md")
    monkeypatch.setattr(experiments, "TABLE_RECORDS", records)
    monkeypatch.setattr(experiments, "exp_show", lambda: shown)
    before = experiments.readme_rows(readme.read_text(encoding="utf-8"))

    experiments.write_table({"cnn": experiment_records.Timing(15, 99.4, 421930, "ubuntu-24.04")})

    after = experiments.readme_rows(readme.read_text(encoding="utf-8"))
    assert experiments.readme_rows((tmp_path / "README.md").read_text(encoding="utf-8")) == after
    assert list(after) == list(before)  # the sweep's rows, then the tuner's
    assert list(after)[: len(sweep.EXPERIMENTS)] == list(sweep.EXPERIMENTS)
    assert after["cnn"].startswith(
        "| cnn: CNN | 0.9950 | 0.9900 | 0.9800 | 421,930 | 99 s (15 epochs) "
    )
    assert "| ubuntu-24.04 |" in after["cnn"]
    assert experiment_records.read_records(records)["cnn"]["seconds"] == 99.4
    assert experiment_records.read_records(records)["cnn"]["runner"] == "ubuntu-24.04"
    assert experiment_records.read_records(records)["cnn"]["train"]["architecture"] == "cnn"
    assert {name: row for name, row in after.items() if name != "cnn"} == {
        name: row for name, row in before.items() if name != "cnn"
    }
    with pytest.raises(SystemExit, match=r"not in `dvc exp show`.*\['tuned-mlp'\]"):
        experiments.write_table({"tuned-mlp": experiment_records.Timing(30, 1.0, 535818, "x")})


def test_table_with_names_re_times_only_those_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    asked, written = [], []
    monkeypatch.setattr(experiments, "queue_timing", lambda name: asked.append(name) or name)
    monkeypatch.setattr(experiments, "write_table", written.append)

    assert experiments.main(["table", "cnn", "tuned-mlp"]) == 0
    assert asked == ["cnn", "tuned-mlp"]
    assert written == [{"cnn": "cnn", "tuned-mlp": "tuned-mlp"}]

    with pytest.raises(SystemExit, match=r"not experiments of tools/sweep.py: \['cnm'\]"):
        experiments.main(["table", "cnm"])


def test_the_app_model_row_is_computed_from_the_app_recipe(tmp_path: Path) -> None:
    """The row's -S values are the keys where app-model/recipe.yaml's train section differs
    from params.yaml's: a changed recipe is a changed row, with nothing restated."""
    row = sweep.EXPERIMENTS["app-model"]
    assert row.recipe == PROJECT / "app-model" / "recipe.yaml"
    recipe = yaml.safe_load(row.recipe.read_text(encoding="utf-8"))["train"]
    params = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))["train"]
    assert row.settings, "the app's recipe is the pipeline's defaults"
    for setting in row.settings:
        key, value = setting.removeprefix("train.").split("=", 1)
        *sections, leaf = key.split(".")
        mine, theirs = recipe, params
        for section in sections:
            mine, theirs = mine[section], theirs[section]
        assert yaml.safe_load(value) == mine[leaf] != theirs[leaf], setting

    copy = tmp_path / "recipe.yaml"
    recipe_file = yaml.safe_load(row.recipe.read_text(encoding="utf-8"))
    recipe_file["train"]["epochs"] = 3
    recipe_file["train"]["augmentation"]["max_zoom"] = 0.25
    recipe_file["train"]["batch_size"] = params["batch_size"]  # now as in params.yaml
    copy.write_text(yaml.safe_dump(recipe_file, sort_keys=False), encoding="utf-8")
    changed = row._replace(recipe=copy).settings

    assert "train.epochs=3" in changed
    assert "train.augmentation.max_zoom=0.25" in changed
    assert not [s for s in changed if s.startswith("train.batch_size=")]
    assert {s for s in changed if not s.startswith("train.epochs=")} == {
        s
        for s in [*row.settings, "train.augmentation.max_zoom=0.25"]
        if not s.startswith(("train.epochs=", "train.batch_size="))
    }


def test_no_two_rows_of_the_sweep_train_the_same_recipe(tmp_path: Path) -> None:
    """The app-model row replaced the row that restated the app's recipe by hand."""
    seen = {}
    for name, row in sweep.EXPERIMENTS.items():
        params = tmp_path / f"{name}.yaml"
        shutil.copy(PROJECT / "params.yaml", params)
        apply_overrides(params, row.settings)
        values = yaml.safe_dump(yaml.safe_load(params.read_text(encoding="utf-8")))
        assert values not in seen, f"{name} trains the recipe of {seen.get(values)}"
        seen[values] = name


def test_the_plan_job_needs_the_standard_library_only() -> None:
    """`python -m tools.experiments matrix`, as the sweep workflow's plan job runs it before
    any install: with no site-packages (-S -I), the app-model row listed all the same."""
    import subprocess
    import sys

    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    done = subprocess.run(
        [base, "-S", "-c", "import runpy, sys; sys.argv = ['x', 'matrix']; "
         "runpy.run_module('tools.experiments', run_name='__main__')"],
        cwd=PROJECT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [job["name"] for job in json.loads(done.stdout)["include"]] == list(sweep.EXPERIMENTS)


CNN_ONLY_KEYS = ("conv_filters", "convs_per_block", "batch_norm")  # digits/params.py


def test_the_table_s_records_are_its_rows(tmp_path: Path) -> None:
    """docs/experiments.json, written by `table` with the Markdown table, holds the same rows:
    one record each, rendering as the table's line."""
    records = experiment_records.read_records(experiment_records.TABLE_RECORDS)
    rows = experiments.readme_rows(experiments.TABLE_PAGE.read_text(encoding="utf-8"))
    assert list(records) == list(rows)
    tuned = list(records)[len(sweep.EXPERIMENTS) :]  # the tuner's best trials come last
    assert list(records)[: len(sweep.EXPERIMENTS)] == list(sweep.EXPERIMENTS)
    assert all(records[name]["chosen_by"] == experiment_records.TUNER for name in tuned)
    for name, record in records.items():
        assert experiments.format_row(name, record) == rows[name]
        if name in sweep.EXPERIMENTS:
            assert record["settings"] == sweep.EXPERIMENTS[name].settings, name
        params = tmp_path / f"{name}.yaml"
        shutil.copy(PROJECT / "params.yaml", params)
        apply_overrides(params, record["settings"])
        trained = yaml.safe_load(params.read_text(encoding="utf-8"))["train"]
        recorded = dict(record["train"])
        if trained["architecture"] == "mlp":  # an MLP is built from none of the cnn-only keys
            for key in CNN_ONLY_KEYS:
                trained.pop(key), recorded.pop(key)
        assert recorded == trained, f"{name}: its train section is not its settings'"


def test_timed_rows_come_in_the_sweep_s_order_whatever_the_timings_order() -> None:
    metrics = {
        "metrics/train.json": {
            "data": {"epochs": 1, "parameters": 10, "best": {"val_accuracy": 1}}
        },
        "metrics/evaluate.json": {"data": {"test": {"accuracy": 1, "macro": {"f1": 1}}}},
    }
    data = {"metrics": metrics, "params": {"params.yaml": {"data": {"train": {}}}}}
    first, second = list(sweep.EXPERIMENTS)[:2]
    shown = [{"experiments": [{"revs": [{"name": n, "data": data} for n in (first, second)]}]}]
    timing = experiment_records.Timing(1, 1.0, 10, "here")

    records = experiments.table_records(shown, {second: timing, first: timing})

    assert list(records) == [first, second]


def test_the_table_reads_the_newest_run_of_a_name_whatever_its_commit() -> None:
    # `dvc exp show --all-commits` lists the newest commit first; an older commit's experiment
    # of the same name (an earlier recipe) must not stand in for the run the timing is of.
    def run_of(accuracy: float, timestamp: str) -> dict:
        metrics = {"metrics/evaluate.json": {"data": {"test": {"accuracy": accuracy}}}}
        return {"name": "app-model", "data": {"timestamp": timestamp, "metrics": metrics}}

    newest, older = run_of(0.9963, "2026-12-04T23:17:10"), run_of(0.9953, "2026-12-04T19:00:00")
    shown = [{"experiments": [{"revs": [newest]}]}, {"experiments": [{"revs": [older]}]}]

    assert experiments.experiments_by_name(shown)["app-model"] == newest["data"]
    assert experiments.experiments_by_name(shown[::-1])["app-model"] == newest["data"]
