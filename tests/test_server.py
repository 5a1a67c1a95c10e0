"""digits.app.server: the real server on 127.0.0.1 (port 0, in a thread) with a tiny model trained
here: the page and its files, valid predictions from PNG, JPEG and JSON bodies, every kind of bad
request answered with a JSON error and a 4xx status, and concurrent clients."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.threaded_server import request, running
from PIL import Image, ImageDraw

from digits.app.artifacts import read_model_info
from digits.app.cli import host_names, serve_main
from digits.app.images import to_mnist
from digits.app.predict import Predictor, prediction_json
from digits.app.schema import ErrorMessage, ModelDescription, PixelsRequest, Prediction
from digits.app.server import IDLE_TIMEOUT_S, MAX_BODY_BYTES, Limits, PredictionServer
from digits.model import save_model

TIMEOUT_S = 10
CLIENTS = 8
REQUESTS_PER_CLIENT = 25


@pytest.fixture(scope="module")
def predictor(tiny_model) -> Predictor:
    return Predictor(tiny_model)


@pytest.fixture(scope="module")
def server(predictor: Predictor) -> Iterator[PredictionServer]:
    with running(
        PredictionServer(predictor.probabilities, "127.0.0.1", 0, log_requests=False)
    ) as live:
        yield live


def predict(server: PredictionServer, body: bytes, content_type: str) -> tuple[int, dict]:
    status, headers, data = request(
        server, "POST", "/api/predict", body, {"Content-Type": content_type}
    )
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(data)


def raw_exchange(server: PredictionServer, data: bytes, close_write: bool = False) -> bytes:
    """Send bytes as they are (headers http.client would fix); read until the server closes."""
    with socket.create_connection(server.server_address[:2], timeout=TIMEOUT_S) as connection:
        connection.sendall(data)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_raw(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)


def drawing(fmt: str = "PNG", size: tuple[int, int] = (280, 280)) -> bytes:
    """A digit drawn like the page does: dark strokes on white."""
    image = Image.new("RGBA", size, (255, 255, 255, 255))
    ImageDraw.Draw(image).line(
        [(90, 60), (190, 60), (120, 220)], fill=(31, 41, 51, 255), width=22, joint="curve"
    )
    if fmt == "JPEG":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def pixels(image: np.ndarray) -> bytes:
    return json.dumps({"pixels": image.tolist()}).encode()


def assert_prediction(answer: dict) -> None:
    assert set(answer) == {"digit", "probability", "probabilities", "top3", "not_a_digit"}
    assert answer["digit"] in range(10)
    assert len(answer["probabilities"]) == 10
    assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert answer["probability"] == max(answer["probabilities"])
    assert next(entry["digit"] for entry in answer["top3"]) == answer["digit"]
    assert len(answer["top3"]) == 3


# --- the page ---------------------------------------------------------------------------------


def test_the_page_and_its_files_are_served(server: PredictionServer) -> None:
    status, headers, body = request(server, "GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b'<canvas id="pad" width="280" height="280"' in body
    assert body.count(b'class="bar"') == 10
    assert b"http" not in body.replace(b"http-equiv", b""), "no CDN or external link"

    for path, content_type in (("/draw.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, body = request(server, "GET", path)
        assert status == 200
        assert headers["Content-Type"].startswith(content_type)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert len(body) > 1000

    status, headers, body = request(server, "HEAD", "/")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) > 1000


def test_the_api_is_described_in_openapi(server: PredictionServer) -> None:
    status, _, body = request(server, "GET", "/openapi.json")
    assert status == 200
    document = json.loads(body)
    operation = document["paths"]["/api/predict"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "image/png",
        "image/jpeg",
        "application/json",
    }
    assert {"200", "400", "408", "411", "413", "415"} <= set(operation["responses"])
    assert list(document["paths"]) == ["/api/predict"]  # the page's files are not API
    status, _, body = request(server, "GET", "/docs")
    assert status == 200
    assert b"/openapi.json" in body


def test_the_openapi_description_is_generated_from_the_pydantic_models(
    server: PredictionServer,
) -> None:
    """The JSON body's schema is PixelsRequest's (the model that validates it), the answers'
    are Prediction's and ErrorMessage's, as FastAPI writes them; and real answers fit them."""
    document = json.loads(request(server, "GET", "/openapi.json")[2])
    operation = document["paths"]["/api/predict"]["post"]
    schemas = document["components"]["schemas"]

    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == PixelsRequest.model_json_schema()
    assert body["additionalProperties"] is False
    rows = body["properties"]["pixels"]
    assert (rows["minItems"], rows["maxItems"]) == (28, 28)
    assert rows["items"]["items"] == {"type": "number", "minimum": 0, "maximum": 1}

    def schema_of(status: str) -> dict:
        reference = operation["responses"][status]["content"]["application/json"]["schema"]
        return schemas[reference["$ref"].rsplit("/", 1)[1]]

    assert set(schema_of("200")["properties"]) == set(Prediction.model_fields)
    for status in ("400", "408", "411", "413", "415"):
        assert schema_of(status)["properties"].keys() == {"error"}, status

    status, answer = predict(server, drawing(), "image/png")
    assert status == 200
    Prediction.model_validate(answer)
    status, answer = predict(server, b"{", "application/json")
    assert status == 400
    ErrorMessage.model_validate(answer)


def test_the_model_description_documents_what_api_model_answers(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"any model")
    assert set(ModelDescription.model_fields) == set(read_model_info(path).as_json())


# --- valid requests ---------------------------------------------------------------------------


def test_a_png_from_the_canvas_is_predicted(server: PredictionServer, predictor: Predictor):
    body = drawing("PNG")

    status, answer = predict(server, body, "image/png")

    assert status == 200
    assert_prediction(answer)
    image = to_mnist(Image.open(io.BytesIO(body)))
    assert answer == prediction_json(predictor.probabilities(image[np.newaxis])[0], image)


def test_a_jpeg_is_predicted(server: PredictionServer) -> None:
    status, answer = predict(server, drawing("JPEG", size=(600, 800)), "image/jpeg")

    assert status == 200
    assert_prediction(answer)


def test_json_pixels_are_used_as_they_are(
    server: PredictionServer, predictor: Predictor, synthetic_data: dict
) -> None:
    """The tiny model reads the synthetic blocks: rows and columns reach it the right way."""
    images, labels = synthetic_data["test"]
    expected = predictor.probabilities(images[:10])
    for image, _label, probabilities in zip(images[:10], labels[:10], expected, strict=True):
        status, answer = predict(server, pixels(image), "application/json; charset=utf-8")
        assert status == 200
        assert answer == prediction_json(probabilities, image)
    right = [
        predict(server, pixels(image), "application/json")[1]["digit"] == label.argmax()
        for image, label in zip(images[:30], labels[:30], strict=True)
    ]
    assert np.mean(right) >= 0.8


def test_noise_is_answered_but_flagged_as_not_a_digit(server: PredictionServer) -> None:
    noise = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (280, 280), dtype=np.uint8)).save(noise, format="PNG")

    status, answer = predict(server, noise.getvalue(), "image/png")

    assert status == 200
    assert_prediction(answer)
    assert answer["not_a_digit"].startswith("ink covers")
    status, answer = predict(server, drawing(), "image/png")
    assert answer["not_a_digit"] is None or "guessing" in answer["not_a_digit"]  # a tiny model


def test_integers_zero_and_one_are_valid_pixels(server: PredictionServer) -> None:
    grid = [[0] * 28 for _ in range(28)]
    grid[10][10] = 1
    status, answer = predict(server, json.dumps({"pixels": grid}).encode(), "application/json")
    assert status == 200
    assert_prediction(answer)


def test_one_connection_serves_many_requests(server: PredictionServer) -> None:
    """Keep-alive, as the page uses it; an error with a read body keeps the connection."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        for body, content_type, expected in [
            (drawing(), "image/png", 200),
            (b"{", "application/json", 400),
            (drawing(), "image/png", 200),
        ]:
            connection.request(
                "POST", "/api/predict", body=body, headers={"Content-Type": content_type}
            )
            response = connection.getresponse()
            response.read()
            assert response.status == expected
    finally:
        connection.close()


# --- bad requests -----------------------------------------------------------------------------

ROW = [0.0] * 28
GRID = [ROW] * 28


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", "application/json", "invalid JSON"),
        (b"\xff\xfe", "application/json", "invalid JSON"),
        (
            b"[1, 2]",
            "application/json",
            'expected an object {"pixels": 28 rows of 28 numbers in [0, 1]}, '
            "got an array of 2 items",
        ),
        (json.dumps({"pixels": GRID, "x": 1}).encode(), "application/json", "['pixels', 'x']"),
        (json.dumps({"image": GRID}).encode(), "application/json", "['image']"),
        (
            json.dumps({"pixels": GRID[:27]}).encode(),
            "application/json",
            "pixels must be 28 rows of 28 numbers in [0, 1]; got 27 rows",
        ),
        (
            json.dumps({"pixels": [ROW[:27]] * 28}).encode(),
            "application/json",
            "pixels row 0: expected 28 numbers in [0, 1], got 27 numbers",
        ),
        (json.dumps({"pixels": "white"}).encode(), "application/json", "got a string"),
        (
            json.dumps({f"key{n:04d}": 0 for n in range(1000)}).encode(),
            "application/json",
            "got ['key0000', 'key0001', 'key0002', 'key0003', 'key0004'] and 995 more keys",
        ),
        (
            json.dumps({"pixels": [*GRID[:5], [1.5] * 28, *GRID[6:]]}).encode(),
            "application/json",
            "row 5, column 0: 1.5 is not",
        ),
        (json.dumps({"pixels": [[-0.1] * 28] * 28}).encode(), "application/json", "-0.1 is not"),
        (json.dumps({"pixels": [[True] * 28] * 28}).encode(), "application/json", "True is not"),
        (json.dumps({"pixels": [["0.5"] * 28] * 28}).encode(), "application/json", "'0.5' is not"),
        (b'{"pixels": [[NaN]]}', "application/json", "NaN is not a number JSON allows"),
        (b'{"pixels": [[Infinity]]}', "application/json", "Infinity is not a number"),
        (b"GIF89a not really", "image/png", "not a PNG or JPEG image"),
        (drawing()[:100], "image/png", "damaged PNG image"),
        (b"", "image/png", "empty file"),
        (b"", "image/jpeg", "empty file"),
    ],
    ids=[
        "syntax",
        "not-utf8",
        "not-an-object",
        "extra-key",
        "wrong-key",
        "27-rows",
        "short-row",
        "not-a-list",
        "1000-keys",
        "too-bright",
        "negative",
        "boolean",
        "string",
        "nan",
        "infinity",
        "not-an-image",
        "truncated-png",
        "empty-png",
        "empty-jpeg",
    ],
)
def test_a_bad_body_is_400_with_a_json_error(
    server: PredictionServer, body: bytes, content_type: str, message: str
) -> None:
    status, answer = predict(server, body, content_type)

    assert status == 400
    assert set(answer) == {"error"}
    assert message in answer["error"]


def test_a_blank_drawing_is_400(server: PredictionServer) -> None:
    blank = io.BytesIO()
    Image.new("RGBA", (280, 280), (255, 255, 255, 255)).save(blank, format="PNG")

    status, answer = predict(server, blank.getvalue(), "image/png")

    assert status == 400
    assert "blank image" in answer["error"]


def test_an_image_over_the_pixel_limit_is_400(server: PredictionServer) -> None:
    wide = io.BytesIO()
    Image.new("1", (5000, 10), 1).save(wide, format="PNG")

    status, answer = predict(server, wide.getvalue(), "image/png")

    assert status == 400
    assert "5000x10 pixels is over the limit of 4096x4096" in answer["error"]


@pytest.mark.parametrize(
    ("content_type", "status", "message"),
    [
        ("text/plain", 415, "Content-Type text/plain is not accepted"),
        ("image/gif", 415, "use image/png, image/jpeg or application/json"),
        (None, 415, "Content-Type is required"),
    ],
)
def test_other_content_types_are_415(
    server: PredictionServer, content_type: str | None, status: int, message: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    got, _, body = request(server, "POST", "/api/predict", drawing(), headers)
    assert got == status
    assert message in json.loads(body)["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/api/predict", 405, "POST"),
        ("PUT", "/api/predict", 405, "POST"),
        ("DELETE", "/api/predict", 405, "POST"),
        ("POST", "/", 405, "GET, HEAD"),
        ("GET", "/nothing-here", 404, None),
        ("POST", "/api/other", 404, None),
        ("GET", "/../digits/server.py", 404, None),
        ("GET", "/web/index.html", 404, None),
    ],
)
def test_wrong_paths_and_methods_are_404_and_405(
    server: PredictionServer, method: str, path: str, status: int, allow: str | None
) -> None:
    got, headers, body = request(server, method, path, b"", {"Content-Type": "image/png"})

    assert got == status
    assert headers["Allow"] == allow
    assert set(json.loads(body)) == {"error"}


def test_a_body_over_the_limit_is_refused_from_its_content_length(server) -> None:
    """413 before reading: the client announced MAX_BODY_BYTES + 1 and sent nothing yet."""
    response = raw_exchange(
        server,
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1),
    )

    status, answer = parse_raw(response)
    assert status == 413
    assert f"the limit is {MAX_BODY_BYTES:,}" in answer["error"]
    assert b"connection: close" in response.lower()


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n\r\n",
            411,
            "Content-Length is required",
        ),
        (
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            411,
            "chunked",
        ),
        (
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: -5\r\n\r\n",
            400,
            "invalid HTTP request",
        ),
        (
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            400,
            "invalid HTTP request",
        ),
        (b"NONSENSE\r\n\r\n", 400, "invalid HTTP request"),
        (b"BREW / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405, "BREW is not allowed on /"),
    ],
    ids=["no-length", "chunked", "negative-length", "two-lengths", "garbage", "unknown-method"],
)
def test_malformed_requests_get_json_errors(
    server: PredictionServer, request_bytes: bytes, status: int, message: str
) -> None:
    got, answer = parse_raw(raw_exchange(server, request_bytes, close_write=True))

    assert got == status
    assert message in answer["error"]


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_clients_all_get_their_answers(server: PredictionServer) -> None:
    png = drawing()
    grid = pixels(np.zeros((28, 28), np.float32))
    expected = {
        "png": predict(server, png, "image/png")[1],
        "json": predict(server, grid, "application/json")[1],
    }
    results: list[tuple[str, int, dict]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        host, port = server.server_address[:2]
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
        try:
            for index in range(REQUESTS_PER_CLIENT):
                kind = "png" if (number + index) % 2 else "json"
                body, content_type = (
                    (png, "image/png") if kind == "png" else (grid, "application/json")
                )
                connection.request("POST", "/api/predict", body, {"Content-Type": content_type})
                response = connection.getresponse()
                answer = json.loads(response.read())
                with lock:
                    results.append((kind, response.status, answer))
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started

    assert not any(thread.is_alive() for thread in threads), "a client hung"
    assert not failures, failures
    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
    assert all(status == 200 for _, status, _ in results)
    assert all(answer == expected[kind] for kind, _, answer in results)
    assert elapsed < 30, f"{len(results)} requests took {elapsed:.1f} s"


# --- hostile clients ---------------------------------------------------------------------------
# Each case as a hostile but fair client would try it against 127.0.0.1, bounded in time.

SLOW_CLIENTS = 200


def fake_predict(images: np.ndarray) -> np.ndarray:
    return np.full((len(images), 10), 0.1, np.float32)


def open_connections(server: PredictionServer, count: int, first_bytes: bytes) -> list:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(server.server_address, timeout=TIMEOUT_S)
        if first_bytes:
            connection.sendall(first_bytes)
        connections.append(connection)
    return connections


def read_until_closed(connection: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and the seconds that took."""
    started = time.monotonic()
    connection.settimeout(limit_s)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


def test_slow_clients_do_not_keep_others_waiting(server: PredictionServer) -> None:
    """200 connections that send a request line and then nothing, or one header now and then:
    a normal request is still answered within 1 s (the old server answered 503 past 32)."""
    stalled = open_connections(server, SLOW_CLIENTS, b"GET / HTTP/1.1\r\n")
    try:
        for round_number in range(3):
            for connection in stalled[::4]:  # a quarter of them trickle a header
                connection.sendall(b"X-Slow-%d: 1\r\n" % round_number)
            started = time.monotonic()
            status, _, _ = request(server, "GET", "/")
            predicted, answer = predict(server, drawing(), "image/png")
            elapsed = time.monotonic() - started
            assert (status, predicted) == (200, 200), answer
            assert elapsed < 1, f"answered after {elapsed:.2f} s with {SLOW_CLIENTS} slow clients"
            time.sleep(0.5)
    finally:
        for connection in stalled:
            connection.close()


def test_stalled_requests_get_408_and_idle_connections_are_closed() -> None:
    """A request must arrive whole within the request timeout of its first byte, headers (sent
    slowly or not finished) and body (shorter than its Content-Length) alike; a connection
    that sends nothing is closed after IDLE_TIMEOUT_S. The old server waited 30 s, then 500."""
    timeout_s = 1.0
    with running(
        PredictionServer(
            fake_predict, "127.0.0.1", 0, False, limits=Limits(request_timeout_s=timeout_s)
        )
    ) as server:
        (unfinished_headers,) = open_connections(
            server, 1, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        )
        (short_body,) = open_connections(
            server,
            1,
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 100\r\n\r\nonly twenty bytes...",
        )
        (silent,) = open_connections(server, 1, b"")
        try:
            for connection in (unfinished_headers, short_body):
                response, elapsed = read_until_closed(connection, TIMEOUT_S)
                assert elapsed < timeout_s + 1
                status, answer = parse_raw(response)
                assert status == 408
                assert answer == {"error": "the request was not received within 1 s"}
            response, elapsed = read_until_closed(silent, TIMEOUT_S)
            assert response == b""
            assert elapsed < IDLE_TIMEOUT_S + 1
        finally:
            for connection in (unfinished_headers, short_body, silent):
                connection.close()


def test_a_header_every_few_seconds_does_not_hold_a_connection() -> None:
    timeout_s = 1.0
    with running(
        PredictionServer(
            fake_predict, "127.0.0.1", 0, False, limits=Limits(request_timeout_s=timeout_s)
        )
    ) as server:
        (trickle,) = open_connections(server, 1, b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                for number in range(10):
                    trickle.sendall(b"X-Slow-%d: 1\r\n" % number)
                    time.sleep(0.4)
            response, _ = read_until_closed(trickle, TIMEOUT_S)
            assert time.monotonic() - started < timeout_s + 1
            assert parse_raw(response)[0] == 408
        finally:
            trickle.close()


def test_a_body_shorter_than_its_content_length_then_closed_is_dropped_quietly(
    server: PredictionServer, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    response = raw_exchange(
        server,
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        b"Content-Length: 100\r\n\r\nonly twenty bytes...",
        close_write=True,
    )
    time.sleep(0.2)
    assert response == b"", "the server closes the connection"
    assert "Traceback" not in capfd.readouterr().err
    assert not caplog.records


def test_clients_that_leave_early_leave_no_traceback(
    server: PredictionServer, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """Gone before, during and after the body, and while the answer is computed: at most one
    short log line each (the old server logged a 30-line traceback per connection)."""
    caplog.set_level(logging.DEBUG)
    png = drawing()
    head = (
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        b"Content-Length: %d\r\n\r\n" % len(png)
    )
    leavers = [head[:20], head, head + png[:100], head + png, b"GARBAGE \x00\r\n\r\n"]
    for data in leavers:
        with socket.create_connection(server.server_address, timeout=TIMEOUT_S) as connection:
            connection.sendall(data)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.5)  # the server notices and finishes the work under way
    assert request(server, "GET", "/")[0] == 200

    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = [record.getMessage() for record in caplog.records] + err.splitlines()
    assert len(lines) <= len(leavers), lines
    assert all(len(line) < 200 and "\n" not in line for line in lines), lines
    assert not any(record.exc_info for record in caplog.records)


def test_json_nested_100000_levels_is_400(server: PredictionServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    status, answer = predict(server, b'{"pixels": ' + deep + b"}", "application/json")

    assert status == 400
    assert answer == {"error": "invalid JSON: nested too deeply"}


# --- the command --------------------------------------------------------------------------------


def test_serve_reports_a_missing_model_and_a_busy_port(
    predictor: Predictor, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert serve_main(["--model", str(tmp_path / "none.keras"), "--port", "0"]) == 1
    assert "none.keras does not exist: make it with `dvc repro`" in capsys.readouterr().err

    model_path = tmp_path / "model.keras"
    save_model(predictor.model, model_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve_main(["--model", str(model_path), "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err

    with pytest.raises(SystemExit) as usage:
        serve_main(["--port", "70000"])
    assert usage.value.code == 2


def test_the_names_answered_come_from_the_flag_its_variable_or_the_host() -> None:
    loopback = ["localhost", "127.0.0.1", "[::1]"]
    assert host_names(None, "127.0.0.1") == loopback
    assert host_names(None, "::1") == loopback
    assert host_names(None, "0.0.0.0") == loopback  # every address: no name to add
    assert host_names(None, "192.168.1.5") == [*loopback, "192.168.1.5"]
    assert host_names(None, "fd00::5") == [*loopback, "[fd00::5]"]
    assert host_names(" Digits.lan, *.example.org ", "0.0.0.0") == ["digits.lan", "*.example.org"]
    with pytest.raises(ValueError, match="a wildcard only as"):
        host_names("digits.*", "127.0.0.1")
    with pytest.raises(ValueError, match="at least one name"):
        host_names(" , ", "127.0.0.1")


def test_serve_reads_the_names_answered_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DIGITS_ALLOWED_HOSTS", "*digits.lan")
    with pytest.raises(SystemExit) as usage:
        serve_main(["--port", "0"])
    assert usage.value.code == 2
    assert "--allowed-hosts: '*digits.lan': a wildcard only as" in capsys.readouterr().err
