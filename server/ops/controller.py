"""GET /metrics (Prometheus text format) and GET /readyz (can this process reach its database?).

/metrics is read by a monitoring system, not by people: with LANSHOU_METRICS_TOKEN set it asks for
`Authorization: Bearer <token>`; without one it answers only clients on the loopback interface (a
Prometheus or an agent on the same machine), so a fresh install leaks nothing to the network. Behind a
reverse proxy on the same machine, requests arrive from loopback: the proxy must pass X-Forwarded-For
(uvicorn then sees the real client) or not route /metrics, or the token must be set.

Besides the process's own families (server/ops/metrics.py) a scrape reads a few counts from the
database, each through an index, so every process reports the same deployment-wide values: offers
waiting for an answer, pickups waiting, how overdue the oldest due timer is (a stuck scheduler shows
here even when nothing fires), and the webhook backlog.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import time
from typing import Any

from litestar import Request, Response, get
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from server.db.engine import sqlite_path
from server.errors import ApiError
from server.ops.metrics import MULTIPROCESS_DIR
from server.settings import Settings
from server.tables import Timer

log = logging.getLogger("lanshou.ops")

# The classic text format every Prometheus reads (Litestar adds the charset); our names need nothing newer.
EXPOSITION_TYPE = "text/plain; version=0.0.4"

# A scrape or a readiness probe that waits longer than this on the database reports it as failing.
DATABASE_TIMEOUT_S = 2.0

_WAITING_SQL = (
    "SELECT status, count(*) AS n FROM pickups WHERE status IN ('pending', 'offered') GROUP BY status"
)
# Open offers exist only on offered pickups (every other step ends them): the join keeps the count on
# the status index and the offers' pickup index instead of reading every offer ever made.
_OFFERS_SQL = (
    "SELECT count(*) AS n FROM pickup_offers o JOIN pickups p ON p.id = o.pickup "
    "WHERE p.status = 'offered' AND o.outcome IS NULL"
)
_OLDEST_DUE_SQL = "SELECT min(due_ms) AS due_ms FROM timers"
_DELIVERIES_SQL = "SELECT status, count(*) AS n FROM webhook_deliveries WHERE status IN ('pending', 'failing') GROUP BY status"
_PARTNERS_SQL = (
    "SELECT CASE WHEN webhook_dead_since IS NOT NULL THEN 'dead' "
    "WHEN webhook_attempts > 0 THEN 'failing' ELSE 'ok' END AS state, count(*) AS n "
    "FROM partners WHERE webhook_url IS NOT NULL AND active = {true} GROUP BY 1"
)


class _Snapshot(Collector):
    """Values read from the database for one scrape, handed to prometheus_client as gauge families."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Any:
        return iter(self.families)


def _gauge(
    name: str, doc: str, value: float | None = None, label: str = "", values: dict[str, float] | None = None
) -> GaugeMetricFamily:
    if label:
        family = GaugeMetricFamily(name, doc, labels=[label])
        for key, n in (values or {}).items():
            family.add_metric([key], n)
        return family
    return GaugeMetricFamily(name, doc, value=value or 0)


async def _database_families(postgres: bool) -> list[GaugeMetricFamily]:
    raw = Timer.raw
    waiting = {r["status"]: r["n"] for r in await raw(_WAITING_SQL)}
    offers = (await raw(_OFFERS_SQL))[0]["n"]
    oldest = (await raw(_OLDEST_DUE_SQL))[0]["due_ms"]
    overdue_s = max(0.0, time.time() - oldest / 1000) if oldest is not None else 0.0
    deliveries = {r["status"]: r["n"] for r in await raw(_DELIVERIES_SQL)}
    partners = {r["state"]: r["n"] for r in await raw(_PARTNERS_SQL.format(true="true" if postgres else "1"))}
    return [
        _gauge(
            "lanshou_offers_waiting",
            "Open offers: couriers asked to take a pickup who have not answered.",
            offers,
        ),
        _gauge(
            "lanshou_pickups_waiting",
            "Pickups no courier has taken yet: pending (no one to offer to) or offered (waiting for an accept).",
            label="status",
            values={s: waiting.get(s, 0) for s in ("pending", "offered")},
        ),
        _gauge(
            "lanshou_scheduler_overdue_seconds",
            "How long the oldest timer has been due and not yet fired (0: none overdue).",
            overdue_s,
        ),
        _gauge(
            "lanshou_webhook_deliveries_waiting",
            "Webhook batches not yet delivered: pending (first attempt) or failing (retrying).",
            label="status",
            values={s: deliveries.get(s, 0) for s in ("pending", "failing")},
        ),
        _gauge(
            "lanshou_webhook_partners",
            "Partners with a webhook, by state: ok, failing (retrying with backoff) or dead (given up).",
            label="state",
            values={s: partners.get(s, 0) for s in ("ok", "failing", "dead")},
        ),
    ]


def _exposition(families: list[GaugeMetricFamily]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    if MULTIPROCESS_DIR:
        from prometheus_client import multiprocess

        own = CollectorRegistry()
        multiprocess.MultiProcessCollector(own)
        return generate_latest(own) + generate_latest(registry)
    return generate_latest(REGISTRY) + generate_latest(registry)


def _loopback(request: Request[Any, Any, Any]) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_metrics_access(request: Request[Any, Any, Any], settings: Settings) -> None:
    if settings.metrics_token:
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.metrics_token.encode()
        ):
            raise ApiError(
                401,
                "unauthorized",
                "metrics need Authorization: Bearer <LANSHOU_METRICS_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    elif not _loopback(request):
        raise ApiError(
            403,
            "forbidden",
            "metrics are served to loopback clients only unless LANSHOU_METRICS_TOKEN is set",
        )


@get("/metrics", include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    settings: Settings = request.app.state.settings
    check_metrics_access(request, settings)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S):
            families = await _database_families(not settings.is_sqlite)
        database_up = 1
    except Exception:
        families, database_up = [], 0
    families.append(
        _gauge(
            "lanshou_metrics_database_up",
            "1 when this scrape could read its counts from the database.",
            database_up,
        )
    )
    # Reading the other processes' files is blocking I/O: off the event loop.
    body = await asyncio.to_thread(_exposition, families)
    return Response(body, media_type=EXPOSITION_TYPE, headers={"Cache-Control": "no-store"})


async def _check_database(settings: Settings) -> str | None:
    """None when the database answers `SELECT 1` in time; else what is wrong."""
    if settings.is_sqlite and not await asyncio.to_thread(os.path.exists, sqlite_path(settings.database_url)):
        # An open connection keeps answering from a deleted file while nothing written reaches the path.
        return "the database file is gone"
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S):
            await Timer.raw("SELECT 1 AS ok")
    except TimeoutError:
        log.warning("readyz: the database gave no answer within %g s", DATABASE_TIMEOUT_S)
        return f"no answer within {DATABASE_TIMEOUT_S:g} s"
    except Exception as exc:
        # The detail (names, addresses) goes to the log, not to an anonymous prober.
        log.warning("readyz: the database check failed: %s: %s", type(exc).__name__, exc)
        return "unreachable"
    return None


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """200 when this process can serve (its database answers); 503 naming the failing check otherwise.

    /health stays the liveness and push check (a process that cannot push is taken out as before)."""
    settings: Settings = request.app.state.settings
    problem = await _check_database(settings)
    if problem is None:
        return Response({"status": "ok", "checks": {"database": "ok"}}, headers={"Cache-Control": "no-store"})
    return Response(
        {"status": "unavailable", "checks": {"database": problem}},
        status_code=503,
        headers={"Cache-Control": "no-store"},
    )
