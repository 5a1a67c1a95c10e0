"""digits-serve in its own process (tools/serving.py) under a burst of huge PNGs: its
memory stays bounded and is given back. Read from /proc/PID/status: VmHWM (peak) and VmRSS
(now)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from digits.model import save_model
from tools.serving import ServerProcess, huge_png, post_in_parallel, serving

pytestmark = pytest.mark.slow

PARALLEL_POSTS = 32
PEAK_LIMIT_MB = 1500  # what the README promises for this test, baseline included
PEAK_GROWTH_LIMIT_MB = 400  # 2 decodes at a time of about 130 MB each, and some slack
KEPT_LIMIT_MB = 100  # still held once the burst is over


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Iterator[ServerProcess]:
    model_path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(tiny_model, model_path)
    with serving(model_path) as running:
        yield running


def test_parallel_huge_pngs_use_bounded_memory_and_give_it_back(server: ServerProcess) -> None:
    png = huge_png()
    assert 100_000 < len(png) < 200_000
    before = server.memory_mb()
    answers = post_in_parallel(server, png, "image/png", PARALLEL_POSTS)
    time.sleep(1)  # the last decodes finish and are freed
    after = server.memory_mb()

    assert len(answers) == PARALLEL_POSTS
    assert all(status == 400 and b"blank image" in body for status, body in answers), answers[0]
    assert after["VmHWM"] < PEAK_LIMIT_MB, (before, after)
    assert after["VmHWM"] - before["VmRSS"] < PEAK_GROWTH_LIMIT_MB, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < KEPT_LIMIT_MB, (before, after)
    assert "Traceback" not in server.log()
