"""The GitHub Actions workflow: valid for actionlint, and doing what the project's CI promises.

actionlint checks the workflow's syntax, expressions, action inputs and (where shellcheck is
installed, as on GitHub's runners) the shell scripts of its `run:` steps. It comes with the dev
dependencies; a missing actionlint is a failure, not a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import sweep

PROJECT = Path(__file__).parents[1]
WORKFLOWS = PROJECT / ".github" / "workflows"
CI_WORKFLOW = WORKFLOWS / "ci.yml"


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which(
        "actionlint"
    )
    if found is None:
        pytest.fail(
            "actionlint is missing: install the dev dependencies (pip install -e '.[dev]')",
            pytrace=False,
        )
    return found


def test_workflows_pass_actionlint():
    workflows = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert workflows, f"no workflows in {WORKFLOWS}"
    result = subprocess.run(
        [actionlint(), "-no-color", *map(str, workflows)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = f"{result.stdout}{result.stderr}".strip()
    assert result.returncode == 0, report
    assert not report, report


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def runs(step: dict[str, Any]) -> list[str]:
    return [line.strip() for line in step.get("run", "").splitlines()]


def test_ci_workflow_tests_verifies_and_reports_on_pull_requests():
    workflow = yaml.safe_load(CI_WORKFLOW.read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    job = workflow["jobs"]["pipeline"]
    assert job["runs-on"] == "ubuntu-24.04"  # the reference platform, with Python 3.11
    assert job["permissions"]["pull-requests"] == "write"
    all_steps = job["steps"]
    commands = [line for step in all_steps for line in runs(step)]

    python = next(s for s in all_steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(python["with"]["python-version"]) == "3.11"
    assert python["with"]["cache"] == "pip"
    assert "requirements.lock" in python["with"]["cache-dependency-path"]
    # make setup installs from requirements.lock; make repro, make test and make verify are the
    # README's and .ci/run's commands, in that order.
    assert (
        commands.index("make repro") < commands.index("make test") < commands.index("make verify")
    )
    assert "make docs" in commands
    assert "MNIST_MIRROR" not in CI_WORKFLOW.read_text(encoding="utf-8")

    on_pull_request = [s for s in all_steps if "pull_request" in str(s.get("if", ""))]
    scripts = "\n".join(s.get("run", "") for s in on_pull_request)
    assert re.search(r"dvc metrics diff \S+ --md", scripts)
    assert re.search(r"dvc params diff \S+ --md", scripts)
    assert re.search(r"dvc plots diff \S+ -o build/plots-diff", scripts)
    assert "gh pr comment" in scripts
    (upload,) = [s for s in on_pull_request if "upload-artifact@" in s.get("uses", "")]
    assert upload["with"]["path"] == "build/plots-diff"
    (comment,) = [s for s in on_pull_request if "gh pr comment" in s.get("run", "")]
    assert comment["env"]["GH_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"


def test_fast_tests_run_on_every_platform_and_python_of_the_table():
    """macOS arm64, Linux aarch64 and x86-64; Python 3.11 to 3.13; verify on the reference only."""
    workflow = yaml.safe_load(CI_WORKFLOW.read_text(encoding="utf-8"))
    job = workflow["jobs"]["fast-tests"]
    cells = {(cell["os"], str(cell["python"])) for cell in job["strategy"]["matrix"]["include"]}
    assert {os for os, _ in cells} == {"macos-14", "ubuntu-24.04-arm", "ubuntu-24.04"}
    assert {python for _, python in cells} == {"3.11", "3.12", "3.13"}
    assert ("ubuntu-24.04", "3.11") not in cells  # the pipeline job's platform
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job["env"]["PYTHON"] == "python${{ matrix.python }}"
    (python,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert python["with"]["python-version"] == "${{ matrix.python }}"
    commands = [line for step in job["steps"] for line in runs(step)]
    assert commands == ["make setup", "make test-fast"]
    assert make_recipe("test-fast")[-1] == '$(BIN)/python -m pytest -m "not slow"'


def make_recipe(target: str) -> list[str]:
    """The recipe lines of `target` in the Makefile."""
    lines = (PROJECT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}\s*:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_one_definition_of_the_reproducibility_check():
    """`make verify` holds the check; .ci/run and the workflow call it."""
    recipe = make_recipe("verify")
    assert any("dvc repro --force" in line for line in recipe), recipe
    assert any("-m tools.verify_outputs" in line for line in recipe), recipe
    assert recipe.index(next(r for r in recipe if "dvc repro" in r)) < recipe.index(
        next(r for r in recipe if "verify_outputs" in r)
    )
    assert "make verify" in (PROJECT / ".ci" / "run").read_text(encoding="utf-8")
    workflow = yaml.safe_load(CI_WORKFLOW.read_text(encoding="utf-8"))
    assert "make verify" in [line for step in steps(workflow) for line in runs(step)]


SWEEP_WORKFLOW = WORKFLOWS / "sweep.yml"


def test_the_sweep_workflow_takes_its_jobs_from_tools_experiments():
    """One job per experiment from `tools/experiments.py matrix`, no second list in YAML; each
    job pulls the data, runs and pushes its experiment; the last rebuilds the docs table."""
    workflow = yaml.safe_load(SWEEP_WORKFLOW.read_text(encoding="utf-8"))
    text = yaml.safe_dump(workflow)  # without the comments, which give examples

    for name in sweep.EXPERIMENTS:
        assert name not in text, f"{name} is listed in the workflow too"
    jobs = workflow["jobs"]
    plan_lines = [line for step in jobs["plan"]["steps"] for line in runs(step)]
    assert any("-m tools.experiments matrix" in line for line in plan_lines), plan_lines

    worker = jobs["experiment"]
    assert worker["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert worker["runs-on"] == "${{ matrix.runner }}"
    assert worker["permissions"] == {"contents": "write"}
    assert workflow["permissions"] == {"contents": "read"}
    lines = [line for step in worker["steps"] for line in runs(step)]
    order = [
        "make setup",
        "dvc pull --with-deps preprocess",
        "tools.experiments run",
        "dvc exp push",
    ]
    found = [next(i for i, line in enumerate(lines) if part in line) for part in order]
    assert found == sorted(found), lines

    table_lines = [line for step in jobs["table"]["steps"] for line in runs(step)]
    assert any("dvc exp pull" in line for line in table_lines), table_lines
    assert any("tools.experiments table --timings" in line for line in table_lines), table_lines
    (upload,) = [s for s in jobs["table"]["steps"] if "upload-artifact@" in s.get("uses", "")]
    assert upload["with"]["path"] == "docs/experiments.md"  # where the table is written
    assert jobs["table"]["needs"] == ["plan", "experiment"]


def test_ci_runs_the_readme_commands_in_a_newcomers_order():
    """`make repro` then `make test` (the tests must pass on a work tree the pipeline has run
    in: a folder it creates once broke the lint), then the docs, the lock and `make verify`."""
    lines = [
        line.split(";")[-1].strip()
        for line in (PROJECT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.startswith("step make ")
    ]
    assert lines == [
        "make repro",
        "make test",
        "make docs",
        "make check-lock",
        "make check-wheels",
        "make verify",
    ]
    assert make_recipe("docs") == ["NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict"]
