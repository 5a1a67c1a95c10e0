"""tools/bench_serve.py, the latency and memory benchmark, run for real against digits-serve
with a tiny model: a row per payload and client count, the targets checked, the memory
columns; it no longer measures accuracy (tools/served_accuracy.py does)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.pipeline import run_tool

from tools import bench_serve


def test_the_payloads_are_canvas_pngs_and_their_json_pixels() -> None:
    payloads = bench_serve.make_payloads(drawings_per_digit=1)

    assert list(payloads) == list(bench_serve.TARGETS_MS)
    pngs, png_type = payloads["png 280x280"]
    pixels, json_type = payloads["json 28x28"]
    assert (png_type, json_type) == ("image/png", "application/json")
    assert len(pngs) == len(pixels) == 10
    assert all(body.startswith(b"\x89PNG") for body in pngs)
    assert all(body.startswith(b'{"pixels": [[') for body in pixels)


def test_a_missing_model_says_how_to_get_it(tmp_path: Path) -> None:
    run = run_tool("tools.bench_serve", "--model", str(tmp_path / "none.keras"))
    assert run.returncode == 1
    assert "none.keras does not exist: no such file" in run.stderr


@pytest.mark.slow
def test_latency_has_a_row_per_payload_and_client_count(model_file: Path) -> None:
    run = run_tool(
        "tools.bench_serve", "--model", str(model_file), "--requests", "10", "--rounds", "1"
    )

    out = run.stdout
    assert run.returncode in (0, 1), run.stderr  # 1: a target missed on a busy machine
    rows = re.findall(
        r"^(json 28x28|png 280x280) +\d+B +(\d+) +(\d+)(( +[\d.]+){5})$", out, re.MULTILINE
    )
    assert [(name, int(clients), int(requests)) for name, clients, requests, *_ in rows] == [
        ("json 28x28", 1, 10),
        ("json 28x28", 4, 40),
        ("png 280x280", 1, 10),
        ("png 280x280", 4, 40),
    ], out
    if run.returncode:
        assert "target missed: " in out, out
    else:
        assert "targets met with 4 clients" in out, out
    assert "accuracy" not in out


@pytest.mark.slow
def test_memory_under_huge_images_is_reported(model_file: Path) -> None:
    run = run_tool("tools.bench_serve", "--model", str(model_file), "--memory")

    assert run.returncode == 0, run.stderr
    line = run.stdout.splitlines()[-1]
    before, peak, after, _seconds = map(float, line.split()[:4])
    assert 0 < before <= peak
    assert after <= peak
    assert line.endswith("32 x HTTP [400]"), line  # every huge PNG is blank: refused
