"""Prometheus metrics at ``/metrics`` (``prometheus_client``, text exposition format).

- ``nas_http_request_duration_seconds``: a histogram of request latency by method, route
  template (``/api/v1/jobs/{job_id}``, never the raw path; ``unmatched`` for a 404 path) and
  status code, measured by a plain ASGI middleware around the whole app (errors included);
- read from the store at each scrape: ``nas_jobs{state}`` (every state, 0 included),
  ``nas_queue_depth`` and ``nas_queue_oldest_age_seconds``, ``nas_pending_exports``, and per
  worker holding running jobs ``nas_worker_running_jobs{worker}``,
  ``nas_worker_heartbeat_age_seconds{worker}`` (by the store's clock, as the reaper sees it)
  and ``nas_worker_last_heartbeat_timestamp_seconds{worker}``; ``nas_store_up`` is 0 when the
  store could not be read (the rest of the scrape still answers);
- the process's own CPU, memory and GC figures.

Each app has its own registry (several apps in one process, as the tests make, never clash).
Figures are per API process; the store's figures are the same from every process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nas_service.api.route_table import RouteTable
from nas_service.db import Database
from nas_service.db import artifacts as arts
from nas_service.db import jobs as job_repo

log = logging.getLogger(__name__)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StoreCollector(Collector):
    """Job, queue, export and worker-heartbeat figures, read from the store at each scrape."""

    def __init__(self, db: Database):
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("nas_store_up", "1 when the store answered this scrape")
        try:
            figures = self._read()
        except Exception as exc:  # a scrape must still answer while the store is down
            log.warning("metrics: the store could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures

    def _read(self) -> list[Metric]:
        with self.db.transaction() as s:
            counts = job_repo.count_by_status(s)
            oldest = job_repo.oldest_queued_at(s)
            beats = job_repo.worker_heartbeats(s)
            pending = arts.count_pending_exports(s)
            now = job_repo.db_now(s)
        jobs = GaugeMetricFamily("nas_jobs", "jobs by state", labels=["state"])
        for state, n in counts.items():
            jobs.add_metric([state], n)
        depth = GaugeMetricFamily("nas_queue_depth", "queued jobs waiting for a worker")
        depth.add_metric([], counts.get("queued", 0))
        age = GaugeMetricFamily(
            "nas_queue_oldest_age_seconds", "how long the oldest queued job has waited (0: none)"
        )
        age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        exports = GaugeMetricFamily("nas_pending_exports", "export requests not yet made")
        exports.add_metric([], pending)
        running = GaugeMetricFamily(
            "nas_worker_running_jobs", "running jobs held per worker", labels=["worker"]
        )
        beat_age = GaugeMetricFamily(
            "nas_worker_heartbeat_age_seconds",
            "seconds since the worker's latest heartbeat on any of its jobs (store clock)",
            labels=["worker"],
        )
        beat_ts = GaugeMetricFamily(
            "nas_worker_last_heartbeat_timestamp_seconds",
            "the worker's latest heartbeat, Unix time",
            labels=["worker"],
        )
        for worker, n, at in beats:
            running.add_metric([worker], n)
            if at is not None:
                beat_age.add_metric([worker], max(0.0, (now - at).total_seconds()))
                beat_ts.add_metric([worker], at.timestamp())
        return [jobs, depth, age, exports, running, beat_age, beat_ts]


class RequestMetrics:
    """ASGI middleware: one histogram observation per HTTP request."""

    def __init__(self, app: ASGIApp, histogram: Histogram, table: RouteTable):
        self.app = app
        self.histogram = histogram
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = str(scope.get("method", ""))
            route = self.table.template(method, str(scope.get("path", "")))
            self.histogram.labels(
                method if method in METHODS else "other", route, str(status)
            ).observe(time.perf_counter() - start)


def install(app: Any, db: Database) -> CollectorRegistry:
    """A registry for ``app`` with the request histogram, the store's figures and the
    process's own; the middleware that fills the histogram is added to ``app``."""
    registry = CollectorRegistry()
    histogram = Histogram(
        "nas_http_request_duration_seconds",
        "HTTP request latency by method, route template and status",
        ["method", "route", "status"],
        buckets=BUCKETS,
        registry=registry,
    )
    registry.register(StoreCollector(db))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    table = app.state.route_table = RouteTable(app)
    app.add_middleware(RequestMetrics, histogram=histogram, table=table)
    app.state.metrics_registry = registry
    return registry


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
    summary="Prometheus metrics (no auth): request latency, jobs by state, queue, workers",
)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
