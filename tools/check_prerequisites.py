"""Check the system packages `make test` needs before it starts, and say how to install each.

The test suite drives a real browser (the drawing page, the plots report), a real SSH server
(the DVC remote) and actionlint with shellcheck (the CI workflows). pip cannot install those, so
this names every one that is missing, with the Debian/Ubuntu and macOS commands, and exits 1
within a second instead of letting a dozen tests fail a quarter of an hour later.

Usage: python -m tools.check_prerequisites   (the standard library only: it runs before set-up)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Where the tests look for them (tests/chromium.py, tests/ssh_server.py read the same settings).
CHROMIUM_DEFAULT = "/usr/bin/chromium"  # Debian's; set CHROMIUM=PATH for another one
SSHD = "/usr/sbin/sshd"


def chromium_path() -> Path:
    return Path(os.environ.get("CHROMIUM") or CHROMIUM_DEFAULT)


@dataclass(frozen=True)
class Prerequisite:
    name: str
    needed_for: str
    found: Callable[[], bool]
    debian: str
    macos: str


PREREQUISITES = (
    Prerequisite(
        name=f"Chromium ({chromium_path()})",
        needed_for="the browser tests: the drawing page and the plots report",
        found=lambda: os.access(chromium_path(), os.X_OK),
        debian="sudo apt-get install chromium",
        macos=(
            "brew install --cask chromium, then "
            "export CHROMIUM=/Applications/Chromium.app/Contents/MacOS/Chromium"
        ),
    ),
    Prerequisite(
        name=f"OpenSSH server ({SSHD})",
        needed_for="the SSH remote tests (they start their own sshd on 127.0.0.1)",
        found=lambda: os.access(SSHD, os.X_OK),
        debian="sudo apt-get install openssh-server",
        macos="part of macOS: nothing to install",
    ),
    Prerequisite(
        name="shellcheck",
        needed_for="actionlint's check of the CI workflows' shell steps",
        found=lambda: shutil.which("shellcheck") is not None,
        debian="sudo apt-get install shellcheck",
        macos="brew install shellcheck",
    ),
)


def missing_report(prerequisites: tuple[Prerequisite, ...] = PREREQUISITES) -> list[str]:
    """One paragraph per missing prerequisite: what it is for and how to install it."""
    return [
        f"- {item.name}, for {item.needed_for}\n"
        f"    Debian/Ubuntu: {item.debian}\n"
        f"    macOS:         {item.macos}"
        for item in prerequisites
        if not item.found()
    ]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0]).parse_args(argv)
    missing = missing_report()
    if not missing:
        print(f"prerequisites: all {len(PREREQUISITES)} found")
        return 0
    print(
        f"make test needs {len(missing)} system package(s) that are missing:\n"
        + "\n".join(missing)
        + "\nInstall them and run make test again (README.md, Prerequisites).",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
