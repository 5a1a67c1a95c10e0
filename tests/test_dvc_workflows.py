"""What a user does with DVC on this project, run for real on a copy of it.

A module fixture copies the pipeline into a new git repository in a temporary folder, reproduces
it on small synthetic MNIST files with a tiny network and commits the results on `main`
(tests/helpers/dvc_project.py).
Every test then runs the real `dvc`, `git` and `make` commands there and asserts on what DVC
reports: which stages ran, the metrics and params it compares, the report it writes, the
experiments it lists. Nothing here uses the network or touches the project's own files.

Each test leaves the copy as the fixture made it (on `main`, clean, data checked out), so the
tests run in any order.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers.chromium import OfflinePage, launched_chromium
from helpers.dvc_project import (
    APP_PIPELINE,
    APP_RECIPE,
    APP_STAGES,
    CARD_APP,
    DATASETS,
    DVC_TIMEOUT_S,
    EVALUATE_APP,
    PIPELINE_STAGES,
    PROJECT,
    STAGES,
    TINY_APP_RECIPE,
    TINY_PARAMS,
    TRAIN_APP,
    VENV_BIN,
    Project,
    Repro,
    experiments,
    make_project,
    metrics_of,
    params_of,
    parse_repro,
    tree_digest,
)
from helpers.import_graph import project_imports
from PIL import Image

from tools import sweep  # the documented sweep

BRANCH_LEARNING_RATE = 0.003  # what the `slower-learning` branch changes
QUEUE_DEADLINE_S = 240

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The pipeline reproduced on synthetic MNIST and committed on `main` in a new repo."""
    return make_project(tmp_path_factory.mktemp("dvc-workflows"))


@pytest.fixture(scope="module")
def slower_learning(project: Project) -> Repro:
    """Branch `slower-learning`: train.learning_rate changed, reproduced and committed."""
    with project.on_branch("slower-learning", new=True):
        project.set_params("train", learning_rate=BRANCH_LEARNING_RATE)
        result = project.repro()
        project.git("commit", "--quiet", "--all", "-m", "slower learning")
    return result


def only(ran: set[str], result: Repro, stages: tuple[str, ...] = STAGES) -> None:
    """`result` ran exactly the stages `ran` and skipped all others of `stages` as unchanged."""
    assert set(result.ran) == ran, result.output
    assert set(result.skipped) == set(stages) - ran, result.output
    assert not result.restored, result.output


# A change reruns only what it affects


def test_nothing_changed_nothing_runs(project: Project):
    assert project.status() == {}
    only(set(), project.repro())


def test_train_param_reruns_train_evaluate_and_export_only(slower_learning: Repro):
    only({"train", "evaluate", "export"}, slower_learning)


def test_evaluate_param_reruns_both_evaluate_stages_only(project: Project):
    # evaluate-app reads params.yaml's evaluate section too.
    with project.on_branch("more-examples", new=True):
        project.set_params("evaluate", misclassified_examples=16)
        assert set(project.status()) == {"evaluate", EVALUATE_APP}
        only({"evaluate", EVALUATE_APP}, project.repro())


def test_preprocess_param_reruns_preprocess_and_everything_after(project: Project):
    with project.on_branch("other-split", new=True):
        project.set_params("preprocess", seed=7)
        # dvc status names the stage whose params changed; repro also reruns what depends on it.
        assert set(project.status()) == {"preprocess"}
        only({"preprocess", "explore", "train", "evaluate", "export", *APP_STAGES}, project.repro())


def test_a_plain_dvc_repro_runs_the_pipeline_and_not_the_app_model(project: Project):
    # What `make repro` runs: the root dvc.yaml. The app's model is a pipeline of its own.
    with project.on_branch("newcomer", new=True):
        project.set_params("preprocess", seed=7)
        recipe_path = project.root / APP_RECIPE
        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
        recipe["train"]["epochs"] = 1
        recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        app_model = tree_digest(project.root / "data/app-model")

        result = parse_repro(project.dvc("repro"), PIPELINE_STAGES)

        assert result.ran == {"preprocess", "explore", "train", "evaluate", "export"}, result.output
        assert tree_digest(project.root / "data/app-model") == app_model
        # data/processed changed (train-app, evaluate-app), and the recipe the card states
        assert set(project.status()) == {TRAIN_APP, EVALUATE_APP, CARD_APP}


def test_the_app_recipe_reruns_the_app_stages_only(project: Project):
    # app-model/recipe.yaml is a plain dep of train-app: no params columns, the pipeline
    # untouched.
    recipe_path = project.root / APP_RECIPE
    model = project.root / "data/app-model/model.keras"
    with project.on_branch("app-recipe", new=True):
        before = model.read_bytes()
        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
        recipe["train"]["epochs"] = 1
        recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        assert set(project.status()) == {TRAIN_APP, CARD_APP}
        only(set(APP_STAGES), project.repro())
        assert model.read_bytes() != before
        train = json.loads((project.root / "metrics/app-model/train.json").read_text())
        assert train["epochs"] == 1
        # Its metrics are not declared in dvc.yaml, yet DVC shows and compares them when named.
        shown = json.loads(
            project.dvc("metrics", "show", "--json", "metrics/app-model/evaluate.json")
        )
        (workspace,) = shown.values()
        evaluated = workspace["data"]["metrics/app-model/evaluate.json"]["data"]
        assert evaluated == json.loads(
            (project.root / "metrics/app-model/evaluate.json").read_text(encoding="utf-8")
        )
        diff = json.loads(
            project.dvc(
                "metrics", "diff", "main", "--json", "--targets", "metrics/app-model/train.json"
            )
        )
        assert diff["metrics/app-model/train.json"]["epochs"] == {
            "old": TINY_APP_RECIPE["epochs"],
            "new": 1,
            "diff": 1 - TINY_APP_RECIPE["epochs"],
        }


def importers(module: str) -> set[str]:
    """The stages of both pipelines whose code imports `module` (digits/errors.py, say), by the
    import graph, named as `dvc status` names them."""
    found = set()
    for pipeline in ("dvc.yaml", APP_PIPELINE):
        for stage, spec in yaml.safe_load((PROJECT / pipeline).read_text())["stages"].items():
            if Path(module) in project_imports(spec["cmd"].split()[2]):  # python -m <module>
                found.add(stage if pipeline == "dvc.yaml" else f"{pipeline}:{stage}")
    return found


@pytest.mark.parametrize(
    "module",
    ["digits/errors.py", "digits/dataset.py", "digits/idx.py", "digits/determinism.py"],
)
def test_editing_a_module_marks_exactly_the_stages_that_import_it(project: Project, module: str):
    expected = importers(module)
    assert expected, f"no stage imports {module}"
    try:
        with open(project.root / module, "a", encoding="utf-8") as f:
            f.write("\n# an edit\n")
        assert set(project.status()) == expected
    finally:
        project.reset()


def test_editing_the_dataset_sources_reruns_download(project: Project):
    try:
        sources = yaml.safe_load((project.root / DATASETS).read_text(encoding="utf-8"))
        sources["mnist"]["mirrors"].append("https://example.invalid/mnist/")
        (project.root / DATASETS).write_text(yaml.safe_dump(sources), encoding="utf-8")
        # card-app states the dataset's licence, from this file: it reruns, to the same card.
        assert set(project.status()) == {"download", CARD_APP}
        card = tree_digest(project.root / "data/app-model/recogniser")
        # Only the mirror list changed: the same verified files, so nothing after download reruns.
        result = project.repro()
        assert result.ran == {"download", CARD_APP}, result.output
        assert tree_digest(project.root / "data/app-model/recogniser") == card
    finally:
        project.reset()


# When a run fails: the last good outputs stay, and the next run finishes the job


def workspace_outputs(project: Project) -> dict[str, str]:
    """Digest of every output file (data/, metrics/, plots/), temp files included; not DVCLive's
    folders, progress logs that a failed run may change (checked on their own)."""
    return {
        path: digest
        for folder in ("data", "metrics", "plots")
        for name, digest in tree_digest(project.root / folder).items()
        if "training-log/" not in (path := f"{folder}/{name}")
    }


def temp_files(project: Project) -> list[str]:
    return sorted(
        str(path.relative_to(project.root))
        for folder in ("data", "metrics", "plots")
        for path in (project.root / folder).rglob(".*")
    )


# Code appended to the copy's digits/metrics.py (which only train and evaluate import) that
# replaces the training summary, the last output train writes, so that the stage fails while it
# writes its outputs: the model, history and curves are in their temp files by then.
INJECTED = "digits/metrics.py"
FAILURES = {
    "exception": "raise RuntimeError('injected failure')",
    "sigkill": "os.kill(os.getpid(), signal.SIGKILL)",
    "sigint": "Path(os.environ['FAILURE_MARKER']).touch(); time.sleep(120)",
}


def inject_failure(project: Project, kind: str) -> None:
    with open(project.root / INJECTED, "a", encoding="utf-8") as f:
        f.write(
            "\n\ndef training_summary(history, parameters):  # injected by the test\n"
            "    import os, signal, time\n"
            "    from pathlib import Path\n"
            f"    {FAILURES[kind]}\n"
        )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def repro_interrupted_with_sigint(project: Project) -> subprocess.CompletedProcess[str]:
    """`dvc repro`, and Ctrl+C (SIGINT to its process group) once train is writing outputs."""
    marker = project.base / "failure-marker"
    marker.unlink(missing_ok=True)
    process = subprocess.Popen(
        [str(VENV_BIN / "dvc"), "repro"],
        cwd=project.root,
        env={**project.env, "FAILURE_MARKER": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # ... and Ctrl+C's default action, as a terminal gives it: a process started in the
        # background by a non-interactive shell (`nohup pytest &`, some CI runners) inherits
        # SIGINT ignored, and Python then never raises KeyboardInterrupt, so dvc and the stage
        # would sleep through the signal.
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + DVC_TIMEOUT_S
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "train never reached its outputs"
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("kind", ["bad-params", "exception", "sigint", "sigkill"])
def test_a_failed_run_keeps_the_last_good_outputs(project: Project, kind: str):
    good = workspace_outputs(project)
    good_live = tree_digest(project.root / "data/training-log")
    try:
        if kind == "bad-params":  # a one-character typo: epochs: "3"
            project.set_params("train", epochs="3")
        else:
            project.set_params("train", epochs=3)
            inject_failure(project, kind)

        if kind == "sigint":
            result = repro_interrupted_with_sigint(project)
        else:
            result = project.run(VENV_BIN / "dvc", "repro", check=False)

        assert result.returncode != 0, result.stdout
        assert "failed to reproduce 'train'" in result.stderr, result.stderr
        if kind == "bad-params":
            assert "train.epochs: Input should be a valid integer" in result.stderr
        after = workspace_outputs(project)
        leftovers = temp_files(project)
        if kind == "sigkill":  # nothing can clean up after SIGKILL: the next run does
            assert leftovers, "expected the killed stage's temp files"
            after = {path: digest for path, digest in after.items() if path not in leftovers}
        else:
            assert leftovers == []
        assert after == good, "the failed run changed or deleted outputs"
        changed = project.git("status", "--porcelain", "--untracked-files=no").splitlines()
        assert sorted(line[3:] for line in changed) == sorted(
            ["params.yaml"] if kind == "bad-params" else ["params.yaml", INJECTED]
        ), changed  # metrics/ and plots/ untouched
        # DVCLive's folder is a progress log, cached by DVC: `dvc checkout --force` restores the
        # last good one (a failure after training leaves the failed run's epochs there, which
        # DVC has not cached, so it wants --force to drop them).
        project.dvc("checkout", "--force", "data/training-log")
        assert tree_digest(project.root / "data/training-log") == good_live

        # Fix the cause; the next `dvc repro` finishes the job and leaves nothing behind.
        project.git("checkout", "--quiet", "--", INJECTED)
        project.set_params("train", epochs=3)
        assert project.repro().ran == {"train", "evaluate", "export"}
        assert project.status() == {}
        assert temp_files(project) == []
        train = json.loads((project.root / "metrics/train.json").read_text(encoding="utf-8"))
        assert train["epochs"] == 3
    finally:
        project.reset()


# Comparing a branch with main


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


@pytest.mark.usefixtures("slower_learning")  # the branch it compares with main
def test_metrics_diff_main_reports_changed_metrics(project: Project):
    with project.on_branch("slower-learning"):
        diff = json.loads(project.dvc("metrics", "diff", "main", "--json"))
        table = project.dvc("metrics", "diff", "main", "--md")
        for path in ("metrics/train.json", "metrics/evaluate.json"):
            old = flatten(json.loads(project.git("show", f"main:{path}")))
            new = flatten(json.loads((project.root / path).read_text(encoding="utf-8")))
            changed = {key for key in old if old[key] != new[key]}
            assert changed, f"{path}: the param change changed no metric"
            assert set(diff[path]) == changed, path
            for key in changed:
                assert diff[path][key]["old"] == old[key], (path, key)
                assert diff[path][key]["new"] == new[key], (path, key)
    header = table.splitlines()[0]
    assert re.fullmatch(r"\|\s*Path\s*\|\s*Metric\s*\|\s*main\s*\|\s*workspace\s*\|.*", header)
    assert "test.loss" in table


@pytest.mark.usefixtures("slower_learning")  # the branch it compares with main
def test_params_diff_main_reports_the_param(project: Project):
    with project.on_branch("slower-learning"):
        diff = json.loads(project.dvc("params", "diff", "main", "--json"))
    assert list(diff) == ["params.yaml"]
    assert list(diff["params.yaml"]) == ["train.learning_rate"]
    change = diff["params.yaml"]["train.learning_rate"]
    assert change["old"] == TINY_PARAMS["train"]["learning_rate"]
    assert change["new"] == BRANCH_LEARNING_RATE


# In the page: whether each vega plot (by div id) drew (vega-embed's canvas or SVG renderer), and
# which revisions each image plot shows (DVC captions each image with its revision).
INSPECT_REPORT_JS = """
({vegaIds}) => {
    const vega = vegaIds
        .map(id => document.getElementById(id))
        .filter(div => div)
        .map(div => {
            const canvas = div.querySelector('canvas');
            const svg = div.querySelector('svg.marks');
            // A canvas counts once it has a size (vega-embed adds it before it draws).
            return {id: div.id, drawn: !!((canvas && canvas.width > 0) || svg)};
        });
    const images = [...document.querySelectorAll('div[id]')]
        .filter(div => div.querySelector(':scope > div > img'))
        .map(div => ({
            id: div.id,
            revisions: [...div.querySelectorAll(':scope > div')].map(box => ({
                caption: box.querySelector('p')?.textContent.trim(),
                loaded: [...box.querySelectorAll('img')]
                    .every(img => img.complete && img.naturalWidth > 0),
            })),
        }));
    return {vega, images};
}
"""


def colour_counts(png: bytes, colours: dict[str, list[int]]) -> dict[str, int]:
    """How many pixels of a screenshot are near each colour (whatever vega rendered with)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return {
        name: int((np.abs(pixels - np.array(rgb)).sum(axis=-1) < 40).sum())
        for name, rgb in colours.items()
    }


def vega_specs(html: str) -> dict[str, dict]:
    """Each vega plot's spec in a DVC report, by div id."""
    pattern = r'<div id = "([^"]+)">\s*<script type = "text/javascript">\s*var spec = (\{.*?\});\n'
    return {div: json.loads(spec) for div, spec in re.findall(pattern, html, re.DOTALL)}


def hex_rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


def open_report(
    index: Path,
    specs: dict[str, dict],
    colours: dict[str, list[int]],
    screenshot: Path,
    stand_ins: dict[str, Path] | None = None,
) -> tuple[dict[str, Any], OfflinePage]:
    """Open a DVC report in headless Chromium, wait until every vega plot drew (or 30 s), and
    return what INSPECT_REPORT_JS found (and, given `colours`, each drawn plot's pixel count per
    colour, from a screenshot of its div) with the page (its errors and blocked requests)."""
    with launched_chromium() as browser:
        offline = OfflinePage(browser, stand_ins=stand_ins)
        page = offline.page
        page.goto(index.as_uri(), wait_until="load")
        deadline = time.monotonic() + 30
        while True:  # vega-embed draws asynchronously
            found = page.evaluate(INSPECT_REPORT_JS, {"vegaIds": list(specs)})
            if all(plot["drawn"] for plot in found["vega"]) or time.monotonic() > deadline:
                break
            page.wait_for_timeout(200)
        page.wait_for_timeout(500)  # the last marks of a plot that just got its canvas or SVG
        for plot in found["vega"]:
            if plot["drawn"] and colours:
                shot = page.locator(f"#{plot['id']}").screenshot()
                plot["counts"] = colour_counts(shot, colours)
        page.screenshot(path=screenshot, full_page=True)
    return found, offline


def revision_colours(specs: dict[str, dict]) -> dict[str, dict[str, list[int]]]:
    """DVC colours the lines of a linear plot by revision: each such plot's colour per revision."""
    return {
        div: {
            rev: hex_rgb(colour)
            for rev, colour in zip(scale["domain"], scale["range"], strict=True)
        }
        for div, spec in specs.items()
        if (scale := spec.get("encoding", {}).get("color", {}).get("scale"))
        and sorted(scale.get("domain", [])) == ["main", "workspace"]
    }


@pytest.mark.usefixtures("slower_learning")  # the branch it compares with main
def test_plots_diff_main_renders_both_revisions(project: Project, tmp_path: Path):

    report = tmp_path / "plots-diff"
    with project.on_branch("slower-learning"):
        project.dvc("plots", "diff", "main", "-o", report)
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html, "the report is not built from the offline template"

    specs = vega_specs(html)
    assert specs, "the report holds no vega plots"
    for div, spec in specs.items():
        revisions = {row["rev"] for row in spec["data"]["values"]}
        assert revisions == {"main", "workspace"}, div
    line_colours = revision_colours(specs)
    assert line_colours, "no plot colours its lines by revision"
    colours = next(iter(line_colours.values()))

    found, offline = open_report(report / "index.html", specs, colours, tmp_path / "diff.png")

    assert not offline.errors, offline.errors
    assert not offline.blocked, f"the report tried to reach the network: {offline.blocked}"
    vega = {plot["id"]: plot for plot in found["vega"]}
    assert set(vega) == set(specs)
    assert all(plot["drawn"] for plot in vega.values()), vega
    for div in line_colours:  # both revisions' lines are on screen
        assert all(vega[div]["counts"][rev] > 50 for rev in colours), (div, vega[div])
    assert found["images"], "the report holds no image plots"
    for plot in found["images"]:
        captions = sorted(box["caption"] for box in plot["revisions"])
        assert captions == ["main", "workspace"], plot
        assert all(box["loaded"] for box in plot["revisions"]), plot


def cdn_stand_ins(folder: Path) -> dict[str, Path]:
    """DVC's default template loads vega, vega-lite and vega-embed from a CDN; the test serves
    local copies in their place: vl-convert-python's bundle of all three as vega, and nothing
    as the other two (the bundle defines them)."""
    import vl_convert

    folder.mkdir(parents=True, exist_ok=True)
    bundle, empty = folder / "vega-bundle.js", folder / "empty.js"
    bundle.write_text(vl_convert.javascript_bundle(), encoding="utf-8")
    empty.write_text("// vega-lite and vega-embed come with the bundle served as vega\n")
    return {
        f"https://cdn.jsdelivr.net/npm/{library}@": bundle if library == "vega" else empty
        for library in ("vega", "vega-lite", "vega-embed")
    }


@pytest.mark.parametrize("command", ["show", "diff"])
@pytest.mark.usefixtures("slower_learning")  # the branch it compares with main
def test_plots_work_in_a_fresh_clone_without_set_up(project: Project, tmp_path: Path, command: str):
    # `pip install dvc && git clone ... && dvc plots show`: no `make setup`, so no offline
    # template and no .dvc/config.local. DVC's own template must be used, not a crash.
    clone = project.base / f"fresh-clone-{command}"
    project.git("clone", "--quiet", "--branch", "slower-learning", project.root, clone)
    project.git("branch", "--quiet", "main", "origin/main", cwd=clone)
    assert not (clone / ".dvc" / "config.local").exists()
    report = tmp_path / "report"
    args = ["plots", "show"] if command == "show" else ["plots", "diff", "main"]

    project.dvc(*args, "-o", report, cwd=clone)

    html = (report / "index.html").read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net/npm/vega@" in html, "expected DVC's default (CDN) template"
    declared = yaml.safe_load((clone / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    data_plots = [next(iter(plot)) for plot in declared if isinstance(plot, dict)]
    # DVCLive's plots read data/training-log/, which is in DVC's cache, not in git: a clone
    # without `dvc pull` has no data for them, and DVC gives them an empty spec. Every other one
    # draws.
    live = [name for name in data_plots if name.startswith("Live ")]
    assert live, data_plots
    all_specs = vega_specs(html)
    assert len(all_specs) == len(data_plots)
    specs = {div: spec for div, spec in all_specs.items() if spec}
    assert sorted(set(all_specs) - set(specs)) == sorted(name.replace(" ", "_") for name in live)
    found, page = open_report(
        report / "index.html",
        specs,
        {},
        tmp_path / "report.png",
        stand_ins=cdn_stand_ins(tmp_path / "cdn"),
    )
    assert not page.errors, page.errors
    assert not page.blocked, page.blocked
    assert len(page.served) == 3, page.served  # the three libraries, "from the CDN"
    assert all(plot["drawn"] for plot in found["vega"]), found["vega"]
    assert found["images"], "the report holds no image plots"
    loaded = [box["loaded"] for plot in found["images"] for box in plot["revisions"]]
    assert all(loaded), found["images"]


# Experiments


def test_exp_run_with_a_param_and_exp_show_lists_it(project: Project):
    try:
        result = project.run(VENV_BIN / "dvc", "exp", "run", "-S", "train.epochs=1")
        # `dvc exp run`, like `dvc repro`, runs the root dvc.yaml: never the app's model.
        ran = parse_repro(result.stdout, PIPELINE_STAGES)
        only({"train", "evaluate", "export"}, ran, PIPELINE_STAGES)
        (name,) = re.findall(r"^Ran experiment\(s\): (\S+)$", result.stdout, re.MULTILINE)
        shown = experiments(project)
        assert name in shown, shown.keys()
        assert params_of(shown[name])["train"]["epochs"] == 1
        for path in ("metrics/train.json", "metrics/evaluate.json"):  # results in the workspace
            workspace = json.loads((project.root / path).read_text(encoding="utf-8"))
            assert metrics_of(shown[name], path) == workspace, path
        assert metrics_of(shown[name], "metrics/train.json")["epochs"] == 1
        assert name in project.dvc("exp", "show", "--md")
    finally:
        project.reset()


def test_exp_run_shows_its_progress_epoch_by_epoch(project: Project):
    # DVCLive rewrites data/training-log/ after every epoch: while `dvc exp run` trains, its
    # per-epoch files grow and `dvc exp show` (the workspace row) has the latest epoch's metrics.
    epochs = 40
    loss_log = project.root / "data/training-log/plots/metrics/train/loss.tsv"
    run: subprocess.Popen[str] | None = None
    try:
        # batch_size=1: about 0.1 s an epoch on the synthetic data, long enough to watch.
        command = ["exp", "run", "-S", f"train.epochs={epochs}", "-S", "train.batch_size=1"]
        run = subprocess.Popen(
            [VENV_BIN / "dvc", *command],
            cwd=project.root,
            env=project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group, so that a failed check can stop it all
        )
        rows_seen: set[int] = set()
        shown_steps: list[int] = []
        unreadable: list[dict] = []  # workspace rows `dvc exp show` could not collect
        deadline = time.monotonic() + DVC_TIMEOUT_S
        while run.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # DVCLive empties the folder when training starts
                rows_seen.add(len(loss_log.read_text(encoding="utf-8").splitlines()) - 1)
            if len(rows_seen - {-1, 0}) >= 2 and not shown_steps:  # in mid-run
                (workspace, *_) = json.loads(project.dvc("exp", "show", "--json"))
                # A read that lands while DVCLive rewrites its files gets a row with an error
                # and no data, as a user's refresh would: the next one has the data.
                if "data" in workspace:
                    live = workspace["data"]["metrics"]["data/training-log/metrics.json"]["data"]
                    shown_steps.append(live["step"])
                else:
                    unreadable.append(workspace)
            time.sleep(0.02)
        stdout, stderr = run.communicate(timeout=DVC_TIMEOUT_S)
        assert run.returncode == 0, f"{stdout}\n{stderr}"

        growing = sorted(rows for rows in rows_seen if 0 < rows < epochs)
        assert len(growing) >= 3, f"the log did not grow during the run: {sorted(rows_seen)}"
        assert shown_steps, f"no mid-run `dvc exp show` had the metrics: {unreadable[-3:]}"
        assert 1 <= shown_steps[0] < epochs, shown_steps
        (name,) = re.findall(r"^Ran experiment\(s\): (\S+)$", stdout, re.MULTILINE)
        final = metrics_of(experiments(project)[name], "data/training-log/metrics.json")
        assert final["step"] == epochs
        rows = loss_log.read_text(encoding="utf-8").splitlines()
        assert rows[0] == "step\tloss"
        assert [row.split("\t")[0] for row in rows[1:]] == [str(e) for e in range(1, epochs + 1)]
        assert float(rows[-1].split("\t")[1]) == pytest.approx(final["train"]["loss"])
    finally:
        if run is not None and run.poll() is None:  # no DVC lock or stage left behind
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
        project.reset()


def leaf_count(value: Any) -> int:
    """How many columns `dvc exp show` gives a metrics or params file: one per leaf value."""
    if isinstance(value, dict):
        return sum(leaf_count(item) for item in value.values())
    return 1


def test_exp_show_has_a_readable_number_of_columns(project: Project):
    (workspace, *_) = json.loads(project.dvc("exp", "show", "--json"))
    data = workspace["data"]
    metrics = sum(leaf_count(file["data"]) for file in data["metrics"].values())
    params = sum(leaf_count(file["data"]) for file in data["params"].values())
    # 18 of the pipeline's, and the app's accuracy on each of 3 sets of other handwriting
    # (app-model/dvc.yaml declares them so that `dvc metrics show` and `dvc metrics diff` list
    # them; their counts of pictures are not metrics).
    assert 0 < metrics <= 21, data["metrics"]
    assert 0 < params <= 30, data["params"]
    assert list(data["params"]) == ["params.yaml"]
    app_metrics = [path for path in data["metrics"] if "app-model" in path]
    assert app_metrics == ["metrics/app-model/other-handwriting.json"], data["metrics"]
    assert "datasets" not in data["params"]["params.yaml"]["data"]["download"]


def test_the_documented_sweep_fits_120_columns(project: Project):
    # Every experiment of tools/sweep.py, for one epoch on the synthetic data, then the
    # documented command to compare them, with room to spare so that nothing is cut.
    app_outputs = tree_digest(project.root / "data/app-model")
    try:
        for name in sweep.EXPERIMENTS:
            output = project.dvc(*sweep.command(name)[1:], "-S", "train.epochs=1")
            # (app-model at one epoch may equal another row at one epoch: then nothing reruns.)
            ran = set(re.findall(r"^Running stage '([^']+)'", output, re.MULTILINE))
            assert not ran & {TRAIN_APP, EVALUATE_APP}, f"{name} retrained the app model"
            assert tree_digest(project.root / "data/app-model") == app_outputs, name
            # `dvc exp run` leaves its -S values in params.yaml: each row starts from the
            # committed one, as each CI job of the sweep does (one row per fresh checkout).
            project.git("checkout", "--", "params.yaml")
        shown = subprocess.run(
            [VENV_BIN / "dvc", *sweep.SHOW[1:], "--no-pager"],
            cwd=project.root,
            env={**project.env, "COLUMNS": "1000"},  # wide enough that rich cuts nothing
            capture_output=True,
            text=True,
            timeout=DVC_TIMEOUT_S,
            check=True,
        ).stdout
    finally:
        project.reset()
    width = max(map(len, shown.splitlines()))
    assert width <= 120, shown
    assert "…" not in shown, shown
    for name in sweep.EXPERIMENTS:
        assert f"[{name}]" in shown, shown
    documented = (PROJECT / "docs" / "experiments.md").read_text(encoding="utf-8")
    assert shlex.join(sweep.SHOW) in documented


def queue_states(project: Project) -> tuple[dict[str, str], str]:
    """`dvc queue status`: experiment name -> Queued, Running, Success or Failed; and its text."""
    text = project.dvc("queue", "status")
    states = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] != "Task" and not line.startswith("Worker"):
            states[fields[1]] = fields[-1]
    return states, text


def stop_queue_workers(project: Project) -> None:
    """`dvc queue stop`, then wait for the worker to exit; kill it (by its pid) if it won't."""
    project.dvc("queue", "stop", check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "0 active, 0 idle" in project.dvc("queue", "status", check=False):
            return
        time.sleep(1)
    for pid_file in (project.root / ".dvc/tmp/exps/celery").glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            if "queue-worker" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, 9)


def test_queued_sweep_completes(project: Project):
    rates = (0.02, 0.005)
    try:
        queued = project.dvc(
            "exp", "run", "--queue", "-S", f"train.learning_rate={','.join(map(str, rates))}"
        )
        names = re.findall(r"^Queued experiment '([^']+)'", queued, re.MULTILINE)
        assert len(names) == len(rates), queued
        assert set(queue_states(project)[0].values()) == {"Queued"}

        project.dvc("queue", "start", "--jobs", "1")
        deadline = time.monotonic() + QUEUE_DEADLINE_S
        while True:
            states, text = queue_states(project)
            done = all(states.get(name) in ("Success", "Failed") for name in names)
            if done or time.monotonic() > deadline:
                break
            time.sleep(2)
        if any(states.get(name) != "Success" for name in names):
            logs = "\n".join(project.dvc("queue", "logs", name, check=False) for name in names)
            pytest.fail(f"the queued sweep did not succeed:\n{text}\n{logs}", pytrace=False)

        shown = experiments(project)
        swept = {params_of(shown[name])["train"]["learning_rate"] for name in names}
        assert swept == set(rates)
        for name in names:
            executor = shown[name]["executor"] or {"state": "success"}  # None once collected
            assert executor["state"] == "success", executor
            assert metrics_of(shown[name], "metrics/evaluate.json")["test"]["accuracy"] >= 0
            assert metrics_of(shown[name], "metrics/train.json")["epochs"] == 2
    finally:
        stop_queue_workers(project)
        project.reset()


# Sharing results without rerunning


def test_push_then_pull_in_a_fresh_clone_restores_everything(project: Project):
    remote = project.base / "remote"
    project.dvc("remote", "add", "--local", "--default", "shared", remote)
    pushed = project.dvc("push")
    assert re.search(r"\d+ files? pushed", pushed), pushed

    clone = project.base / "clone"
    project.git("clone", "--quiet", "--branch", "main", project.root, clone)
    project.dvc("remote", "add", "--local", "--default", "shared", remote, cwd=clone)
    assert [path.name for path in (clone / "data").iterdir()] == [DATASETS.name]  # git's only
    project.dvc("pull", cwd=clone)

    assert tree_digest(clone / "data") == tree_digest(project.root / "data")
    assert project.status(cwd=clone) == {}
    only(set(), project.repro(cwd=clone))


# The reproducibility check: `make verify` (what .ci/run and the GitHub workflow call)


def make_verify(project: Project, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The project's `make verify` in `cwd`, with the venv that runs these tests.

    `-o setup` skips the set-up step (a venv and the plots template in the copy), so this runs
    exactly the verify recipe. STRICT=1: the results compared were made here, so a difference
    fails on any platform.
    """
    args = ["make", "--no-print-directory", "-o", "setup", "verify", f"BIN={VENV_BIN}", "STRICT=1"]
    recipe = project.run(*args, "--dry-run", cwd=cwd).stdout
    assert "-m tools.verify_outputs" in recipe, (
        f"the Makefile's verify recipe should run tools.verify_outputs:\n{recipe}"
    )
    return project.run(*args, cwd=cwd, check=False)


def test_make_verify_passes_when_every_stage_reproduces(project: Project):
    try:
        result = make_verify(project, project.root)
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        assert parse_repro(result.stdout).ran == set(STAGES)  # --force: every stage ran
        assert result.stdout.strip().splitlines()[-1].startswith("Reproducibility check passed")
    finally:
        project.reset()


def test_make_verify_names_the_stage_and_file_of_a_wrong_hash(project: Project):
    copy = project.base / "wrong-hash"
    project.git("clone", "--quiet", "--branch", "main", project.root, copy)
    lock = yaml.safe_load((copy / "dvc.lock").read_text(encoding="utf-8"))
    (model,) = [o for o in lock["stages"]["train"]["outs"] if o["path"].endswith("model.keras")]
    right, wrong = model["md5"], "0123456789abcdef0123456789abcdef"
    text = (copy / "dvc.lock").read_text(encoding="utf-8")
    assert text.count(right) == 3  # the train stage's out, the evaluate and export stages' deps
    first = text.index(right, text.index("\n  train:"))  # edit the train stage's out only
    (copy / "dvc.lock").write_text(
        text[:first] + wrong + text[first + len(right) :], encoding="utf-8"
    )
    project.git("commit", "--quiet", "--all", "-m", "a wrong hash", cwd=copy)

    result = make_verify(project, copy)

    assert result.returncode != 0, result.stdout
    report = result.stderr[result.stderr.find("REPRODUCIBILITY CHECK FAILED") :]
    assert report, result.stderr
    header, *lines = report.splitlines()[1:]
    assert header.startswith("What differs"), report
    listed = itertools.takewhile(lambda line: line.startswith("  "), lines)
    differences = [line.strip() for line in listed]
    assert differences == [
        f"dvc.lock: stage 'train': out {model['path']}: md5 {wrong} -> {right}"
    ], result.stderr
