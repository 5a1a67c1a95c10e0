"""tools/ is a package run from the project root as `python -m tools.<name>`: no tool edits
sys.path (what tools and tests share lives in the library or in an importable module of tools/),
and every tool starts that way, in a fresh interpreter, as the Makefile runs it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1]
TOOLS = PROJECT / "tools"
MODULES = sorted(path.stem for path in TOOLS.glob("*.py") if path.name != "__init__.py")
# Run in their own interpreter: PyTorch is not a dependency (make bench-torch installs it there).
OWN_PYTHON = {"bench_torch": PROJECT / "build" / "torch-venv" / "bin" / "python"}


def commands(name: str) -> bool:
    """Whether the module is a command (has `if __name__ == "__main__":`), not only a library."""
    return '__name__ == "__main__"' in (TOOLS / f"{name}.py").read_text(encoding="utf-8")


def sys_path_edits(source: str) -> list[int]:
    """Line numbers where `source` touches sys.path (an assignment, a call on it, an import of
    site or a PYTHONPATH set from inside), found in the syntax tree, not the comments."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        on_sys = (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        )
        imported = isinstance(node, ast.ImportFrom) and node.module == "sys"
        if (
            on_sys
            or (imported and any(alias.name == "path" for alias in node.names))
            or (isinstance(node, ast.Constant) and node.value == "PYTHONPATH")
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_check_finds_sys_path_edits() -> None:
    assert sys_path_edits("import sys\nsys.path.insert(0, 'tests')\n") == [2]
    assert sys_path_edits("from sys import path\npath.append('x')\n") == [1]
    assert sys_path_edits("import os\nos.environ['PYTHONPATH'] = 'x'\n") == [2]
    assert sys_path_edits("import os.path\nos.path.join('a', 'b')  # sys.path\n") == []


def test_tools_is_a_package_and_no_tool_edits_sys_path() -> None:
    assert (TOOLS / "__init__.py").is_file()
    edits = {
        path.relative_to(PROJECT).as_posix(): found
        for path in sorted(TOOLS.rglob("*.py"))
        if "node_modules" not in path.parts
        and (found := sys_path_edits(path.read_text(encoding="utf-8")))
    }
    assert not edits, f"sys.path edited (file: lines): {edits}"


def test_no_tool_imports_the_tests() -> None:
    for path in sorted(TOOLS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names]
                assert not any(re.match(r"(tests|conftest|helpers)\b", n) for n in names), (
                    f"{path.name}:{node.lineno} imports from the tests"
                )


def test_the_makefile_runs_tools_as_modules() -> None:
    makefile = (PROJECT / "Makefile").read_text(encoding="utf-8")
    recipes = [line.strip() for line in makefile.splitlines() if line.startswith("\t")]
    run_by_path = [line for line in recipes if re.search(r"python\S* +tools/\w+\.py", line)]
    assert not run_by_path, run_by_path
    run = sorted(set(re.findall(r"-m tools\.(\w+)", makefile)))
    assert run, "the Makefile runs no tool"
    assert set(run) <= set(MODULES), run


@pytest.mark.parametrize("name", MODULES)
def test_every_tool_starts_as_a_module_from_the_root(name: str) -> None:
    """`python -m tools.<name> --help` in a fresh interpreter (the commands), or an import (the
    modules only imported): what the Makefile runs, without any sys.path help."""
    python = OWN_PYTHON.get(name, Path(sys.executable))
    argv = ["-m", f"tools.{name}", "--help"] if commands(name) else ["-c", f"import tools.{name}"]
    if not python.exists():  # its own venv (PyTorch) is built by its make target only: compile it
        python, argv = Path(sys.executable), ["-m", "py_compile", f"tools/{name}.py"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run = subprocess.run(
        [python, *argv], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )

    assert "Traceback" not in run.stderr, run.stderr
    if argv[1] == "py_compile":
        assert run.returncode == 0, run.stderr
    elif commands(name):
        assert "usage:" in run.stdout + run.stderr, (run.stdout, run.stderr)
        assert run.returncode in (0, 2), run.stderr  # 2: a usage line for a missing argument
    else:
        assert run.returncode == 0, run.stderr


def test_the_retired_standard_library_server_is_gone() -> None:
    """tools/stdlib_server.py (the first server, kept only to be benchmarked against) is deleted,
    with its option in the benchmark: nothing runs or names it any more."""
    assert not (TOOLS / "stdlib_server.py").exists()
    sources = [PROJECT / "Makefile", *TOOLS.glob("*.py"), *(PROJECT / "tests").glob("*.py")]
    sources += [*(PROJECT / "digits").rglob("*.py")]
    here = Path(__file__).resolve()
    naming = [p.name for p in sources if p != here and "stdlib_server" in p.read_text("utf-8")]
    assert not naming, naming
    usage = subprocess.run(
        [sys.executable, "-m", "tools.bench_serve", "--help"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "--servers" not in usage


def test_no_tool_is_over_300_lines() -> None:
    """One job per module: a tool that grows past this is doing two things."""
    long = {
        path.name: lines
        for path in sorted(TOOLS.glob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 300
    }
    assert not long, long
