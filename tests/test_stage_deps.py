"""dvc.yaml's code deps are exactly what each stage imports, so `dvc status` cannot go stale.

DVC reruns a stage when one of its deps changes. A project module a stage imports but does not
list (directly or through another module) would let its results go stale without `dvc status`
saying so; one it lists but does not import would rerun it for nothing. The import graph is read
from the source (tests/helpers/import_graph.py); this test compares it with dvc.yaml, stage by
stage.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers.import_graph import PROJECT, imported_names, project_imports

# Both pipelines: the root one and the app's model's (its paths read from the root too: wdir ..).
PIPELINES = ("dvc.yaml", "app-model/dvc.yaml")
STAGES = {
    name: spec
    for pipeline in PIPELINES
    for name, spec in yaml.safe_load((PROJECT / pipeline).read_text(encoding="utf-8"))[
        "stages"
    ].items()
}
CODE_DIRS = ("digits", "stages")


def entry_module(stage: str) -> str:
    """The module that the stage's command runs: `python -m stages.train ...` -> stages.train."""
    match = re.match(r"python -m ([\w.]+)", STAGES[stage]["cmd"])
    assert match, f"stage {stage}: its cmd does not start with `python -m <module>`"
    return match.group(1)


def listed_code(stage: str) -> set[Path]:
    return {
        Path(dep)
        for dep in STAGES[stage].get("deps", [])
        if dep.endswith(".py") and Path(dep).parts[0] in CODE_DIRS
    }


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_code_deps_are_exactly_the_modules_the_stage_imports(stage: str) -> None:
    imported = project_imports(entry_module(stage))
    listed = listed_code(stage)
    missing = sorted(map(str, imported - listed))
    extra = sorted(map(str, listed - imported))
    should_be = f"its code deps should be {sorted(map(str, imported))}"
    assert not missing, f"dvc.yaml stage {stage!r}: missing deps {missing}; {should_be}"
    assert not extra, f"dvc.yaml stage {stage!r}: deps never imported {extra}; {should_be}"


def test_the_app_pipeline_runs_at_the_project_root() -> None:
    app = yaml.safe_load((PROJECT / "app-model/dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert app, "app-model/dvc.yaml has no stages"
    assert {spec.get("wdir") for spec in app.values()} == {".."}
    assert not set(app) & set(yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"])


def test_every_stage_module_is_a_stage() -> None:
    modules = {f"stages.{path.stem}" for path in (PROJECT / "stages").glob("[!_]*.py")}
    assert modules == {entry_module(stage) for stage in STAGES}


# The app's model (README: "The app's model") is built by the pipeline's own stage modules: its
# stages must read what the pipeline's read, except the model file and the recipe.
APP_RECIPE = "app-model/recipe.yaml"
APP_STAGES = {"train-app": "train", "evaluate-app": "evaluate"}


def model_path(stage: str) -> str:
    match = re.search(r"--model (\S+)", STAGES[stage]["cmd"])
    assert match, f"stage {stage}: no --model in its cmd"
    return match.group(1)


def out_options(stage: str) -> list[dict]:
    """Each out's options (cache, persist), in order."""
    return [next(iter(out.values())) for out in STAGES[stage]["outs"]]


@pytest.mark.parametrize(("app_stage", "stage"), APP_STAGES.items())
def test_the_app_stages_mirror_the_pipeline_stages(app_stage: str, stage: str) -> None:
    assert entry_module(app_stage) == entry_module(stage)
    rename = {model_path(stage): model_path(app_stage)}
    expected = [rename.get(dep, dep) for dep in STAGES[stage]["deps"]]
    if stage == "train":  # the recipe instead of params.yaml's train section
        assert f"--params {APP_RECIPE}" in STAGES[app_stage]["cmd"]
        expected.insert(1, APP_RECIPE)
        assert "params" not in STAGES[app_stage], "the recipe is a dep, not params columns"
    else:  # evaluate-app reads params.yaml's evaluate section, like evaluate
        assert "--params" not in STAGES[app_stage]["cmd"]
        assert STAGES[app_stage]["params"] == STAGES[stage]["params"]
    assert STAGES[app_stage]["deps"] == expected
    assert out_options(app_stage) == out_options(stage)
    assert all(options.get("persist") for options in out_options(app_stage))


def test_the_app_recipe_is_a_complete_train_section() -> None:
    from digits.params import TrainParams, load_section

    recipe = load_section(PROJECT / APP_RECIPE, "train", TrainParams)  # every key, valid
    pipeline = load_section(PROJECT / "params.yaml", "train", TrainParams)
    assert recipe != pipeline, "the app's recipe is the pipeline's model again"
    assert yaml.safe_load((PROJECT / APP_RECIPE).read_text(encoding="utf-8")).keys() == {"train"}


# The analysis itself, on a scratch package: what it must find, and what it must not.


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_lazy_relative_and_transitive_imports_are_found(tmp_path: Path) -> None:
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/entry.py", "import os\nfrom pkg import top\n")
    write(tmp_path, "pkg/top.py", "def f():\n    from .lazy import g\n    return g\n")
    write(
        tmp_path,
        "pkg/lazy.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.sub.deep\n",
    )
    write(tmp_path, "pkg/sub/__init__.py", "")
    write(tmp_path, "pkg/sub/deep.py", "from ..top import f\n")
    write(tmp_path, "pkg/unused.py", "")

    found = project_imports("pkg.entry", tmp_path)

    assert found == {
        Path(name)
        for name in (
            "pkg/__init__.py",
            "pkg/entry.py",
            "pkg/top.py",
            "pkg/lazy.py",
            "pkg/sub/__init__.py",
            "pkg/sub/deep.py",
        )
    }


def test_names_imported_from_a_module_are_not_taken_for_submodules(tmp_path: Path) -> None:
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/a.py", "from pkg.b import helper\n")
    write(tmp_path, "pkg/b.py", "def helper(): ...\n")
    assert imported_names(tmp_path / "pkg/a.py", "pkg.a") == {"pkg.b", "pkg.b.helper"}
    assert project_imports("pkg.a", tmp_path) == {
        Path("pkg/__init__.py"),
        Path("pkg/a.py"),
        Path("pkg/b.py"),
    }
