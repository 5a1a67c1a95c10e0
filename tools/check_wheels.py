"""Check that every package in requirements.lock has a wheel for every supported platform.

For each locked package this asks the package index for the list of its files (the simple API
as JSON, PEP 691: names only, no wheel is downloaded) and checks, for every platform and
Python version of the platform table (docs/install.md) that the package's environment marker
includes, that one of the locked version's wheels is installable there: its tags meet the tags
that platform and interpreter accept (packaging.tags; a pure-Python `py3-none-any` wheel fits
everywhere).

    python -m tools.check_wheels [--lock requirements.lock] [--index https://pypi.org/simple]

A package with no wheel on the index at all but pure Python (SDIST_ONLY, each with the reason)
needs its sdist instead: pip builds it on any platform.

Exit status 0 with a summary when every wheel is there, 1 naming each package, version,
platform and Python version without one, 2 when the lock cannot be read or the index asked.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from packaging import tags
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

INDEX = "https://pypi.org/simple"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
TIMEOUT_SECONDS = 30
WORKERS = 8
PYTHONS = ((3, 11), (3, 12), (3, 13))
# The oldest glibc and macOS each platform promises (docs/install.md, "Platforms").
GLIBC_MINOR = 35  # glibc 2.35: Ubuntu 22.04, Debian 12 (2.36) and newer
MACOS = (14, 0)  # macOS 14 Sonoma: GitHub's macos-14 runner and newer
# Packages PyPI has no wheel of, built from their sdist by pip; each must be pure Python.
SDIST_ONLY = {
    "antlr4-python3-runtime": "pure Python (hydra-core, for DVC, pins 4.9.*, which has no wheel)",
}


def manylinux(arch: str, glibc_minor: int = GLIBC_MINOR) -> tuple[str, ...]:
    """The manylinux platform tags a glibc 2.`glibc_minor` machine accepts, newest first."""
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    names = []
    for minor in range(glibc_minor, 4, -1):
        names.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy and (arch == "x86_64" or minor == 17):
            names.append(f"{legacy[minor]}_{arch}")
    return tuple(names)


@dataclass(frozen=True)
class Platform:
    name: str
    sys_platform: str
    machine: str  # platform.machine(), as environment markers see it
    system: str  # platform.system()
    platform_tags: tuple[str, ...]


PLATFORMS = (
    Platform("Linux x86-64", "linux", "x86_64", "Linux", manylinux("x86_64")),
    Platform("Linux aarch64", "linux", "aarch64", "Linux", manylinux("aarch64")),
    Platform("macOS arm64", "darwin", "arm64", "Darwin", tuple(tags.mac_platforms(MACOS, "arm64"))),
)


@dataclass(frozen=True)
class Target:
    platform: Platform
    python: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.platform.name}, Python {self.python[0]}.{self.python[1]}"

    def marker_environment(self) -> dict[str, str]:
        version = f"{self.python[0]}.{self.python[1]}"
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{version}.0",
            "os_name": "posix",
            "platform_machine": self.platform.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": self.platform.system,
            "platform_version": "",
            "python_full_version": f"{version}.0",
            "python_version": version,
            "sys_platform": self.platform.sys_platform,
            "extra": "",
        }

    def accepted_tags(self) -> frozenset[tags.Tag]:
        """Every wheel tag CPython `python` on this platform installs."""
        interpreter = f"cp{self.python[0]}{self.python[1]}"
        platforms = self.platform.platform_tags
        return frozenset(
            chain(
                tags.cpython_tags(self.python, platforms=platforms),
                tags.compatible_tags(self.python, interpreter, platforms),
            )
        )


TARGETS = tuple(Target(platform, python) for platform in PLATFORMS for python in PYTHONS)


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    version: Version

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    def applies_to(self, target: Target) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate(target.marker_environment())


class CheckError(Exception):
    """The check cannot run: the message says why."""


def read_lock(text: str) -> list[Pin]:
    """The `name==version ; marker` lines of a requirements file (hashes and comments dropped)."""
    logical = text.replace("\\\n", " ").splitlines()
    pins = []
    for line in logical:
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        line = " ".join(word for word in line.split() if not word.startswith("--hash="))
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise CheckError(f"not a requirement: {line!r}: {error}") from error
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise CheckError(f"not pinned with ==: {line!r}")
        pins.append(Pin(requirement, Version(specifiers[0].version)))
    return pins


def wheel_tags(filenames: Iterable[str], name: str, version: Version) -> list[frozenset[tags.Tag]]:
    """The tag sets of the wheels of `name` `version` among an index's file names."""
    found = []
    for filename in filenames:
        if not filename.endswith(".whl"):
            continue
        try:
            wheel_name, wheel_version, _, wheel_tag_set = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        if wheel_name == name and wheel_version == version:
            found.append(wheel_tag_set)
    return found


def has_sdist(filenames: Iterable[str], name: str, version: Version) -> bool:
    for filename in filenames:
        try:
            if parse_sdist_filename(filename) == (name, version):
                return True
        except InvalidSdistFilename:
            continue
    return False


def missing_wheels(
    pins: Sequence[Pin], files: Callable[[str], list[str]], targets: Sequence[Target] = TARGETS
) -> list[str]:
    """One line per (package, target) that needs a wheel the index does not have."""
    accepted = {target: target.accepted_tags() for target in targets}
    problems = []
    for pin in pins:
        needed = [target for target in targets if pin.applies_to(target)]
        if not needed:
            continue
        listed = files(pin.name)
        if pin.name in SDIST_ONLY:
            if not has_sdist(listed, pin.name, pin.version):
                problems.append(f"{pin.name} {pin.version}: no sdist (and no wheel is expected)")
            continue
        wheels = wheel_tags(listed, pin.name, pin.version)
        for target in needed:
            if not any(tag_set & accepted[target] for tag_set in wheels):
                problems.append(f"{pin.name} {pin.version}: no wheel for {target}")
    return problems


def index_files(index: str, timeout: float = TIMEOUT_SECONDS) -> Callable[[str], list[str]]:
    """A function from a project name to the file names the index lists for it."""

    def files(name: str) -> list[str]:
        request = urllib.request.Request(
            f"{index.rstrip('/')}/{name}/", headers={"Accept": PYPI_JSON}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.load(response)
        except (OSError, ValueError) as error:
            raise CheckError(f"cannot ask {index} about {name}: {error}") from error
        return [file["filename"] for file in answer.get("files", [])]

    return files


def prefetch(files: Callable[[str], list[str]], names: Iterable[str]) -> dict[str, list[str]]:
    """Every project's file list, asked a few at a time."""
    unique = sorted(set(names))
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(zip(unique, pool.map(files, unique), strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    arguments.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    arguments.add_argument("--index", default=INDEX, help=f"simple API root ({INDEX})")
    args = arguments.parse_args(argv)
    try:
        pins = read_lock(args.lock.read_text(encoding="utf-8"))
        listing = prefetch(index_files(args.index), (pin.name for pin in pins))
    except (OSError, CheckError) as error:
        print(f"check_wheels: {error}", file=sys.stderr)
        return 2
    problems = missing_wheels(pins, listing.__getitem__)
    platforms = ", ".join(platform.name for platform in PLATFORMS)
    pythons = ", ".join(f"{major}.{minor}" for major, minor in PYTHONS)
    if problems:
        print(f"MISSING WHEELS in {args.lock} ({len(problems)}):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    checks = sum(pin.applies_to(t) for pin in pins for t in TARGETS if pin.name not in SDIST_ONLY)
    print(
        f"Every package in {args.lock} ({len(pins)}) has a wheel on {args.index} for each of "
        f"{platforms} x Python {pythons} where its marker includes it ({checks} checks)."
    )
    for pin in pins:
        if pin.name in SDIST_ONLY:
            print(f"  except {pin.name} {pin.version}: sdist only, {SDIST_ONLY[pin.name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
