"""Fail if the pipeline's results in the working tree differ from the committed ones.

Run after `dvc repro --force --all-pipelines` (`make verify` does both): if every stage
reproduced its outputs bit for bit, both locks (dvc.lock, app-model/dvc.lock), metrics/ and
plots/ are exactly as committed. Otherwise this says what
differs, so a failed check can be acted on without digging through a diff:

    dvc.lock: stage 'train': out data/model/model.keras: md5 7bf20bcb… -> c945d6eb…
    metrics/evaluate.json: test.accuracy: 0.9808 -> 0.9811
    plots/train/history.csv: content differs

Exit status 0 with one line when nothing differs, 1 with the report (on stderr) when something
does, 2 when the check itself cannot run (not a git work tree, unreadable dvc.lock).

The committed results are promised bit for bit on the reference platform only: Linux x86-64,
with tensorflow-cpu and the other locked versions (docs/install.md, "Platforms").
Elsewhere the last bits may differ: the report then says that this is not the reference
platform, lists what differs for information, and the exit status is 0 (with --strict: 1, as
on the reference platform).

Usage: python -m tools.verify_outputs [--rev REV] [--strict]   (compares with REV, default HEAD)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

LOCK_FILES = ("dvc.lock", "app-model/dvc.lock")  # the pipeline's and the app model's
CHECKED_PATHS = (*LOCK_FILES, "metrics", "plots")
# What dvc.lock records about each dep and out; any change in one of these is a difference.
HASH_FIELDS = ("md5", "size", "nfiles", "hash")
METRICS_SUFFIXES = (".json", ".yaml", ".yml")


REFERENCE_PLATFORM = "Linux x86-64"


def this_platform() -> str:
    return f"{platform.system()} {platform.machine()}"


def on_reference_platform() -> bool:
    """Linux x86-64, where the committed results are made (tensorflow-cpu: pyproject.toml)."""
    return sys.platform == "linux" and platform.machine() == "x86_64"


class CheckError(Exception):
    """The check cannot run: the message says why."""


def git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)


def repo_root(start: Path) -> Path:
    result = git(start, "rev-parse", "--show-toplevel")
    if result.returncode != 0:
        raise CheckError(f"{start} is not inside a git work tree")
    return Path(result.stdout.decode().strip())


def committed_bytes(root: Path, rev: str, path: str) -> bytes | None:
    """The file's content at `rev`, or None if it is not there."""
    result = git(root, "show", f"{rev}:{path}")
    return result.stdout if result.returncode == 0 else None


def changed_paths(root: Path, rev: str) -> list[str]:
    """Files under CHECKED_PATHS that differ from `rev`: modified, added, deleted or untracked."""
    diff = git(root, "diff", "--name-only", "-z", "--no-renames", rev, "--", *CHECKED_PATHS)
    if diff.returncode != 0:
        raise CheckError(f"git diff against {rev} failed: {diff.stderr.decode().strip()}")
    untracked = git(root, "ls-files", "-z", "--others", "--exclude-standard", "--", *CHECKED_PATHS)
    names = diff.stdout.decode().split("\0") + untracked.stdout.decode().split("\0")
    return sorted({name for name in names if name})


# dvc.lock


def _load_yaml(data: bytes | None, what: str) -> Any:
    if data is None:
        return None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as error:
        raise CheckError(f"{what} is not valid YAML: {error}") from error


def _entries(stage: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in stage.get(kind) or []}


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings as dotted keys: {'a': {'b': 1}} -> ('a.b', 1). Lists stay values."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    return json.dumps(value) if not isinstance(value, str) else value


def _field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{field} {_short(old.get(field))} -> {_short(new.get(field))}"
        for field in HASH_FIELDS
        if old.get(field) != new.get(field)
    )


def diff_lock(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """One line per difference between two parsed dvc.lock files, named by stage and path."""
    old_stages = (old or {}).get("stages") or {}
    new_stages = (new or {}).get("stages") or {}
    lines = []
    for name in sorted(old_stages.keys() - new_stages.keys()):
        lines.append(f"stage '{name}': in the committed lock only")
    for name in sorted(new_stages.keys() - old_stages.keys()):
        lines.append(f"stage '{name}': not in the committed lock")
    for name in [n for n in new_stages if n in old_stages]:  # pipeline order
        before, after = old_stages[name], new_stages[name]
        where = f"stage '{name}'"
        if before.get("cmd") != after.get("cmd"):
            lines.append(f"{where}: cmd {_short(before.get('cmd'))} -> {_short(after.get('cmd'))}")
        for kind, label in (("deps", "dep"), ("outs", "out")):
            old_entries, new_entries = _entries(before, kind), _entries(after, kind)
            for path in sorted(old_entries.keys() | new_entries.keys()):
                if path not in new_entries:
                    lines.append(f"{where}: {label} {path}: in the committed lock only")
                elif path not in old_entries:
                    lines.append(f"{where}: {label} {path}: not in the committed lock")
                elif changes := _field_changes(old_entries[path], new_entries[path]):
                    lines.append(f"{where}: {label} {path}: {changes}")
        old_params = dict(_flatten(before.get("params") or {}))
        new_params = dict(_flatten(after.get("params") or {}))
        for key in sorted(old_params.keys() | new_params.keys()):
            if old_params.get(key) != new_params.get(key):
                lines.append(
                    f"{where}: param {key}: "
                    f"{_short(old_params.get(key))} -> {_short(new_params.get(key))}"
                )
    return lines


# metrics and plots


def diff_values(old: Any, new: Any) -> list[str]:
    """One line per dotted key whose value differs between two parsed metrics files."""
    old_values, new_values = dict(_flatten(old)), dict(_flatten(new))
    return [
        f"{key or '(whole file)'}: {_short(old_values.get(key))} -> {_short(new_values.get(key))}"
        for key in sorted(old_values.keys() | new_values.keys())
        if old_values.get(key) != new_values.get(key)
    ]


def _parse_metrics(data: bytes, path: str) -> Any:
    if path.endswith(".json"):
        return json.loads(data)
    return yaml.safe_load(data)


def diff_file(path: str, old: bytes | None, new: bytes | None) -> list[str]:
    """What differs in one checked file other than dvc.lock."""
    if old is None:
        return [f"{path}: not committed"]
    if new is None:
        return [f"{path}: committed but missing from the working tree"]
    if path.startswith("metrics/") and path.endswith(METRICS_SUFFIXES):
        try:
            lines = diff_values(_parse_metrics(old, path), _parse_metrics(new, path))
        except (ValueError, yaml.YAMLError):
            lines = []
        if lines:
            return [f"{path}: {line}" for line in lines]
    if old == new:
        return []
    try:
        old_lines, new_lines = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        return [f"{path}: content differs ({len(old):,} -> {len(new):,} bytes)"]
    changed = sum(a != b for a, b in zip(old_lines, new_lines, strict=False))
    changed += abs(len(old_lines) - len(new_lines))
    return [f"{path}: content differs ({changed} of {max(len(old_lines), len(new_lines))} lines)"]


def report(root: Path, rev: str) -> list[str]:
    """Every difference between the working tree and `rev` in the locks, metrics/ and plots/."""
    lines = []
    for path in changed_paths(root, rev):
        old = committed_bytes(root, rev, path)
        file = root / path
        new = file.read_bytes() if file.is_file() else None
        if path in LOCK_FILES:
            lock_lines = diff_lock(_load_yaml(old, f"{rev}:{path}"), _load_yaml(new, path))
            lines += [f"{path}: {line}" for line in lock_lines]
            if not lock_lines and old != new:
                lines.append(f"{path}: text differs, recorded hashes are the same")
        else:
            lines += diff_file(path, old, new)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    arguments.add_argument("--rev", default="HEAD", help="git revision to compare with (HEAD)")
    arguments.add_argument(
        "--strict", action="store_true", help="fail on a difference on any platform"
    )
    args = arguments.parse_args(argv)
    try:
        root = repo_root(Path.cwd())
        if git(root, "rev-parse", "--verify", "--quiet", f"{args.rev}^{{commit}}").returncode:
            raise CheckError(f"{args.rev} is not a git revision")
        differences = report(root, args.rev)
    except CheckError as error:
        print(f"verify_outputs: {error}", file=sys.stderr)
        return 2
    checked = ", ".join(p if p in LOCK_FILES else f"{p}/" for p in CHECKED_PATHS)
    if not differences:
        print(f"Reproducibility check passed: {checked} match {args.rev}.")
        return 0
    if not (args.strict or on_reference_platform()):
        print(
            f"Not the reference platform: this is {this_platform()}; the committed results are "
            f"promised bit for bit on {REFERENCE_PLATFORM} only (docs/install.md).\n"
            f"The pipeline ran. What differs from {args.rev} ({checked}), committed -> here, "
            f"for information (not an error):"
        )
        for line in differences:
            print(f"  {line}")
        return 0
    print(
        f"REPRODUCIBILITY CHECK FAILED: the pipeline did not reproduce the results committed "
        f"at {args.rev}.\nWhat differs ({checked}), committed -> reproduced:",
        file=sys.stderr,
    )
    for line in differences:
        print(f"  {line}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
