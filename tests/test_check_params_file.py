"""tools/check_params_file.py: a params file whose YAML aliases expand past the bound is refused,
in bounded time and memory, before `make repro`, `make app-model` and `make verify` start DVC."""

from __future__ import annotations

import io
import itertools
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from digits.params import MAX_VALUES
from tools.check_params_file import TooManyValues, check, expanded_values

PROJECT = Path(__file__).parents[1]


def alias_bomb(levels: int) -> str:
    """10**levels scalars once expanded, in about 60 bytes a level (a "billion laughs")."""
    names = [chr(ord("a") + level) for level in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['x'] * 10)}]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    return "\n".join(lines) + "\n"


def count(text: str, limit: int = MAX_VALUES) -> int:
    return expanded_values(YAML(typ="safe", pure=True).parse(io.StringIO(text)), limit)


def test_aliases_count_as_often_as_they_repeat_their_anchor() -> None:
    # {a: [1, 2], b: [1, 2], c: {k: [1, 2]}}: 3 keys, 2 maps, 3 lists of 2 -> 3 + 2 + 3 * 3 + 1
    assert count("a: &x [1, 2]\nb: *x\nc: {k: *x}\n") == 15
    assert count("a: &x {k: v}\nb: *x\n<<: *x\n") == 1 + 3 * 3 + 3


def test_the_bound_is_inclusive() -> None:
    text = "a: &x [1, 2]\nb: *x\n"  # 9 values
    assert count(text, limit=9) == 9
    with pytest.raises(TooManyValues, match="expands to more than 8 values"):
        count(text, limit=8)


def test_the_committed_params_files_pass_quietly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_params_file", "params.yaml", "app-model/recipe.yaml"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_an_alias_bomb_is_refused_in_one_line_in_bounded_time_and_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "params.yaml"
    bomb.write_text(alias_bomb(9), encoding="utf-8")  # 10**9 values, what DVC would expand
    assert len(bomb.read_bytes()) < 600
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_params_file", str(bomb)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_memory,  # 1 GB: DVC needs over 6 GB for a tenth of this
    )
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {bomb} expands to more than {MAX_VALUES:,} values (YAML aliases repeat them); "
        "refused before DVC reads it\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: &a [1, *a]\n", "has alias *a with no complete anchor before it"),
        ("a: *nowhere\n", "has alias *nowhere with no complete anchor before it"),
        ("a: [1, 2\n", "is not valid YAML: "),
    ],
)
def test_what_cannot_be_expanded_is_refused_in_one_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    message = check(path)
    assert message is not None
    assert message.startswith(f"{path} {problem}")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("target", "dvc_command"),
    [
        ("repro", "dvc repro"),
        ("app-model", "dvc repro app-model/dvc.yaml"),
        ("verify", "dvc repro --force --all-pipelines"),
    ],
)
def test_make_checks_the_params_files_before_dvc_reads_them(target: str, dvc_command: str) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "--dry-run", "--old-file=setup", target],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    check_line = next(i for i, line in enumerate(lines) if "tools.check_params_file" in line)
    dvc_line = next(i for i, line in enumerate(lines) if line.endswith(dvc_command))
    assert check_line < dvc_line
    assert lines[check_line].endswith(
        "-m tools.check_params_file params.yaml app-model/recipe.yaml"
    )
