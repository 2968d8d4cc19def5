"""The process's Prometheus metric families and the ASGI wrapper that counts and times every request.

prometheus_client (the Prometheus project's own Python client) keeps the values. One process: they live
in its memory. Several processes (`PROMETHEUS_MULTIPROC_DIR` set to an empty, writable directory before
they start): each writes its values to memory-mapped files there and whichever process answers
/metrics adds them all up (server/ops/controller.py), so a scrape through a load balancer sees the
whole deployment. Gauges of this process's own state (open streams) are summed over the live
processes only ("livesum"); a stopping process removes its files (mark_process_dead).

Per request the wrapper does a dict lookup, one counter increment and one histogram observation, all
in memory (or an mmap write): about a microsecond or two; see README "Operations" for the measurement.
"""

from __future__ import annotations

import logging
import os
from time import perf_counter
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The `_created` timestamp series double the output and Prometheus does not need them.
disable_created_metrics()

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

# The methods counted by name; anything else (a client may send any token) is "other", so a stream of
# made-up methods cannot grow the label set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED = "unmatched"  # no route: the 404s of paths the app does not serve (one label for all)

REQUESTS = Counter(
    "lanshou_http_requests",
    "HTTP requests answered, by method, route template and status class.",
    ["method", "route", "status"],
)
# Time until the response's headers go out: the whole handler for a normal response (Litestar builds the
# body first), the opening for an SSE stream (a stream's life is not a latency).
LATENCY = Histogram(
    "lanshou_http_request_duration_seconds",
    "Time from a request's arrival until its response headers go out, by method, route template and "
    "status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SSE_STREAMS = Gauge(
    "lanshou_sse_streams_open",
    "Server-Sent Event streams open now, by kind (courier app, console, customer tracking page).",
    ["kind"],
    multiprocess_mode="livesum",
)
SCHEDULER_LAG = Histogram(
    "lanshou_scheduler_lag_seconds",
    "How late durable timers (offer expiry, time limits, alerts) fire after their due time.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
for _kind in ("courier", "console", "tracking"):
    SSE_STREAMS.labels(_kind)  # present at 0 from the start, so dashboards and alerts see the series

access_log = logging.getLogger("lanshou.access")


class RequestMetrics:
    """ASGI wrapper around the whole Litestar handler (routing and exception handling included, so
    404s and 500s count). The route label is Litestar's path template (`/t/{code:str}`), which routing
    has written into the scope by the time the response starts; never the raw path."""

    def __init__(self, app: Any, *, log_access: bool) -> None:
        self.app = app
        self.log_access = log_access
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()

        async def send_and_count(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.record(scope, message["status"], perf_counter() - start)
            await send(message)

        await self.app(scope, receive, send_and_count)

    def record(self, scope: Any, status: int, elapsed: float) -> None:
        method = scope["method"]
        if method not in _METHODS:
            method = "other"
        route = scope.get("path_template") or _UNMATCHED
        key = (method, route, status // 100)
        series = self._series.get(key)
        if series is None:
            labels = (method, route, f"{status // 100}xx")
            series = self._series[key] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
        series[0].inc()
        series[1].observe(elapsed)
        if self.log_access and access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": client[0] if client else None,
                },
            )


def process_stopped() -> None:
    """Remove this process's live gauges from the shared directory (several processes only)."""
    if MULTIPROCESS_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
