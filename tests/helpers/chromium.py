"""Headless Chromium for the browser tests (Debian's package; Playwright drives it).

Offline by design: the flags stop Chromium's own background traffic, and each test routes
every request it did not expect to an abort, so a page that reaches for the network fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.check_prerequisites import chromium_path

# Debian's /usr/bin/chromium (GitHub's Ubuntu runners have one there too), or $CHROMIUM.
CHROMIUM = chromium_path()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def require_chromium() -> None:
    """Fail (never skip) with what to install when Chromium or Playwright is missing."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Chromium (`make prerequisites` says how)",
            pytrace=False,
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is missing: `pip install -e .[dev]`", pytrace=False)


@contextlib.contextmanager
def launched_chromium() -> Iterator:
    """A Playwright Browser on Debian's Chromium, closed afterwards."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class OfflinePage:
    """A page that may load only file:// URLs; it records script errors and blocked requests."""

    def __init__(
        self,
        browser,
        viewport: tuple[int, int] = (1280, 900),
        stand_ins: dict[str, Path] | None = None,
    ) -> None:
        """`stand_ins` maps URL prefixes to local files served in their place (a CDN's scripts,
        say): the page gets them as if from the network, and they are not counted as blocked."""
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.served: list[str] = []
        self.stand_ins = stand_ins or {}
        self.page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)
        self.page.route("**/*", self._route)

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} at {message.location}")

    def _route(self, route, request) -> None:
        stand_in = next(
            (path for prefix, path in self.stand_ins.items() if request.url.startswith(prefix)),
            None,
        )
        if request.url.startswith("file://"):
            route.continue_()
        elif stand_in is not None:
            self.served.append(request.url)
            route.fulfill(path=stand_in, content_type="text/javascript")
        else:
            self.blocked.append(request.url)
            route.abort()
