"""stages/_cli.py: every stage's --help opens with the whole first paragraph of its docstring;
every stage starts by removing the temps of a killed run, and ends on an OSError (a full disk, a
file too large) with one line naming the output."""

from __future__ import annotations

import errno
import importlib
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers.synthetic import encode_idx, synthetic_digits

from digits.dataset import SPLIT_FILES
from stages import decode as decode_stage
from stages._cli import argument_parser, first_paragraph, run

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


def killed_writer_temp(folder: Path, name: str) -> Path:
    """What a writer of `folder/name` killed by SIGKILL mid-write leaves: its temp folder."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = (
        "import os, signal, sys\n"
        "from digits.files import atomic_directory\n"
        "with atomic_directory(sys.argv[1]) as temp:\n"
        "    (temp / 'train.npz').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    before = set(folder.iterdir())
    result = subprocess.run(
        [sys.executable, "-c", writer, str(folder / name)], cwd=PROJECT, timeout=60
    )
    assert result.returncode == -signal.SIGKILL
    (leftover,) = set(folder.iterdir()) - before
    return leftover


def write_raw_files(raw: Path, count: int = 20) -> None:
    raw.mkdir(parents=True)
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images, labels = synthetic_digits(count, seed=len(split))
        (raw / images_name).write_bytes(encode_idx(images))
        (raw / labels_name).write_bytes(encode_idx(labels))


def test_any_stage_removes_the_temps_of_a_killed_run_and_only_those(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    killed = killed_writer_temp(data, "processed")  # a preprocess killed by SIGKILL
    assert re.fullmatch(r"\.processed\.[0-9]+\.[a-z0-9_]{8}\.tmp", killed.name)
    running = data / f".processed.{os.getpid()}.abcd1234.tmp"  # a stage still running
    others = [running, data / ".notes.abcd1234.tmp", data / "processed.1.abcd1234.tmp"]
    for path in others:
        path.write_bytes(b"not a leftover of a killed run")
    write_raw_files(data / "raw")

    # decode writes data/interim: nothing of preprocess's, yet it is a run of a stage
    assert run(decode_stage.main, [str(data / "raw"), str(data / "interim")]) == 0

    assert not killed.exists()
    assert all(path.exists() for path in others)
    assert f"removed {killed}, left by a run that was killed" in capsys.readouterr().err
    assert sorted(path.name for path in data.iterdir()) == sorted(
        ["interim", "raw", *(path.name for path in others)]
    )


def limit_file_size_and_memory() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))  # writes past 16 KB: EFBIG
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_a_file_too_large_is_one_line_naming_the_output_and_leaves_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    write_raw_files(data / "raw", count=100)  # data/interim/train.npz: about 80 KB
    result = subprocess.run(
        [sys.executable, "-m", "stages.decode", str(data / "raw"), str(data / "interim")],
        cwd=PROJECT,
        preexec_fn=limit_file_size_and_memory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert (
        result.stderr == f"error: cannot write {data}/interim/train.npz: File too large (EFBIG)\n"
    )
    assert sorted(path.name for path in data.iterdir()) == ["raw"]  # no output, no temp


def test_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing(
    tmp_path, monkeypatch, capsys
) -> None:
    data = tmp_path / "data"
    write_raw_files(data / "raw")

    def temp_on_a_full_disk(prefix: str, suffix: str, dir: str) -> tuple[int, str]:
        # the kernel's own ENOSPC: every write to /dev/full fails with it
        path = Path(dir) / f"{prefix}devfull0{suffix}"
        path.symlink_to("/dev/full")
        return os.open(path, os.O_WRONLY), str(path)

    monkeypatch.setattr(tempfile, "mkstemp", temp_on_a_full_disk)
    assert run(decode_stage.main, [str(data / "raw"), str(data / "interim")]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot write {data}/interim/train.npz: No space left on device (ENOSPC)\n"
    )
    assert sorted(path.name for path in data.iterdir()) == ["raw"]


def test_an_os_error_outside_a_write_is_one_line_too(tmp_path, monkeypatch, capsys) -> None:
    data = tmp_path / "data"
    write_raw_files(data / "raw")

    def no_space(prefix: str, suffix: str, dir: str) -> tuple[int, str]:
        path = Path(dir) / f"{prefix}abcd1234{suffix}"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(tempfile, "mkstemp", no_space)
    assert run(decode_stage.main, [str(data / "raw"), str(data / "interim")]) == 1
    assert capsys.readouterr().err == (
        f"error: {data}/interim/train.npz: No space left on device (ENOSPC)\n"
    )
