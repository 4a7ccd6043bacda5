"""Prometheus metrics of the HTTP endpoint: its own requests, and the cluster's per-worker cache counters.

Each app has its own :class:`prometheus_client.CollectorRegistry` (several apps in one process, e.g. in tests,
do not share counters). Worker figures come from one ``LatentClient.stats()`` call per scrape.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "REJECT_REASONS", "ROUTE_KEY", "HttpMetrics", "MetricsMiddleware"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ROUTE_KEY = "latentzarr.route"
"""ASGI scope key where a handler names its route template (the ``route`` label)."""

REJECT_REASONS = ("url_too_long", "body_too_large", "rate_limited", "unauthorized")
"""Values of the ``reason`` label of ``latentzarr_http_rejected_total`` (the checks of ``limits.py``)."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Histogram bucket bounds (seconds)."""

# worker stat -> (metric name, help, kind); counters are cumulative since the worker started
_WORKER_COUNTERS = {
    "requests": "cache lookups (image-tier requests)",
    "image_hits": "image-tier hits",
    "latent_hits": "latent-tier hits",
    "misses": "misses of both tiers",
    "promotions": "latents promoted to the image tier",
    "reads": "reads that missed the owner's image tier and ran as a task",
    "decodes": "latents decoded",
    "store_fetches": "latents fetched from the store",
    "spilled": "reads that ran away from their owner (work stealing)",
    "writebacks": "results written back to this owner by reads that ran elsewhere",
    "decode_batches": "decoder forward passes",
    "resized": "renditions resized and encoded from a cached full-size picture (no decode)",
}
_WORKER_GAUGES = {
    "alpha": "share of the cache budget given to the image tier",
    "image_bytes": "bytes in the image tier",
    "latent_bytes": "bytes in the latent tier",
    "capacity": "cache budget in bytes (both tiers)",
    "queue_depth": "latents waiting for a decode",
}


class _WorkerCollector(Collector):
    """Exposes the last worker stats snapshot (set by :meth:`HttpMetrics.render`)."""

    def __init__(self) -> None:
        self.snapshot: Mapping[str, Mapping[str, Any]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["worker", "worker_name"]
        families = {}
        for stat, doc in _WORKER_COUNTERS.items():
            families[stat] = GaugeMetricFamily(f"latentzarr_worker_{stat}", f"Per worker: {doc} (cumulative).",
                                               labels=labels)
        for stat, doc in _WORKER_GAUGES.items():
            families[stat] = GaugeMetricFamily(f"latentzarr_worker_{stat}", f"Per worker: {doc}.", labels=labels)
        ratios = {tier: GaugeMetricFamily(f"latentzarr_worker_{tier}_hit_ratio",
                                          f"Per worker: {tier}-tier hits / cache lookups (cumulative).",
                                          labels=labels) for tier in ("image", "latent")}
        for address, st in sorted(self.snapshot.items()):
            lv = [address, str(st.get("worker_name") or address)]
            for stat, fam in families.items():
                if isinstance(st.get(stat), int | float):
                    fam.add_metric(lv, float(st[stat]))
            lookups = st.get("requests") or 0
            for tier, fam in ratios.items():
                fam.add_metric(lv, (st.get(f"{tier}_hits", 0) / lookups) if lookups else 0.0)
        yield from families.values()
        yield from ratios.values()


class HttpMetrics:
    """The endpoint's metrics: requests, latency, coalesced reads, cluster errors, and per-worker figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("latentzarr_http_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("latentzarr_http_request_duration_seconds",
                                 "Time from request to the end of the response (seconds), by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.coalesced = Counter("latentzarr_http_coalesced_reads",
                                 "Image requests that joined a read of the same id and rendition already in flight "
                                 "in this endpoint (no second cluster call).", registry=self.registry)
        self.cluster_reads = Counter("latentzarr_http_cluster_reads",
                                     "Reads this endpoint sent to the cluster, by kind (image or latent).",
                                     ["kind"], registry=self.registry)
        self.not_modified = Counter("latentzarr_http_not_modified",
                                    "Image requests answered 304 from If-None-Match (no cluster call).",
                                    registry=self.registry)
        self.unavailable = Counter("latentzarr_http_unavailable",
                                   "Requests answered 503 because the cluster or the store failed, by cause.",
                                   ["cause"], registry=self.registry)
        self.rejected = Counter("latentzarr_http_rejected",
                                "Requests refused by the request limits, by reason (url_too_long 414, "
                                "body_too_large 413, rate_limited 429, unauthorized 401).",
                                ["reason"], registry=self.registry)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self._workers = _WorkerCollector()
        self.registry.register(self._workers)

    async def render(self, worker_stats: Callable[[], Awaitable[Mapping[str, Any]]] | None) -> bytes:
        """Prometheus text exposition; refreshes the per-worker snapshot first (kept as is when that fails)."""
        if worker_stats is not None:
            try:
                self._workers.snapshot = (await worker_stats()).get("workers", {})
            except Exception:  # the cluster is down: the endpoint's own metrics still matter most
                self.unavailable.labels("metrics").inc()
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts HTTP requests and observes their latency by route template."""

    def __init__(self, app: Callable, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get(ROUTE_KEY, "other")
            self.metrics.requests.labels(route, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
