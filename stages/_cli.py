"""What every stage module shares: argument parsing and turning bad input into exit code 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from digits.errors import PipelineError


def parser(doc: str | None) -> argparse.ArgumentParser:
    summary = (doc or "").strip().splitlines()[0] if doc else None
    result = argparse.ArgumentParser(description=summary)
    result.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    return result


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call a stage's main; a PipelineError becomes one clear message on stderr and exit 1."""
    try:
        return main(argv)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
