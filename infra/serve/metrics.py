"""``/metrics``: Prometheus text for every worker together (prometheus-client's multiprocess mode).

``nextwatch serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder before its
workers start; each worker writes its counters there and any worker answers
``/metrics`` for all of them. Without that variable (one process, the tests) a
registry of the process's own is served.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# request latency buckets, seconds: the API answers in milliseconds, a Cassandra timeout in half a second
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("nextwatch_serve_requests", "Requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("nextwatch_serve_request_seconds", "Time to answer a request, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.cache_lookups = Counter("nextwatch_serve_cache_lookups", "Cache lookups, by route and result",
                                     ["route", "result"], registry=self.registry)
        self.cassandra_errors = Counter("nextwatch_serve_cassandra_errors",
                                        "Cassandra reads that failed or timed out (answered 503)",
                                        registry=self.registry)
        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def cache(self, route: str, hit: bool) -> None:
        self.cache_lookups.labels(route, "hit" if hit else "miss").inc()

    def cassandra_error(self) -> None:
        self.cassandra_errors.inc()

    def render(self) -> bytes:
        if not self._multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
