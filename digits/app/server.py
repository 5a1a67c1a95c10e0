"""The drawing page and its JSON API: FastAPI on uvicorn (HTTP/1.1 parsed by h11).

    GET  /                 the drawing page (digits/app/web/), with draw.js and style.css
    POST /api/predict      body: a PNG or JPEG (Content-Type image/png or image/jpeg), brought to
                           MNIST's conventions by digits.app.images.to_mnist; or JSON
                           {"pixels": [[...28 numbers in 0..1...] x 28]}, already in MNIST's
                           conventions (ink bright on black, centred), used as is.
                           -> 200 {"digit", "probability", "probabilities": [10], "top3",
                                   "not_a_digit": null or why it does not look like a digit}
    GET  /api/model        which model answers (when the server was given its description):
                           -> 200 {"name", "path", "md5", "test_accuracy": number or null,
                                   "description": one line, as digits-serve prints it}
    GET  /openapi.json     the API described in OpenAPI; GET /docs shows it (Swagger UI, which
                           the browser loads from FastAPI's CDN)

Errors are JSON {"error": "..."} with a 4xx status: 400 bad body or bad HTTP, 404 unknown path,
405 wrong method, 408 request not received within REQUEST_TIMEOUT_S, 411 no Content-Length,
413 body over MAX_BODY_BYTES (refused from the header, before reading), 415 other content types.

What a slow or hostile client can hold: an idle connection is closed after IDLE_TIMEOUT_S; a
request (headers and body) must arrive within REQUEST_TIMEOUT_S of its first byte; images are
decoded by MAX_DECODES threads at a time, so their memory is bounded whatever the number of
clients (see digits.app.images for the per-image bound). The server never imports TensorFlow:
it is given a `predict` function.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from importlib import resources
from typing import Any

import h11
import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from digits.app.images import ImageError, decode_image, to_mnist
from digits.app.predict import prediction_json
from digits.dataset import IMAGE_HEIGHT, IMAGE_WIDTH

MAX_BODY_BYTES = 1024 * 1024  # a 280x280 canvas PNG is 3-15 KB
REQUEST_TIMEOUT_S = 10.0  # from a request's first byte to its last: 1 MiB at 100 KB/s
IDLE_TIMEOUT_S = 5  # a connection with no request under way (uvicorn's keep-alive timeout)
MAX_CONNECTIONS = 1000  # open connections past which a request is answered 503 (uvicorn)
MAX_DECODES = 2  # PNG/JPEG bodies decoded at once (the rest wait their turn)
IMAGE_TYPES = ("image/png", "image/jpeg")
JSON_TYPE = "application/json"

STATIC_FILES = {  # URL path -> (file in digits/app/web, Content-Type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/draw.js": ("draw.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    # Everything comes from this server: no inline script, no CDN, no framing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
API_PATH = "/api/predict"
MODEL_PATH = "/api/model"

# (1, 28, 28) float32 image in MNIST's conventions -> (1, 10) class probabilities.
PredictFunction = Callable[[np.ndarray], np.ndarray]


class RequestError(Exception):
    """A request the client must change: an HTTP status and a message for the JSON body.
    `close` ends the connection after the answer (the body was not read)."""

    def __init__(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


def parse_pixels(body: bytes) -> np.ndarray:
    """A JSON body {"pixels": 28 rows of 28 numbers in [0, 1]} -> (28, 28) float32."""
    shape = f"{IMAGE_HEIGHT} rows of {IMAGE_WIDTH} numbers in [0, 1]"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"invalid JSON: {error}") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"invalid JSON: {error}") from None
    except RecursionError:  # json.loads recurses once per [ or {: 100,000 of them
        raise RequestError(HTTPStatus.BAD_REQUEST, "invalid JSON: nested too deeply") from None
    if not isinstance(document, dict) or set(document) != {"pixels"}:
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f'expected an object {{"pixels": {shape}}}, got {keys}'
        )
    rows = document["pixels"]
    if not isinstance(rows, list) or len(rows) != IMAGE_HEIGHT:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"pixels must be {shape}")
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != IMAGE_WIDTH:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"pixels row {number}: expected {shape}")
        for value in row:
            if type(value) not in (int, float) or not 0 <= value <= 1:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"pixels row {number}: {value!r} is not a number in [0, 1]",
                )
    return np.array(rows, dtype=np.float32)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def error_response(
    status: int, message: str, close: bool = False, headers: dict[str, str] | None = None
) -> JSONResponse:
    extra = {"Cache-Control": "no-store", **(headers or {})}
    if close:
        extra["Connection"] = "close"
    return JSONResponse({"error": message}, status_code=status, headers=extra)


async def read_body(request: Request) -> bytes:
    """The request body, at most MAX_BODY_BYTES, announced by a Content-Length."""
    if "transfer-encoding" in request.headers:
        raise RequestError(
            HTTPStatus.LENGTH_REQUIRED, "send a Content-Length; chunked bodies are refused", True
        )
    length_header = request.headers.get("content-length")
    if length_header is None:
        raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required", True)
    length = int(length_header)  # h11 has checked it is one number
    if length > MAX_BODY_BYTES:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body is {length:,} bytes; the limit is {MAX_BODY_BYTES:,}",
            True,
        )
    return await request.body()


def make_app(predict: PredictFunction, model_info: dict[str, Any] | None = None) -> FastAPI:
    """The ASGI application: the page, the API and its OpenAPI description; GET /api/model
    answers `model_info` when it is given."""
    app = FastAPI(
        title="digits",
        summary="Read a handwritten digit from a drawing or a 28x28 MNIST-style image.",
        version="0.1.0",
        redoc_url=None,
    )
    web = resources.files("digits.app") / "web"
    allowed_methods = {API_PATH: "POST"}
    decoders = ThreadPoolExecutor(MAX_DECODES, thread_name_prefix="decode")

    for path, (name, content_type) in STATIC_FILES.items():
        allowed_methods[path] = "GET, HEAD"
        page = Response((web / name).read_bytes(), media_type=content_type, headers=PAGE_HEADERS)
        app.add_api_route(path, _constant(page), methods=["GET", "HEAD"], include_in_schema=False)
    allowed_methods["/openapi.json"] = allowed_methods["/docs"] = "GET, HEAD"
    if model_info is not None:
        allowed_methods[MODEL_PATH] = "GET"
        described = dict(model_info)

        @app.get(MODEL_PATH, summary="Which model answers: name, md5 and test accuracy")
        async def model() -> Response:
            return JSONResponse(described, headers={"Cache-Control": "no-store"})

    def answer(image: np.ndarray) -> dict:
        return prediction_json(predict(image[np.newaxis])[0], image)

    def answer_pixels(body: bytes) -> dict:
        return answer(parse_pixels(body))

    def answer_image(body: bytes) -> dict:
        try:
            image = to_mnist(decode_image(body, "the image"), "the image")
        except ImageError as error:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(error)) from None
        return answer(image)

    @app.post(API_PATH, summary="Read the digit in an image", openapi_extra=API_DOCUMENTATION)
    async def predict_digit(request: Request) -> Response:
        try:
            body = await read_body(request)
        except ClientDisconnect:  # the client left: nobody to answer
            return Response(status_code=HTTPStatus.BAD_REQUEST)
        accepted = f"{', '.join(IMAGE_TYPES)} or {JSON_TYPE}"
        if "content-type" not in request.headers:
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type is required: {accepted}"
            )
        content_type = request.headers["content-type"].split(";")[0].strip().lower()
        # One hop to a worker thread per request: the event loop only does the HTTP.
        if content_type == JSON_TYPE:
            result = await run_in_threadpool(answer_pixels, body)
        elif content_type in IMAGE_TYPES:  # MAX_DECODES threads: bounded memory
            result = await asyncio.get_running_loop().run_in_executor(decoders, answer_image, body)
        else:
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type {content_type} is not accepted; use {accepted}",
            )
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> Response:
        return error_response(error.status, str(error), error.close)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        path = request.url.path
        if error.status_code == HTTPStatus.METHOD_NOT_ALLOWED and path in allowed_methods:
            allowed = allowed_methods[path]
            return error_response(
                error.status_code,
                f"{request.method} is not allowed on {path}; use {allowed}",
                headers={"Allow": allowed},
            )
        if error.status_code == HTTPStatus.NOT_FOUND:
            return error_response(error.status_code, f"no such page: {path}")
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        # A bug: uvicorn logs the traceback; the client gets JSON like every other error.
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", close=True)

    return app


def _constant(response: Response) -> Callable[[], Any]:
    async def serve() -> Response:
        return response

    return serve


API_DOCUMENTATION: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"At most {MAX_BODY_BYTES:,} bytes, with a Content-Length.",
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            JSON_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["pixels"],
                    "additionalProperties": False,
                    "properties": {
                        "pixels": {
                            "description": "28 rows of 28 numbers in [0, 1]: ink bright on "
                            "black, centred as in MNIST",
                            "type": "array",
                            "minItems": IMAGE_HEIGHT,
                            "maxItems": IMAGE_HEIGHT,
                            "items": {
                                "type": "array",
                                "minItems": IMAGE_WIDTH,
                                "maxItems": IMAGE_WIDTH,
                                "items": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                        }
                    },
                }
            },
        },
    },
    "responses": {
        "200": {
            "description": "The digit read, its probability, all ten, and the top 3",
            "content": {
                JSON_TYPE: {
                    "example": {
                        "digit": 7,
                        "probability": 0.98,
                        "probabilities": [0, 0, 0.01, 0, 0, 0, 0, 0.98, 0, 0.01],
                        "top3": [
                            {"digit": 7, "probability": 0.98},
                            {"digit": 2, "probability": 0.01},
                            {"digit": 9, "probability": 0.01},
                        ],
                        "not_a_digit": None,
                    }
                }
            },
        },
        **{
            str(int(status)): {
                "description": meaning,
                "content": {JSON_TYPE: {"example": {"error": "what was wrong"}}},
            }
            for status, meaning in [
                (HTTPStatus.BAD_REQUEST, "Bad JSON, a damaged or blank image, bad HTTP"),
                (HTTPStatus.REQUEST_TIMEOUT, f"Not received within {REQUEST_TIMEOUT_S:g} s"),
                (HTTPStatus.LENGTH_REQUIRED, "No Content-Length"),
                (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"Over {MAX_BODY_BYTES:,} bytes"),
                (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Not PNG, JPEG or JSON"),
            ]
        },
    },
}


def _raw_json_response(status: HTTPStatus, message: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, for the protocol level."""
    body = json.dumps({"error": message}).encode()
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines it lacks: a connection that opens and sends
    nothing is closed after IDLE_TIMEOUT_S (uvicorn starts that timer only after a first
    answer), and a request must be received whole within `request_timeout_s` of its first
    byte, or it gets 408 and the connection is closed. Malformed HTTP gets a JSON 400."""

    def __init__(self, *args: Any, request_timeout_s: float = REQUEST_TIMEOUT_S, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.request_timeout_s = request_timeout_s
        self.request_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Headers and body go out in two writes: without TCP_NODELAY (which the accepted
        # sockets here lack) each answer waits 40 ms for the client's delayed ACK.
        connection = transport.get_extra_info("socket")
        if connection is not None:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def data_received(self, data: bytes) -> None:
        if self.request_deadline is None:
            self.request_deadline = self.loop.call_later(
                self.request_timeout_s, self.request_timed_out
            )
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):  # received whole
            self._cancel_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _cancel_deadline(self) -> None:
        if self.request_deadline is not None:
            self.request_deadline.cancel()
            self.request_deadline = None

    def request_timed_out(self) -> None:
        self.request_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            message = f"the request was not received within {self.request_timeout_s:g} s"
            self.transport.write(_raw_json_response(HTTPStatus.REQUEST_TIMEOUT, message))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(
            _raw_json_response(HTTPStatus.BAD_REQUEST, "invalid HTTP request: " + msg)
        )
        self.transport.close()


class PredictionServer:
    """uvicorn serving `make_app(predict, model_info)` on a socket bound when made (port 0: a
    free port, see `.url`); `serve_forever` serves it."""

    def __init__(
        self,
        predict: PredictFunction,
        host: str = "127.0.0.1",
        port: int = 8000,
        log_requests: bool = True,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        model_info: dict[str, Any] | None = None,
    ) -> None:
        self.socket = socket.create_server((host, port), backlog=1024)
        self.server_address = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            make_app(predict, model_info),
            http=functools.partial(DeadlineProtocol, request_timeout_s=request_timeout_s),
            lifespan="off",
            log_config=None,  # the caller's logging (digits-serve sets it up)
            access_log=log_requests,
            server_header=False,
            timeout_keep_alive=IDLE_TIMEOUT_S,
            limit_concurrency=MAX_CONNECTIONS,
        )
        self.uvicorn = uvicorn.Server(config)
        self.stopped = threading.Event()
        self.stopped.set()

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{host}:{port}/"

    def serve_forever(self) -> None:
        """Serve until `shutdown` (or SIGINT/SIGTERM when run in the main thread)."""
        self.stopped.clear()
        try:
            self.uvicorn.run(sockets=[self.socket])
        finally:
            self.stopped.set()

    def shutdown(self, timeout_s: float = 10) -> None:
        """Stop `serve_forever` (running in another thread) and wait until it has returned."""
        self.uvicorn.should_exit = True
        self.stopped.wait(timeout_s)

    def server_close(self) -> None:
        self.socket.close()
