"""What a newcomer meets first: `make help`, and `make test` naming missing system packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).parents[1]


def make(*args: str, cwd: Path = PROJECT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def phony_targets() -> set[str]:
    text = (PROJECT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = re.findall(r"^\.PHONY:(.*)$", text, re.MULTILINE)
    return set(line.split())


def test_make_help_lists_every_target_with_what_it_does():
    result = make("help")
    assert result.returncode == 0, result.stderr
    listed = dict(re.findall(r"^  make (\S+) +(\S.*)$", result.stdout, re.MULTILINE))
    assert set(listed) == phony_targets() - {"plots-template"}  # a step of setup
    for target in ("repro", "test", "app-model", "verify", "docs", "help"):
        assert len(listed[target]) > 15, listed[target]
    assert make().stdout == result.stdout, "plain `make` should print the help"


def without_prerequisites(tmp_path: Path) -> dict[str, str]:
    """An environment where none of the three is found: Chromium and sshd by their paths are
    taken care of by the caller; shellcheck by a PATH that has only python and make."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "awk", "sh", "cat", "cksum", "cut"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3.11").symlink_to(sys.executable)
    return {"PATH": str(bin_dir), "CHROMIUM": str(tmp_path / "no-chromium")}


def test_check_prerequisites_names_each_missing_one_and_how_to_install_it(tmp_path: Path):
    from tools import check_prerequisites

    env = without_prerequisites(tmp_path)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_prerequisites"],
        cwd=PROJECT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert f"- Chromium ({tmp_path / 'no-chromium'})" in result.stderr
    assert "- shellcheck, for" in result.stderr
    assert "Debian/Ubuntu: sudo apt-get install chromium" in result.stderr
    assert "macOS:         brew install shellcheck" in result.stderr
    sshd_missing = not os.access(check_prerequisites.SSHD, os.X_OK)
    assert ("OpenSSH server" in result.stderr) == sshd_missing


def test_make_test_stops_at_once_when_a_prerequisite_is_missing(tmp_path: Path):
    copy = tmp_path / "project"
    (copy / "tools").mkdir(parents=True)
    for name in ("Makefile", "requirements.lock", "pyproject.toml", "tools/check_prerequisites.py"):
        shutil.copy2(PROJECT / name, copy / name)
    env = without_prerequisites(tmp_path)

    started = time.monotonic()
    result = make("test", cwd=copy, **env)

    assert time.monotonic() - started < 10
    assert result.returncode != 0
    assert "make test needs" in result.stderr
    assert "- Chromium" in result.stderr
    assert not (copy / ".venv").exists(), "it set up (or tested) before checking"


def test_the_check_passes_on_a_machine_that_has_them():
    """This machine runs the whole suite, so it has them all (CI installs them)."""
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_prerequisites"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("prerequisites: all 3 found")
