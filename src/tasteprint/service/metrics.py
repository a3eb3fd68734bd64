"""The service's Prometheus metrics (prometheus-client), with no user ids: requests by route template
and status, their latency, and how many recommendation requests each batch answered.

With several worker processes (`tasteprint serve --workers N`) each process counts its own requests,
so `/metrics` answered by one worker showed that worker's share alone. `serve` then names a fresh
folder in PROMETHEUS_MULTIPROC_DIR before the workers start: each worker writes its values to files
there (prometheus-client's multiprocess mode, chosen when the library is imported), and `/metrics`
adds up every worker's, whichever one answers."""

from __future__ import annotations

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

SHARED_FOLDER = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """The metrics of one app, and their text for `/metrics`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tasteprint_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.seconds = Histogram(
            "tasteprint_request_seconds", "time to answer, by route", ["route"], registry=self.registry
        )
        self.batch_sizes = Histogram(
            "tasteprint_recommendation_batch_size",
            "recommendation requests answered together",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """Every worker's values added up when they share a folder, else this process's."""
        if not os.environ.get(SHARED_FOLDER):
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker)
        return generate_latest(every_worker)


class Measured:
    """ASGI middleware counting requests by route template (no user ids) and status, and timing them."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def noting(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.seconds.labels(route).observe(time.perf_counter() - started)
