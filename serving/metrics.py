"""Prometheus metrics of the serving app (one registry per app, exposed at GET /metrics).

With several workers (`retail serve --workers N`) a scrape reaches one of them, so its own
counters would be a fraction of the traffic. The CLI then sets `PROMETHEUS_MULTIPROC_DIR`
before the workers start: prometheus_client keeps every worker's values in files there, and
GET /metrics answers the sum over the workers (gauges: the maximum, or per worker where the
worker matters), whichever worker serves the scrape.
"""

from __future__ import annotations

import os
import re
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_ADMIN_MODEL = re.compile(r"^/v1/admin/models/[^/]+/([^/]+)$")


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "retail_http_requests",
            "HTTP requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "retail_http_request_latency_seconds",
            "Time in the app per request (route template).",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "retail_predictions",
            "Predictions by model, version and rollout arm (champion, challenger, shadow).",
            ["model", "version", "arm"],
            registry=self.registry,
        )
        self.prediction_latency = Histogram(
            "retail_prediction_latency_seconds",
            "Feature join + inference time per prediction call, by model version.",
            ["model", "version", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "retail_feature_fallbacks",
            "Requests answered from cold-start features, by kind.",
            ["model", "fallback"],
            registry=self.registry,
        )
        self.errors = Counter(
            "retail_errors",
            "Server-side errors by route template and kind.",
            ["route", "kind"],
            registry=self.registry,
        )
        self.loaded = Gauge(
            "retail_model_loaded_info",
            "1 for each loaded (model, role, version).",
            ["model", "role", "version"],
            multiprocess_mode="liveall",
            registry=self.registry,
        )
        self.degraded = Gauge(
            "retail_serving_degraded",
            "1 while the app serves with a refused bundle or feature table.",
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.canary_share = Gauge(
            "retail_rollout_canary_share",
            "Configured share of entities routed to the challenger, per model.",
            ["model", "mode"],
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "retail_price_breaker_open",
            "1 while the pricing circuit breaker of a model version is open.",
            ["model", "version"],
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.prediction_log_pending = Gauge(
            "retail_prediction_log_pending_rows",
            "Predictions buffered and not yet flushed to Parquet.",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self.assistant_answers = Counter(
            "retail_assistant_answers",
            "Assistant answers by prompt version and outcome (answered, declined).",
            ["prompt_version", "outcome"],
            registry=self.registry,
        )
        self.assistant_removed_claims = Counter(
            "retail_assistant_removed_claims",
            "Claims the grounding guard removed from drafts (hallucinations caught).",
            ["prompt_version"],
            registry=self.registry,
        )
        self.assistant_injection_flags = Counter(
            "retail_assistant_injection_flags",
            "Instruction-like text removed from messages, history or retrieved documents.",
            ["prompt_version"],
            registry=self.registry,
        )
        self.assistant_latency = Histogram(
            "retail_assistant_latency_seconds",
            "Assistant answer time (retrieval, generation, guard) by prompt version.",
            ["prompt_version"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        self.swaps = Counter(
            "retail_model_swaps",
            "Hot swaps of model bundles and feature tables.",
            ["what"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def close(self) -> None:
        """A worker that stops drops out of the live gauges of the others' scrapes."""
        if os.environ.get(MULTIPROCESS_ENV):
            multiprocess.mark_process_dead(os.getpid())


def route_template(path: str, known: frozenset[str]) -> str:
    """Bounded label values: registered routes as themselves, admin model routes templated,
    anything else (404s, scanners) as "unmatched"."""
    if path in known:
        return path
    match = _ADMIN_MODEL.match(path)
    if match and "/v1/admin/models/{name}/" + match.group(1) in known:
        return "/v1/admin/models/{name}/" + match.group(1)
    return "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware: status and latency of every HTTP request, errors included."""

    def __init__(self, app, metrics: ServingMetrics, known_routes: frozenset[str]):
        self.app = app
        self.metrics = metrics
        self.known_routes = known_routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def capture(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = route_template(scope.get("path", ""), self.known_routes)
            self.metrics.requests.labels(route, str(status["code"])).inc()
            self.metrics.request_latency.labels(route).observe(time.perf_counter() - started)
