"""What GET /metrics tells Prometheus about digits-serve, in a registry of its own per app.

    digits_http_requests_total{handler, method, status}           requests answered
    digits_http_request_duration_seconds{handler, status}          their latency (histogram)
    digits_predictions_total{digit, not_a_digit}                   digits read (0-9; "true" when
                                                                   the image did not look like one)
    digits_model_info{name, md5}                                   1: the model answering

Requests are timed and counted by prometheus-fastapi-instrumentator's middleware. A client
chooses the path and the method, so neither becomes a label as sent: `handler` is the route's
template, "none" for every path the server does not serve, and `method` one of METHODS or
"OTHER". The series are then bounded by the routes, whatever a client sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info as RequestInfo

METHODS = ("GET", "HEAD", "POST")
# Seconds: a JSON prediction takes 1-5 ms, a 280x280 PNG 5-20 ms, a large photo up to 2 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's Prometheus metrics (see the module's docstring)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model_info: dict[str, Any] | None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "digits_http_requests",
            "HTTP requests answered, by route template ('none': a path not served), "
            "method (OTHER: not GET, HEAD or POST) and status",
            ["handler", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "digits_http_request_duration_seconds",
            "Time from a request's arrival at the application to its answer's end, by route "
            "template and status",
            ["handler", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "digits_predictions",
            "Predictions answered, by digit read and whether the image looked like a digit "
            "at all (not_a_digit=true: it did not)",
            ["digit", "not_a_digit"],
            registry=self.registry,
        )
        for digit in range(10):  # every series from the start, at 0
            for flag in ("false", "true"):
                self.predictions.labels(str(digit), flag)
        if model_info is not None:
            Info("digits_model", "The model answering", registry=self.registry).info(
                {"name": str(model_info["name"]), "md5": str(model_info["md5"])}
            )

    def instrument(self, app: FastAPI) -> None:
        """Time and count every request `app` answers (its middleware, added here)."""
        Instrumentator(
            should_group_status_codes=False,
            should_group_untemplated=True,  # every unknown path is handler="none"
            registry=self.registry,
        ).add(self._observe).instrument(app)

    def _observe(self, info: RequestInfo) -> None:
        method = info.method if info.method in METHODS else "OTHER"
        self.requests.labels(info.modified_handler, method, info.modified_status).inc()
        self.latency.labels(info.modified_handler, info.modified_status).observe(
            info.modified_duration
        )

    def count_prediction(self, result: dict[str, Any]) -> None:
        """One answer of digits.app.predict.prediction_json."""
        flag = "false" if result["not_a_digit"] is None else "true"
        self.predictions.labels(str(result["digit"]), flag).inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
