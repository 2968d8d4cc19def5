"""Operations: GET /metrics for Prometheus (requests by route template, open streams, offers waiting,
scheduler lag, webhook backlog; a token or loopback only; several processes adding up), GET /readyz
(200 while the database answers, 503 naming the check when it goes away) and JSON logs.

Each test reads a server of this module's own (demo data of its own), so other tests' pickups, offers
and webhooks never move its numbers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    ON_POSTGRES,
    PG_ADMIN_URL,
    ROOT,
    Database,
    Personas,
    ServerProcess,
    SSEStream,
    _pg_admin,
    demo_server,
    login_couriers,
    make_zone,
    migrated_database,
    pickup_body,
)
from tests.test_webhook_deliveries import run_sql
from tests.test_webhooks import Receiver, new_partner

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def ops_server() -> Iterator[tuple[Database, ServerProcess, str]]:
    with demo_server(
        "lanshou-metrics-",
        LANSHOU_SCHEDULER_INTERVAL_MS="50",
        LANSHOU_WEBHOOK_INTERVAL_MS="100",
        LANSHOU_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
    ) as running:
        yield running


@pytest.fixture
async def ops(ops_server: tuple[Database, ServerProcess, str]) -> AsyncIterator[Personas]:
    _db, server, api_key = ops_server
    personas = Personas(server, api_key)
    yield personas
    await personas.close()


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels (the parser also checks the format)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(base_url: str, **headers: str) -> Samples:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def eventually(base_url: str, check, timeout: float = 20.0) -> Samples:  # type: ignore[no-untyped-def]
    """Scrapes until `check(samples)` holds; the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(base_url)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, "the metrics never showed it"
        await asyncio.sleep(0.1)


# -- requests ------------------------------------------------------------------------------------------


async def test_requests_count_under_their_route_template_never_the_raw_path(ops: Personas) -> None:
    url = ops.server.url
    series = {"method": "GET", "route": "/t/{code}/status", "status": "4xx"}
    before = await scrape(url)
    anonymous = ops.anonymous()
    codes = [f"LS{uuid.uuid4().hex[:10].upper()}" for _ in range(3)]
    for code in codes:
        assert (await anonymous.get(f"/t/{code}/status")).status_code == 404
    assert (await anonymous.get("/no/such/page")).status_code == 404
    r = await anonymous.get("/metrics")
    after = parse(r.text)
    assert value(after, "lanshou_http_requests_total", **series) == value(
        before, "lanshou_http_requests_total", **series
    ) + len(codes)
    histogram_count = value(after, "lanshou_http_request_duration_seconds_count", **series)
    assert histogram_count == value(before, "lanshou_http_request_duration_seconds_count", **series) + 3
    assert value(after, "lanshou_http_request_duration_seconds_sum", **series) > 0
    # Unknown paths all fall under one label; no code and no made-up path becomes a series.
    assert value(after, "lanshou_http_requests_total", method="GET", route="unmatched", status="4xx") >= 1
    assert not any(code in r.text for code in codes) and "/no/such/page" not in r.text
    # The metrics' own requests count too (this scrape's shows in the next).
    assert value(after, "lanshou_http_requests_total", method="GET", route="/metrics", status="2xx") >= 1


async def test_methods_outside_the_usual_count_as_other(ops: Personas) -> None:
    r = await ops.anonymous().request("PROPFIND", "/readyz")
    assert r.status_code >= 400
    samples = await scrape(ops.server.url)
    names = {dict(labels).get("method") for name, labels in samples if name == "lanshou_http_requests_total"}
    assert "PROPFIND" not in names and "other" in names


# -- open streams ---------------------------------------------------------------------------------------


async def test_an_open_stream_shows_in_the_gauge_until_it_closes(ops: Personas) -> None:
    url = ops.server.url
    zone = await make_zone(ops, couriers=1)
    (courier,) = await login_couriers(ops, zone)
    admin = await ops.admin()

    def streams(kind: str):  # type: ignore[no-untyped-def]
        return lambda s: value(s, "lanshou_sse_streams_open", kind=kind)

    assert streams("courier")(await scrape(url)) == 0
    async with SSEStream(courier), SSEStream(admin, path="/console/events"):
        samples = await scrape(url)
        assert streams("courier")(samples) == 1 and streams("console")(samples) == 1
        assert streams("tracking")(samples) == 0
    await eventually(url, lambda s: streams("courier")(s) == 0 and streams("console")(s) == 0)


# -- offers, scheduler, webhooks --------------------------------------------------------------------


async def test_offers_waiting_counts_the_couriers_asked(ops: Personas) -> None:
    url = ops.server.url
    zone = await make_zone(ops, couriers=2)
    couriers = await login_couriers(ops, zone)
    before = await scrape(url)
    r = await ops.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    offered = value(before, "lanshou_pickups_waiting", status="offered")
    waiting = value(before, "lanshou_offers_waiting")
    samples = await eventually(url, lambda s: value(s, "lanshou_offers_waiting") == waiting + 2)
    assert value(samples, "lanshou_pickups_waiting", status="offered") == offered + 1
    # One courier takes it: the offers end.
    pickup_id = r.json()["id"]
    r = await couriers[0].post(f"/api/v1/courier/pickups/{pickup_id}/accept")
    assert r.status_code == 200, r.text
    samples = await eventually(url, lambda s: value(s, "lanshou_offers_waiting") == waiting)
    assert value(samples, "lanshou_pickups_waiting", status="offered") == offered


async def test_scheduler_lag_is_how_late_a_timer_fired(
    ops: Personas, ops_server: tuple[Database, ServerProcess, str]
) -> None:
    db = ops_server[0]
    url = ops.server.url
    zone = await make_zone(ops)
    r = await ops.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    before = await scrape(url)
    count = value(before, "lanshou_scheduler_lag_seconds_count")
    late_s = 30
    # A timer of no kind the scheduler acts on, due half a minute ago: it is claimed and dropped.
    await run_sql(
        db,
        "INSERT INTO timers (kind, pickup, due_ms, round, attempts) VALUES ('metrics_test', ?, ?, 0, 0)",
        r.json()["id"],
        int(time.time() * 1000) - late_s * 1000,
    )
    samples = await eventually(url, lambda s: value(s, "lanshou_scheduler_lag_seconds_count") == count + 1)
    lag = value(samples, "lanshou_scheduler_lag_seconds_sum") - value(
        before, "lanshou_scheduler_lag_seconds_sum"
    )
    assert late_s <= lag < late_s + 30
    assert value(samples, "lanshou_scheduler_lag_seconds_bucket", le="10.0") == value(
        before, "lanshou_scheduler_lag_seconds_bucket", le="10.0"
    )
    # A scrape reads the timers table before it reads the histogram, so the one that saw the count go
    # up may have read the table just before the timer's claim committed: the next scrape cannot.
    assert value(await scrape(url), "lanshou_scheduler_overdue_seconds") < late_s


async def test_webhook_backlog_shows_a_failing_partner(
    ops: Personas, ops_server: tuple[Database, ServerProcess, str]
) -> None:
    db = ops_server[0]
    url = ops.server.url
    receiver = Receiver(fail_first=10_000, fail_status=503)
    try:
        before = await scrape(url)
        partner = ops.partner(new_partner(db))
        r = await partner.put("/api/v1/partner/webhook", json={"url": receiver.url})
        assert r.status_code == 200, r.text
        samples = await scrape(url)
        assert (
            value(samples, "lanshou_webhook_partners", state="ok")
            == value(before, "lanshou_webhook_partners", state="ok") + 1
        )
        zone = await make_zone(ops)
        assert (await partner.post("/api/v1/pickups", json=pickup_body(zone))).status_code == 201
        failing = value(before, "lanshou_webhook_deliveries_waiting", status="failing")
        samples = await eventually(
            url, lambda s: value(s, "lanshou_webhook_deliveries_waiting", status="failing") == failing + 1
        )
        assert (
            value(samples, "lanshou_webhook_partners", state="failing")
            == value(before, "lanshou_webhook_partners", state="failing") + 1
        )
        assert value(samples, "lanshou_metrics_database_up") == 1
    finally:
        receiver.close()


# -- who may read them ------------------------------------------------------------------------------


async def test_without_a_token_only_loopback_clients_may_read_the_metrics(ops: Personas) -> None:
    # The server trusts X-Forwarded-For from loopback (a reverse proxy on the same machine).
    r = await ops.anonymous().get("/metrics", headers={"x-forwarded-for": "203.0.113.9"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert (await ops.anonymous().get("/metrics")).status_code == 200


@pytest.fixture(scope="module")
def json_server() -> Iterator[ServerProcess]:
    """A server with a metrics token and JSON logs at info level (access lines included)."""
    with migrated_database("lanshou-metrics-json-") as database:
        server = ServerProcess(
            database,
            LANSHOU_METRICS_TOKEN="metrics-token-0123456789",
            LANSHOU_LOG_FORMAT="json",
            LANSHOU_LOG_LEVEL="info",
        ).start()
        try:
            yield server
        finally:
            server.stop()


async def test_with_a_token_the_metrics_ask_for_it(json_server: ServerProcess) -> None:
    url = json_server.url
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.get("/metrics")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = await client.get("/metrics", headers={"authorization": "Bearer not-the-token-at-all"})
        assert r.status_code == 401
    samples = await scrape(url, authorization="Bearer metrics-token-0123456789")
    assert value(samples, "lanshou_metrics_database_up") == 1


async def test_json_logs_are_one_object_a_line_with_access_fields(json_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=json_server.url, timeout=30) as client:
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/t/LSNOSUCHCODE/status")).status_code == 404

    def access_lines() -> list[dict[str, object]]:
        lines = [line for line in json_server.log().splitlines() if line.strip()]
        entries = [msgspec.json.decode(line) for line in lines]  # every line is one JSON object
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries), entries
        return [e for e in entries if e["logger"] == "lanshou.access"]

    deadline = time.monotonic() + 10
    while not any(e["path"] == "/t/LSNOSUCHCODE/status" for e in access_lines()):
        assert time.monotonic() < deadline, json_server.log()
        await asyncio.sleep(0.1)
    entries = access_lines()
    (ready,) = [e for e in entries if e["path"] == "/readyz"]
    assert ready["method"] == "GET" and ready["status"] == 200 and ready["route"] == "/readyz"
    assert isinstance(ready["duration_ms"], float) and ready["client"] == "127.0.0.1"
    (missing,) = [e for e in entries if e["path"] == "/t/LSNOSUCHCODE/status"]
    assert missing["status"] == 404 and missing["route"] == "/t/{code}/status"
    # uvicorn's own lines are JSON too (its startup message).
    assert "Application startup complete." in json_server.log()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LANSHOU_LOG_FORMAT", "xml"),
        ("LANSHOU_METRICS_TOKEN", "short"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent"),
    ],
)
def test_a_bad_setting_stops_the_server_with_its_name(tmp_path: Path, name: str, raw: str) -> None:
    database = Database.__new__(Database)
    database.tmp, database.url = tmp_path, f"sqlite:///{tmp_path / 'unused.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", "1"],
        cwd=ROOT,
        env=database.env(**{name: raw}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and name in result.stderr, result.stderr


# -- readiness ------------------------------------------------------------------------------------------


@pytest.fixture
def own_database() -> Iterator[Database]:
    with migrated_database("lanshou-metrics-own-") as database:
        yield database


async def test_readyz_answers_503_naming_the_database_once_it_is_gone(own_database: Database) -> None:
    database = own_database
    server = ServerProcess(database).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            r = await client.get("/readyz")
            assert r.status_code == 200 and r.json() == {"status": "ok", "checks": {"database": "ok"}}
            if ON_POSTGRES:
                await _pg_admin(PG_ADMIN_URL, f'DROP DATABASE "{database.name}" WITH (FORCE)')
            else:
                database.path.rename(database.path.with_suffix(".moved"))
            r = await client.get("/readyz")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] == "unavailable" and body["checks"]["database"] != "ok"
            assert database.name not in r.text  # the detail goes to the log, not to a prober
            # The metrics still answer; on PostgreSQL they say they could not read the database (a
            # SQLite connection still reads the moved file: only /readyz checks the path).
            samples = await scrape(server.url)
            if ON_POSTGRES:
                assert value(samples, "lanshou_metrics_database_up") == 0
    finally:
        server.stop()


# -- several processes ------------------------------------------------------------------------------


async def test_processes_sharing_a_multiprocess_directory_add_up(
    tmp_path: Path, own_database: Database
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    database = own_database
    first = ServerProcess(database, PROMETHEUS_MULTIPROC_DIR=str(shared)).start()
    second = ServerProcess(database, PROMETHEUS_MULTIPROC_DIR=str(shared)).start()
    try:
        series = {"method": "GET", "route": "/readyz", "status": "2xx"}
        for server, times in ((first, 2), (second, 3)):
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                for _ in range(times):
                    assert (await client.get("/readyz")).status_code == 200
        # Either process answers for both.
        for server in (first, second):
            assert value(await scrape(server.url), "lanshou_http_requests_total", **series) == 5
        assert any(name.endswith(".db") for name in os.listdir(shared))
        # A process that stopped still counts in the totals (counters never go back).
        first.stop()
        assert value(await scrape(second.url), "lanshou_http_requests_total", **series) >= 5
    finally:
        first.stop()
        second.stop()
