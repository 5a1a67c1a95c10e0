"""The recogniser's first server, kept only to benchmark against: the standard library's
threading HTTP server with hand-parsed requests (digits-serve used it before FastAPI/uvicorn,
see digits/app/server.py). Same API and page; none of the new server's deadlines or bounds.

    python tools/stdlib_server.py [--model data/model/model.keras] [--port 8000] [--quiet]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from digits.app.artifacts import PIPELINE_MODEL
from digits.app.images import ImageError, decode_image, to_mnist
from digits.app.predict import Predictor, prediction_json
from digits.app.server import (
    IMAGE_TYPES,
    JSON_TYPE,
    MAX_BODY_BYTES,
    PAGE_HEADERS,
    STATIC_FILES,
    PredictFunction,
    RequestError,
    parse_pixels,
)
from digits.determinism import pin_cpu_kernels

MAX_CONNECTIONS = 32
SOCKET_TIMEOUT_S = 30  # idle keep-alive connections and stalled uploads are dropped


class PredictionServer(ThreadingHTTPServer):
    """Serves the page and the API with one thread per connection (at most MAX_CONNECTIONS)."""

    daemon_threads = True
    request_queue_size = 64  # listen backlog; socketserver's 5 drops bursts of connections

    def __init__(
        self, address: tuple[str, int], predict: PredictFunction, log_requests: bool = True
    ) -> None:
        self.predict = predict
        self.log_requests = log_requests
        web = resources.files("digits.app") / "web"
        self.static = {
            path: ((web / name).read_bytes(), content_type)
            for path, (name, content_type) in STATIC_FILES.items()
        }
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, RequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def process_request(self, request, client_address) -> None:
        if not self._connections.acquire(blocking=False):
            busy = json.dumps({"error": "too many connections; try again"}).encode()
            try:
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(busy), busy)
                )
            finally:
                self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a page sends a request every 100 ms
    timeout = SOCKET_TIMEOUT_S
    disable_nagle_algorithm = True
    server: PredictionServer

    def version_string(self) -> str:  # the Server header: no Python version
        return "digits"

    def do_GET(self) -> None:
        self._serve_static()

    do_HEAD = do_GET  # _send leaves the body out

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path != "/api/predict":
            self._method_not_allowed_or_missing(path)
            return
        try:
            image = self._read_image()
            result = prediction_json(self.server.predict(image[np.newaxis])[0], image)
        except RequestError as error:
            self._send_json(error.status, {"error": str(error)})
            return
        except Exception:  # a bug: keep the traceback in the log, answer in JSON
            traceback.print_exc()
            self.close_connection = True
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
            return
        self._send_json(HTTPStatus.OK, result)

    def do_PUT(self) -> None:
        self._method_not_allowed_or_missing(urlsplit(self.path).path)

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    def _serve_static(self) -> None:
        path = urlsplit(self.path).path
        if path not in self.server.static:
            self._method_not_allowed_or_missing(path)
            return
        body, content_type = self.server.static[path]
        self._send(HTTPStatus.OK, body, content_type, PAGE_HEADERS)

    def _method_not_allowed_or_missing(self, path: str) -> None:
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a body we do not read: the stream cannot be reused
        if path == "/api/predict":
            allowed = "POST"
        elif path in self.server.static:
            allowed = "GET, HEAD"
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})
            return
        self._send_json(
            HTTPStatus.METHOD_NOT_ALLOWED,
            {"error": f"{self.command} is not allowed on {path}; use {allowed}"},
            {"Allow": allowed},
        )

    def _read_image(self) -> np.ndarray:
        """The request body, checked and brought to a (28, 28) float32 MNIST image."""
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body is not read: the stream cannot be reused
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "send a Content-Length; chunked bodies are refused"
            )
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if not (length_header.isascii() and length_header.isdigit()):
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {length_header!r}")
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is {length:,} bytes; the limit is {MAX_BODY_BYTES:,}",
            )
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {length} bytes"
            )
        accepted = f"{', '.join(IMAGE_TYPES)} or {JSON_TYPE}"
        if "Content-Type" not in self.headers:
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type is required: {accepted}"
            )
        content_type = self.headers.get_content_type()  # lower case, without parameters
        if content_type == JSON_TYPE:
            return parse_pixels(body)
        if content_type in IMAGE_TYPES:
            try:
                return to_mnist(decode_image(body, "the image"), "the image")
            except ImageError as error:
                raise RequestError(HTTPStatus.BAD_REQUEST, str(error)) from None
        raise RequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {content_type} is not accepted; use {accepted}",
        )

    def _send_json(
        self, status: HTTPStatus, document: dict, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(document, allow_nan=False).encode()
        extra = {"Cache-Control": "no-store", **(headers or {})}
        self._send(status, body, "application/json", extra)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str]
    ) -> None:
        """Headers, then the body unless this is a HEAD request. (Headers and body go out in
        two writes: disable_nagle_algorithm keeps that from a 40 ms delayed-ACK stall.)"""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        """Errors found by http.server itself (malformed request line, header too long, ...)
        as JSON like every other error."""
        self.close_connection = True
        # An unparsable request line leaves http.server's HTTP/0.9 default, which would
        # suppress the status line and headers: answer it like any other client.
        self.request_version = "HTTP/1.0"
        status = HTTPStatus(code)
        self._send_json(status, {"error": message or status.phrase})

    def log_message(self, format: str, *args) -> None:
        if self.server.log_requests:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def make_server(
    predict: PredictFunction, host: str = "127.0.0.1", port: int = 8000, log_requests: bool = True
) -> PredictionServer:
    """A bound, not yet serving server; port 0 picks a free port (see `.url`)."""
    return PredictionServer((host, port), predict, log_requests)


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--model", type=Path, default=PIPELINE_MODEL.path)
    arguments.add_argument("--port", type=int, default=8000)
    arguments.add_argument("--quiet", action="store_true")
    args = arguments.parse_args()
    pin_cpu_kernels()
    predictor = Predictor.from_file(args.model)
    server = make_server(predictor.probabilities, "127.0.0.1", args.port, not args.quiet)
    print(f"Serving the drawing page on {server.url} (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
