"""The drawing page in headless Chromium (Debian's, driven by Playwright), served by the real
`digits-serve` command in its own process with a tiny model trained here.

Mouse strokes on the canvas must bring a prediction and ten probability bars while the stroke is
still being drawn; Clear must reset them; a finger (touch events) must draw on a phone-sized
screen without the page scrolling sideways. Every request outside the server is aborted, so the
page works offline. Screenshots go to the test's tmp_path (desktop.png, phone.png).
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.chromium import launched_chromium

from digits.model import save_model
from tools.serving import serving

TIMEOUT_MS = 15_000
PHONE = {"width": 390, "height": 844}
# A 7 with a crossbar, in canvas fractions (x right, y down): what the mouse and finger draw.
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.42, 0.82)], [(0.35, 0.5), (0.65, 0.5)]]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Iterator[str]:
    """`digits-serve --port 0` in its own process, as a person would start it."""
    model_path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(tiny_model, model_path)
    with serving(model_path) as server:
        yield server.url


class PageWatch:
    """Page errors, console errors and any request that tried to leave the server."""

    def __init__(self, page, server_url: str) -> None:
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.predictions = 0  # requests sent to /api/predict
        self.answered = 0  # ... and finished (or failed)
        self.hold = False  # keep prediction requests waiting in `held` instead of sending them
        self.held: list = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )

        def route(route, request) -> None:
            if request.url.startswith(server_url):
                if request.url.endswith("/api/predict"):
                    self.predictions += 1
                    if self.hold:
                        self.held.append(route)
                        return
                route.continue_()
            else:
                self.blocked.append(request.url)
                route.abort()

        page.route("**/*", route)

        def finished(request) -> None:
            if request.url.endswith("/api/predict"):
                self.answered += 1

        page.on("requestfinished", finished)
        page.on("requestfailed", finished)
        self.page = page

    def settle(self, quiet_ms: int = 300) -> None:
        """Wait until every prediction request has its answer and no new one starts for a
        while (the page sends one more after the stroke ends)."""
        for _ in range(TIMEOUT_MS // 50):
            sent = self.predictions
            self.page.wait_for_timeout(quiet_ms)
            if self.predictions == sent == self.answered:
                self.page.wait_for_timeout(50)  # let the page draw the last answer
                return
        raise AssertionError(f"requests did not settle: {self.predictions} sent, {self.answered}")

    def assert_clean(self) -> None:
        assert not self.errors, f"errors in the page: {self.errors}"
        assert not self.blocked, f"the page tried to reach: {self.blocked}"


def read_result(page) -> dict:
    return page.evaluate(
        """() => ({
            state: document.getElementById('result').dataset.state,
            digit: document.getElementById('digit').textContent,
            confidence: document.getElementById('confidence').textContent,
            doubt: document.getElementById('doubt').hidden
                ? null : document.getElementById('doubt').textContent,
            bars: [...document.querySelectorAll('#bars .bar')].map(bar => ({
                digit: Number(bar.dataset.digit),
                top: bar.classList.contains('top'),
                width: parseFloat(bar.querySelector('.fill').style.width) || 0,
                shownWidth: bar.querySelector('.fill').getBoundingClientRect().width,
                label: bar.querySelector('.label').textContent,
                value: bar.querySelector('.value').textContent,
                now: Number(bar.querySelector('.track').getAttribute('aria-valuenow')),
            })),
        })"""
    )


def ink_pixels(page) -> int:
    """Canvas pixels that are not white paper."""
    return page.evaluate(
        """() => {
            const canvas = document.getElementById('pad');
            const size = [canvas.width, canvas.height];
            const data = canvas.getContext('2d').getImageData(0, 0, ...size).data;
            let ink = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i] < 200) ink++;
            return ink;
        }"""
    )


def stroke_points(box: dict, stroke: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]


def draw_with_mouse(page, box: dict, stroke: list, pause_ms: int = 120) -> None:
    """Press, move through the stroke's points in small steps (pausing at each), keep pressed."""
    points = stroke_points(box, stroke)
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=12)
        page.wait_for_timeout(pause_ms)


def api_answer(server_url: str, png: bytes) -> dict:
    host, port = server_url.removeprefix("http://").strip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/api/predict", png, {"Content-Type": "image/png"})
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def assert_prediction_shown(result: dict) -> None:
    assert result["state"] == "ready"
    assert re.fullmatch(r"\d", result["digit"])
    assert re.fullmatch(r"[\d.]+% sure", result["confidence"])
    bars = result["bars"]
    assert [bar["label"] for bar in bars] == [str(d) for d in range(10)]
    assert sum(bar["width"] for bar in bars) == pytest.approx(100, abs=1)
    (top,) = [bar for bar in bars if bar["top"]]
    assert top["digit"] == int(result["digit"])
    assert top["width"] == max(bar["width"] for bar in bars) > 0
    assert top["shownWidth"] > 0
    assert all(re.fullmatch(r"[\d.]+%", bar["value"]) for bar in bars)


def assert_empty(result: dict) -> None:
    assert result["state"] == "empty"
    assert result["doubt"] is None
    assert result["digit"] == "\N{EN DASH}"
    assert all(bar["width"] == 0 and bar["now"] == 0 and not bar["top"] for bar in result["bars"])
    assert all(bar["value"] == "" for bar in result["bars"])


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with launched_chromium() as browser:
        yield browser


def test_mouse_strokes_bring_a_prediction_while_drawing_and_clear_resets(
    browser, server_url: str, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1024, "height": 720})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = PageWatch(page, server_url)
    page.goto(server_url)
    assert page.locator("#bars .bar").count() == 10
    assert_empty(read_result(page))
    box = page.locator("#pad").bounding_box()

    draw_with_mouse(page, box, SEVEN[0])
    # Still pressed: the answer must already be there, from requests sent during the stroke.
    page.wait_for_selector('#result[data-state="ready"]')
    during_stroke = watch.predictions
    page.mouse.up()
    draw_with_mouse(page, box, SEVEN[1])
    page.mouse.up()
    watch.settle()

    result = read_result(page)
    assert_prediction_shown(result)
    assert during_stroke >= 2, "predictions are requested while drawing, not only at the end"
    assert watch.predictions <= 40, "requests are throttled"
    # What the page shows is the API's answer for the drawing on the canvas.
    data_url = page.evaluate("() => document.getElementById('pad').toDataURL('image/png')")
    answer = api_answer(server_url, base64.b64decode(data_url.split(",", 1)[1]))
    assert result["digit"] == str(answer["digit"])
    if answer["not_a_digit"] is None:  # the tiny model may be guessing: the page says so
        assert result["doubt"] is None
    else:
        assert result["doubt"] == f"This does not look like a digit: {answer['not_a_digit']}."
    shown = [bar["width"] for bar in result["bars"]]
    assert shown == pytest.approx([100 * p for p in answer["probabilities"]], abs=0.06)
    assert ink_pixels(page) > 2000
    page.screenshot(path=tmp_path / "desktop.png")

    page.click("#clear")
    assert_empty(read_result(page))
    assert ink_pixels(page) == 0
    page.screenshot(path=tmp_path / "desktop_cleared.png")

    # Cleared while an answer is on its way: the answer must not bring the old drawing back.
    watch.hold = True
    draw_with_mouse(page, box, SEVEN[0], pause_ms=0)
    page.mouse.up()
    page.wait_for_timeout(100)
    assert watch.held, "no request was sent"
    page.click("#clear")
    watch.hold = False
    for route in watch.held:
        route.continue_()
    watch.settle()
    assert_empty(read_result(page))

    # Five scattered dots are not a digit, whatever the model says: the page says so.
    for x, y in [(0.2, 0.2), (0.8, 0.2), (0.5, 0.5), (0.2, 0.8), (0.8, 0.8)]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        page.mouse.up()
    watch.settle()
    result = read_result(page)
    assert result["state"] == "ready"
    assert result["doubt"] == (
        "This does not look like a digit: 5 separate pieces of ink; digits have at most 2."
    )
    page.screenshot(path=tmp_path / "desktop_not_a_digit.png")
    watch.assert_clean()
    context.close()


def test_a_finger_draws_on_a_phone_sized_screen(browser, server_url: str, tmp_path: Path) -> None:
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = PageWatch(page, server_url)
    page.goto(server_url)

    layout = page.evaluate(
        """() => {
            const box = (selector) => document.querySelector(selector).getBoundingClientRect();
            return {
                scrollWidth: document.scrollingElement.scrollWidth,
                canvas: box('#pad').toJSON(),
                clear: box('#clear').toJSON(),
                lastBar: box('#bars .bar:last-child').toJSON(),
                touchAction: getComputedStyle(document.getElementById('pad')).touchAction,
            };
        }"""
    )
    assert layout["scrollWidth"] <= PHONE["width"], "the page scrolls sideways"
    canvas = layout["canvas"]
    assert canvas["left"] >= 0
    assert canvas["right"] <= PHONE["width"]
    assert canvas["width"] >= 300
    assert canvas["width"] == pytest.approx(canvas["height"], abs=1)
    assert layout["touchAction"] == "none"
    assert layout["lastBar"]["bottom"] <= PHONE["height"], "the bars fit on the screen"
    assert layout["clear"]["bottom"] <= PHONE["height"]

    # Real touch events through the DevTools protocol (Playwright's touchscreen only taps).
    session = context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    for stroke in SEVEN:
        points = stroke_points(box, stroke)
        session.send(
            "Input.dispatchTouchEvent",
            {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]},
        )
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            for step in range(1, 13):
                x, y = x0 + (x1 - x0) * step / 12, y0 + (y1 - y0) * step / 12
                session.send(
                    "Input.dispatchTouchEvent",
                    {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]},
                )
            page.wait_for_timeout(80)
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_selector('#result[data-state="ready"]')
    watch.settle()

    assert_prediction_shown(read_result(page))
    assert ink_pixels(page) > 2000
    assert page.evaluate("() => window.scrollX") == 0
    page.screenshot(path=tmp_path / "phone.png")
    page.tap("#clear")
    assert_empty(read_result(page))
    watch.assert_clean()
    context.close()
