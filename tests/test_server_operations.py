"""digits.app.server's operations endpoints on 127.0.0.1: /healthz, /readyz after the warm-up
prediction, Prometheus metrics at /metrics (bounded whatever paths and methods clients send),
and Swagger UI at /docs served from the package (no CDN). The model is a stand-in function:
these tests are about the server, not TensorFlow."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import numpy as np
import pytest
from helpers.chromium import launched_chromium
from helpers.threaded_server import request, running

from digits.app.server import PredictionServer

TIMEOUT_S = 10
MODEL_INFO = {
    "name": "app-cnn",
    "path": "data/app-model/model.keras",
    "md5": "0123456789abcdef0123456789abcdef",
    "test_accuracy": 0.99,
    "description": "app-cnn (md5 0123456789abcdef0123456789abcdef)",
}


class Model:
    """A predict function that reads every image as a 3 (not a digit when it is blank), and
    holds or fails its calls when told."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.go.set()
        self.error: Exception | None = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.go.wait(TIMEOUT_S)
        if self.error is not None:
            raise self.error
        probabilities = np.full((len(images), 10), 0.01, np.float32)
        probabilities[:, 3] = 0.91
        return probabilities


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
def server(model: Model) -> Iterator[PredictionServer]:
    made = PredictionServer(model, "127.0.0.1", 0, log_requests=False, model_info=MODEL_INFO)
    with running(made) as live:
        yield live


def get_json(server: PredictionServer, path: str) -> tuple[int, dict]:
    status, headers, body = request(server, "GET", path)
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def wait_ready(server: PredictionServer) -> tuple[int, dict]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        status, answer = get_json(server, "/readyz")
        if status == 200 or time.monotonic() > deadline:
            return status, answer
        time.sleep(0.02)


def metrics(server: PredictionServer) -> str:
    status, headers, body = request(server, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    return body.decode()


def sample(text: str, name: str, /, **labels: str) -> float:
    """The value of the series `name{labels}` in Prometheus' text format (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def a_one() -> bytes:
    """A vertical stroke in the middle of a 28x28 image, as JSON pixels."""
    image = np.zeros((28, 28))
    image[4:24, 13:16] = 1.0
    return json.dumps({"pixels": image.tolist()}).encode()


# --- health and readiness ---------------------------------------------------------------------


def test_healthz_answers_while_the_model_is_not_ready(
    server: PredictionServer, model: Model
) -> None:
    model.go.clear()  # the warm-up prediction hangs
    server.warm_up_in_background()
    assert get_json(server, "/healthz") == (200, {"status": "ok"})
    status, answer = get_json(server, "/readyz")
    assert status == 503
    assert answer == {"error": "not ready: the model has not answered its warm-up prediction yet"}
    model.go.set()
    assert wait_ready(server) == (200, {"status": "ready"})
    assert get_json(server, "/healthz") == (200, {"status": "ok"})


def test_readyz_is_503_until_the_warm_up_and_says_why_it_failed(
    server: PredictionServer, model: Model
) -> None:
    status, headers, _ = request(server, "GET", "/readyz")  # no warm-up asked for
    assert status == 503
    assert headers["Retry-After"]
    model.error = RuntimeError("the weights are damaged")
    server.warm_up_in_background()
    deadline = time.monotonic() + TIMEOUT_S
    while "warm-up prediction yet" in get_json(server, "/readyz")[1]["error"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert get_json(server, "/readyz") == (
        503,
        {
            "error": "not ready: the warm-up prediction failed: "
            "RuntimeError: the weights are damaged"
        },
    )


def test_readyz_refuses_a_model_that_gives_no_probabilities() -> None:
    def broken(images: np.ndarray) -> np.ndarray:
        return np.zeros((len(images), 3), np.float32)

    with running(PredictionServer(broken, "127.0.0.1", 0, log_requests=False)) as server:
        server.warm_up_in_background()
        time.sleep(0.2)
        status, answer = get_json(server, "/readyz")
    assert status == 503
    assert "shape (1, 3), not 10 finite probabilities" in answer["error"]


def test_operations_endpoints_are_not_in_the_api_description(server: PredictionServer) -> None:
    document = json.loads(request(server, "GET", "/openapi.json")[2])
    assert set(document["paths"]) == {"/api/predict", "/api/model"}
    status, headers, _ = request(server, "POST", "/healthz", b"", {"Content-Length": "0"})
    assert (status, headers["Allow"]) == (405, "GET")


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_count_requests_by_route_and_status_and_predictions_by_digit(
    server: PredictionServer,
) -> None:
    before = metrics(server)
    json_type = {"Content-Type": "application/json"}
    for _ in range(3):
        status, _, answer = request(server, "POST", "/api/predict", a_one(), json_type)
        assert status == 200
        assert json.loads(answer)["not_a_digit"] is None
    for _ in range(2):
        assert request(server, "POST", "/api/predict", b"{", json_type)[0] == 400
    assert request(server, "GET", "/api/predict")[0] == 405
    assert request(server, "GET", "/nothing/here")[0] == 404
    after = metrics(server)

    def grew(name: str, /, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert (
        grew("digits_http_requests_total", handler="/api/predict", method="POST", status="200") == 3
    )
    assert (
        grew("digits_http_requests_total", handler="/api/predict", method="POST", status="400") == 2
    )
    assert (
        grew("digits_http_requests_total", handler="/api/predict", method="GET", status="405") == 1
    )
    assert grew("digits_http_requests_total", handler="none", method="GET", status="404") == 1
    assert (
        grew("digits_http_request_duration_seconds_count", handler="/api/predict", status="200")
        == 3
    )
    assert grew("digits_predictions_total", digit="3", not_a_digit="false") == 3
    assert sample(after, "digits_predictions_total", digit="7", not_a_digit="false") == 0
    assert 'digits_predictions_total{digit="9",not_a_digit="true"} 0.0' in after  # from the start
    assert sample(after, "digits_model_info", name="app-cnn", md5=MODEL_INFO["md5"]) == 1


def test_a_flat_or_noisy_image_counts_as_not_a_digit(server: PredictionServer) -> None:
    noise = np.random.default_rng(0).random((28, 28)).round(3).tolist()
    body = json.dumps({"pixels": noise}).encode()
    status, _, answer = request(
        server, "POST", "/api/predict", body, {"Content-Type": "application/json"}
    )
    assert status == 200
    assert json.loads(answer)["not_a_digit"] is not None
    assert sample(metrics(server), "digits_predictions_total", digit="3", not_a_digit="true") == 1


def test_hostile_paths_and_methods_do_not_grow_the_metrics(server: PredictionServer) -> None:
    """Random paths and methods land in the same few series: the output's size does not
    follow what clients send."""
    rng = np.random.default_rng(26)

    def hostile_round(count: int) -> None:
        for _ in range(count):
            word = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 12))
            assert request(server, "GET", f"/{word}/{word}?{word}=1")[0] == 404
            assert request(server, word.upper(), f"/api/{word}")[0] in (404, 405)
            assert request(server, word.upper(), "/")[0] == 405
            assert request(server, "GET", "/docs/" + word)[0] == 404

    hostile_round(5)
    metrics(server)  # the scrape's own series, before the count
    first = metrics(server)
    hostile_round(200)
    second = metrics(server)
    assert len(second.splitlines()) == len(first.splitlines())
    assert "abcdefghijklmnopqrstuvwxyz" not in second
    assert (
        sample(second, "digits_http_requests_total", handler="none", method="GET", status="404")
        == 410
    )
    assert (
        sample(second, "digits_http_requests_total", handler="/", method="OTHER", status="405")
        == 205
    )


def test_requests_for_other_host_names_are_refused_before_they_are_counted(
    server: PredictionServer,
) -> None:
    for name in ("evil.example", "other.example"):
        status, _, _ = request(server, "GET", "/metrics", headers={"Host": name})
        assert status == 400
    assert 'status="400"' not in metrics(server)


def test_probes_naming_the_containers_address_get_health_and_readiness_only(
    server: PredictionServer,
) -> None:
    """A platform probes the container's own address (Host: 10.1.2.3:8000), which is not a
    name served: /healthz and /readyz answer it, nothing else does."""
    probe = {"Host": "10.1.2.3:8000"}
    status, _, body = request(server, "GET", "/healthz", headers=probe)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert request(server, "GET", "/readyz", headers=probe)[0] == 503  # no warm-up asked for
    for method, path in [("GET", "/metrics"), ("GET", "/api/model"), ("HEAD", "/healthz")]:
        status, _, body = request(server, method, path, headers=probe)
        assert status == 400, path
    server.warm_up_in_background()
    assert wait_ready(server)[0] == 200
    assert request(server, "GET", "/readyz", headers=probe)[0] == 200


# --- Swagger UI, offline ----------------------------------------------------------------------


class References(HTMLParser):
    """Every URL a page loads: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_docs_load_swagger_ui_from_this_server_only(server: PredictionServer) -> None:
    status, headers, body = request(server, "GET", "/docs")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"http" not in body, "no CDN: every URL is a path on this server"
    assert b"<script>" not in body, "no inline script: the policy allows none"
    parser = References()
    parser.feed(body.decode())
    assert len(parser.urls) >= 4
    kinds = {}
    for url in parser.urls:
        assert not urlsplit(url).netloc, url
        status, file_headers, content = request(server, "GET", urljoin("/docs", url))
        assert status == 200, url
        assert content, url
        kinds[url] = file_headers["Content-Type"].split(";")[0]
    assert kinds["/docs/swagger-ui-bundle.js"] == "text/javascript"
    assert kinds["/docs/swagger-ui.css"] == "text/css"
    assert kinds["/docs/docs.js"] == "text/javascript"
    bundle = request(server, "GET", "/docs/swagger-ui-bundle.js")[2]
    assert len(bundle) > 500_000
    assert b"SwaggerUIBundle" in bundle

    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src" not in policy, "scripts fall back to 'self' only"
    assert "frame-ancestors 'none'" in policy
    assert len(headers.get_all("Content-Security-Policy")) == 1
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.slow
def test_swagger_ui_renders_offline_under_its_content_security_policy(
    server: PredictionServer,
) -> None:
    """In Chromium with every request outside the server aborted: Swagger UI draws both
    operations, with no script error and no policy violation (both are console errors)."""
    with launched_chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_S * 1000)
        errors: list[str] = []
        outside: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )

        def route(route, request) -> None:
            if request.url.startswith(server.url):
                route.continue_()
            else:
                outside.append(request.url)
                route.abort()

        page.route("**/*", route)
        page.goto(server.url + "docs")
        page.wait_for_selector(".opblock-summary-path")
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        title = page.locator(".info .title").inner_text()
        page.locator(".opblock-summary-path", has_text="/api/predict").click()  # open it
        page.wait_for_selector(".opblock-body .responses-table")
        page.locator(".try-out__btn").click()
        page.wait_for_selector(".opblock-body .execute")
        page.locator("section.models .json-schema-2020-12-accordion").first.click()  # a schema
        page.wait_for_selector("section.models .json-schema-2020-12-property")
    assert {path.strip() for path in paths} == {"/api/predict", "/api/model"}
    assert title.startswith("digits")
    assert errors == []
    assert outside == []
