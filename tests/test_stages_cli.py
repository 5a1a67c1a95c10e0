"""stages/_cli.py: every stage's --help opens with the whole first paragraph of its docstring."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages._cli import argument_parser, first_paragraph

PROJECT = Path(__file__).parents[1]
STAGES = sorted(path.stem for path in (PROJECT / "stages").glob("[!_]*.py"))


def normalised(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("stage", STAGES)
def test_help_shows_the_whole_first_paragraph_of_the_docstring(stage: str) -> None:
    doc = importlib.import_module(f"stages.{stage}").__doc__
    paragraph = normalised(doc.strip().split("\n\n")[0])
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", "--help"],
        cwd=PROJECT,
        env={**os.environ, "COLUMNS": "80"},  # argparse wraps the paragraph to this width
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert paragraph.startswith(f"Stage {stage}: ")
    assert paragraph in normalised(result.stdout), result.stdout


def test_first_paragraph_stops_at_the_first_blank_line() -> None:
    doc = "Stage x: a -> b, over\n  two lines.\n\nDetails that --help leaves out.\n"
    assert first_paragraph(doc) == "Stage x: a -> b, over two lines."
    assert first_paragraph("One line.") == "One line."
    assert first_paragraph(None) is None
    assert first_paragraph("  \n") is None


def test_every_stage_parser_takes_params_with_the_default() -> None:
    parser = argument_parser("Stage x: a -> b.")
    assert parser.description == "Stage x: a -> b."
    assert parser.parse_args([]).params == "params.yaml"
