"""What every stage module shares: argument parsing, removing what a killed run left, and turning
bad input into exit code 1 and an interruption into a clean stop (temp files removed, the
previous outputs kept)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from digits.errors import DigitsError
from digits.files import describe_os_error, remove_leftover_temps


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """The stage's argument parser, with --params; its description (what --help shows first) is
    the whole first paragraph of `doc`, the stage module's docstring."""
    result = argparse.ArgumentParser(description=first_paragraph(doc))
    result.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    return result


def first_paragraph(doc: str | None) -> str | None:
    """The text up to the first blank line, on one line: "Stage x: a -> b.\n\nMore" -> "Stage
    x: a -> b." (argparse wraps it to the terminal's width)."""
    if not doc or not doc.strip():
        return None
    return " ".join(doc.strip().split("\n\n")[0].split())


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call a stage's main; a DigitsError or an OSError (a full disk, a file too large: the
    writers name the output it hit) becomes one clear message on stderr and exit 1.

    SIGTERM (what `kill` and process managers send) is turned into an exception like Ctrl+C's
    SIGINT, so that the atomic writers' clean-up runs on both. First, the temps a killed run
    left beside any path the stage is given are removed (see `remove_killed_runs_temps`).
    """
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        remove_killed_runs_temps(sys.argv[1:] if argv is None else argv)
        return main(argv)
    except DigitsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # e.g. ENOSPC from mkstemp: one line, not a traceback
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the previous outputs are kept", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def remove_killed_runs_temps(argv: Sequence[str]) -> None:
    """Remove the atomic writers' temps whose process has ended from the folder of every path in
    `argv` (inputs too: every stage names a path in data/, so a SIGKILL of any stage leaves
    nothing there after the next run of any stage, even when DVC finds that one up to date)."""
    folders = dict.fromkeys(Path(arg).parent for arg in argv if not arg.startswith("-"))
    for folder in folders:
        for removed in remove_leftover_temps(folder):
            print(f"removed {removed}, left by a run that was killed", file=sys.stderr)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
