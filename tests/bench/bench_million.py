"""The read paths at 1,000,000 pickups: the partner's list, a pickup read and the console board's first page.

Run: python -m tests.bench.bench_million [--pickups 1000000] [--requests 200] [--postgres postgresql://…]
(SQLite by default; with --postgres, or LANSHOU_TEST_DATABASE_URL as the tests, on PostgreSQL). Prints
figures only, no timed assertions. Issue #10's target: each under 20 ms p99.

The demo city is copied into a database of its own and filled the way a province's history looks after
60 days (ids rising with time, as they are written):
- pickups spread evenly over 60 days; those of the last hours mostly still open (`--open`, about 8,000 by
  default: a city's busy day), everything older closed (88 % collected, 4 % failed, 8 % cancelled), the
  closed ones updated up to five hours after they were made;
- three partners: the demo partner (whose key the bench uses) sends 60 % of them;
- events as the pickups' lives wrote them (created, offered, accepted, collected / failed / cancelled),
  about 3.8 per pickup, written by INSERT … SELECT from the pickups;
- then VACUUM ANALYZE / ANALYZE, as autovacuum leaves a table in use.

Then a real `lanshou serve` answers, over HTTP, each case `--requests` times after a warm-up:
the partner's list (`GET /api/v1/pickups`, first page; a page of its failed ones; a page deep behind a
cursor), one of the partner's pickups with its history (`GET /api/v1/pickups/{id}`, a different one each
time), and the demo dispatcher's board partial (`GET /console/board` with HX-Request, as console.js loads
it; the dispatcher answers for the whole city, so the board counts every pickup).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

N_DEFAULT = 1_000_000
OPEN_DEFAULT = 8_000
CHUNK = 10_000
DAYS = 60
# Event rows written for the pickups in these states (type, actor kind, which time): see _EVENTS.
_EVENTS = [
    ("pickup.created", "partner", "partner", "created_at", None),
    (
        "pickup.offered",
        "system",
        "NULL",
        "created_at",
        ("offered", "accepted", "contacted", "collected", "failed"),
    ),
    ("pickup.accepted", "courier", "courier", "created_at", ("accepted", "contacted", "collected", "failed")),
    ("pickup.collected", "courier", "courier", "updated_at", ("collected",)),
    ("pickup.failed", "courier", "courier", "updated_at", ("failed",)),
    ("pickup.cancelled", "partner", "partner", "updated_at", ("cancelled",)),
]


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@asynccontextmanager
async def _writer(url: str) -> AsyncIterator[Any]:
    """A function writing many rows at once through the driver itself, in one transaction: sqlite3's
    executemany (with Piccolo's adapters, which its import registers) or asyncpg's COPY. Piccolo's
    raw() with thousands of parameters costs most of a minute per 100,000 rows."""
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():

                async def copy(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
                    await conn.copy_records_to_table(table, records=rows, columns=columns)

                yield copy
        finally:
            await conn.close()
    else:
        import sqlite3

        import piccolo.engine.sqlite  # noqa: F401  (its datetime adapters)

        db = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:

            async def insert(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
                names = ", ".join(f'"{c}"' for c in columns)
                marks = ", ".join("?" * len(columns))
                db.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', rows)

            with db:
                yield insert
        finally:
            db.close()


def _pickups(
    n: int, n_open: int, start: int, count: int, ctx: dict[str, Any], rnd: random.Random
) -> list[dict[str, Any]]:
    """Rows start … start+count-1 of n: row i was created at i/n of the way through the 60 days."""
    from server.domain.contact import new_tracking_code

    rows = []
    span = timedelta(days=DAYS)
    # The open ones are among the last rows written: the last 1.4 × n_open rows are 70 % open.
    open_from = n - int(n_open / 0.7)
    for i in range(start, start + count):
        created = ctx["now"] - span + span * (i / n)
        if i >= open_from and rnd.random() < 0.7:
            status = rnd.choice(["pending", "offered", "offered", "accepted", "contacted", "contacted"])
            updated = created
        else:
            roll = rnd.random()
            status = "collected" if roll < 0.88 else "failed" if roll < 0.92 else "cancelled"
            updated = min(created + timedelta(minutes=rnd.randrange(5, 300)), ctx["now"])
        courier = (
            rnd.choice(ctx["couriers"])
            if status in ("accepted", "contacted", "collected", "failed")
            else None
        )
        roll = rnd.random()
        partner = ctx["partners"][0 if roll < 0.6 else 1 if roll < 0.85 else 2]
        phone = f"1{rnd.choice('3456789')}{rnd.randrange(10**9):09d}"
        rows.append(
            dict(
                ctx["base"],
                tracking_code=new_tracking_code(),
                partner=partner,
                partner_order_no=f"BO-{i:09d}",
                status=status,
                zone=rnd.choice(ctx["zones"]),
                courier=courier,
                sender_name="测试",
                sender_phone=phone,
                sender_phone_last4=phone[-4:],
                province="湖南省",
                city="长沙市",
                district="天心区",
                street="坡子街街道",
                address_detail="1号",
                waybill_no=f"ZT{i:012d}" if status == "collected" else None,
                failure_reason=rnd.choice(["customer_absent", "address_wrong"])
                if status == "failed"
                else None,
                collected_pieces=1 if status == "collected" else None,
                escalation_stage=3 if status == "offered" and rnd.random() < 0.05 else 0,
                sla_state="breached" if status != "collected" and rnd.random() < 0.03 else "ok",
                created_at=created,
                updated_at=updated,
                due_at=created + timedelta(hours=2),
            )
        )
    return rows


async def seed(url: str, n: int, n_open: int) -> dict[str, Any]:
    """n pickups and their events; returns the demo partner's id."""
    from server.auth.service import create_partner
    from server.db.engine import close_engine, get_engine, open_engine
    from server.demo import PARTNER_CODE
    from server.push.log import utcnow
    from server.tables import Courier, Partner, Pickup, Zone

    engine = get_engine(url)
    await open_engine(engine)
    try:
        for code in ("bench-shop-2", "bench-shop-3"):
            await create_partner(code, code)
        demo = (await Partner.select(Partner.id).where(Partner.code == PARTNER_CODE).first())["id"]
        others = [p["id"] for p in await Partner.select(Partner.id).where(Partner.code != PARTNER_CODE)]
        ctx = {
            "zones": [z["id"] for z in await Zone.select(Zone.id)],
            "couriers": [c["id"] for c in await Courier.select(Courier.id)],
            "partners": [demo, *others[:2]],
            "base": {k: v for k, v in Pickup().to_dict().items() if k != "id"},
            "now": utcnow(),
        }
        rnd = random.Random(9)
        start = time.perf_counter()
        columns = list(_pickups(1, 1, 0, 1, ctx, rnd)[0])
        async with _writer(url) as write:
            for first in range(0, n, CHUNK):
                rows = _pickups(n, n_open, first, min(CHUNK, n - first), ctx, rnd)
                await write("pickups", columns, [tuple(r[c] for c in columns) for r in rows])
        print(f"seeded {n:,} pickups in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        for kind, actor_kind, actor, at, states in _EVENTS:
            where = f" WHERE status IN ({', '.join(repr(s) for s in states)})" if states else ""
            await Pickup.raw(
                "INSERT INTO events (pickup, type, actor_kind, actor_id, at, data) "
                f"SELECT id, '{kind}', '{actor_kind}', {actor}, {at}, {{}} FROM pickups{where}",
                "{}",
            )
        events = (await Pickup.raw("SELECT count(*) AS n FROM events"))[0]["n"]
        print(f"seeded {events:,} events in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        if url.startswith("postgres"):
            await Pickup.raw("VACUUM ANALYZE pickups")
            await Pickup.raw("VACUUM ANALYZE events")
        else:
            await Pickup.raw("ANALYZE")
        print(f"analysed in {time.perf_counter() - start:.1f} s")
        return {"partner": demo}
    finally:
        await close_engine(engine)


def _cpu_seconds(pid: int) -> float:
    """The server process's CPU time so far (user + system, all its threads), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(
    client: httpx.AsyncClient, pid: int, name: str, requests: int, path: Any, **kwargs: Any
) -> tuple[str, list[float]]:
    samples = []
    cpu = 0.0
    for i in range(requests + 5):
        if i == 5:
            cpu = _cpu_seconds(pid)
        url = path(i) if callable(path) else path
        start = time.perf_counter()
        r = await client.get(url, **kwargs)
        elapsed = time.perf_counter() - start
        assert r.status_code == 200, (name, r.status_code, r.text[:500])
        if i >= 5:  # warm-up
            samples.append(elapsed * 1000)
    # Server CPU per request: on a machine shared with other work, latency follows the load; this less.
    cpu_ms = (_cpu_seconds(pid) - cpu) * 1000 / requests
    print(
        f"  {name:30} p50 {statistics.median(samples):6.1f} ms  p90 {_pct(samples, 90):6.1f} ms"
        f"  p99 {_pct(samples, 99):6.1f} ms  max {max(samples):6.1f} ms  server CPU {cpu_ms:5.1f} ms/request",
        flush=True,
    )
    return name, samples


async def over_http(base_url: str, pid: int, api_key: str, requests: int) -> dict[str, list[float]]:
    partner = {"Authorization": f"Bearer {api_key}"}
    results: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        first = (await client.get("/api/v1/pickups", headers=partner)).json()
        # A cursor 200 pages back: a page deep in the history.
        cursor = first["next_cursor"]
        for _ in range(200 // 50):
            page = await client.get(
                "/api/v1/pickups", params={"limit": 200, "cursor": cursor}, headers=partner
            )
            cursor = page.json()["next_cursor"]
        ids = [p["id"] for p in first["items"]]
        rnd = random.Random(3)
        # Pickups to read: the partner's, from all of history (its ids: one of every ~1.7 rows).
        older = (
            await client.get("/api/v1/pickups", params={"limit": 200, "cursor": cursor}, headers=partner)
        ).json()["items"]
        read_ids = ids + [p["id"] for p in older]
        rnd.shuffle(read_ids)
        for name, path, params in (
            ("partner list, first page", "/api/v1/pickups", {}),
            ("partner list, failed", "/api/v1/pickups", {"status": "failed"}),
            ("partner list, pending", "/api/v1/pickups", {"status": "pending"}),
            ("partner list, 200 pages back", "/api/v1/pickups", {"cursor": cursor}),
        ):
            key, samples = await _timed(client, pid, name, requests, path, params=params, headers=partner)
            results[key] = samples
        key, samples = await _timed(
            client,
            pid,
            "pickup read (with its events)",
            requests,
            lambda i: f"/api/v1/pickups/{read_ids[i % len(read_ids)]}",
            headers=partner,
        )
        results[key] = samples
        r = await client.post("/auth/login", json={"username": "dispatch", "password": "demo"})
        r.raise_for_status()
        key, samples = await _timed(
            client,
            pid,
            "console board, first page",
            requests,
            "/console/board",
            headers={"HX-Request": "true"},
        )
        results[key] = samples
    return results


async def _new_key(url: str) -> str:
    """A new key for the demo partner of a kept database (the one printed when it was made is gone)."""
    from server.auth.service import create_partner
    from server.db.engine import close_engine, get_engine, open_engine
    from server.demo import PARTNER_CODE

    engine = get_engine(url)
    await open_engine(engine)
    try:
        return await create_partner(PARTNER_CODE, PARTNER_CODE)
    finally:
        await close_engine(engine)


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """A seeded demo database and the demo partner's key: made for this run and dropped after it, or
    (--keep DIR) made once into DIR, kept, and migrated again and reused by later runs."""
    from tests.conftest import TEMPLATES, Database, demo_database

    if not args.keep:
        with demo_database("lanshou-bench-") as (database, api_key):
            asyncio.run(seed(database.url, args.pickups, args.open))
            yield database, api_key
        TEMPLATES.drop()
        return
    folder = Path(args.keep)
    saved = folder / "bench_million.json"
    if saved.exists():
        database = Database.__new__(Database)
        database.__dict__.update(json.loads(saved.read_text()))
        database.tmp, database.path = folder, Path(database.path)
        start = time.perf_counter()
        database.cli("migrate")
        print(f"kept database {database.url}: migrated in {time.perf_counter() - start:.1f} s")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        template, _ = TEMPLATES.demo()
        database = Database.copy_of(template, folder)
        TEMPLATES.drop()
        asyncio.run(seed(database.url, args.pickups, args.open))
        fields = ("name", "url", "pg_admin_url", "path")
        saved.write_text(
            json.dumps({k: str(v) if k == "path" else v for k, v in vars(database).items() if k in fields})
        )
    yield database, asyncio.run(_new_key(database.url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pickups", type=int, default=N_DEFAULT)
    parser.add_argument("--open", type=int, default=OPEN_DEFAULT, help="about how many are still open")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL to create the database on")
    parser.add_argument(
        "--keep", default="", help="a folder to keep the seeded database in (and reuse it from, if there)"
    )
    parser.add_argument(
        "--server-root",
        default="",
        help="serve (and migrate) from another checkout of Lanshou, e.g. an older commit for a baseline",
    )
    args = parser.parse_args()
    if args.postgres:
        os.environ["LANSHOU_TEST_DATABASE_URL"] = args.postgres
    if args.server_root:
        import tests.conftest

        tests.conftest.ROOT = Path(args.server_root).resolve()
    from tests.conftest import ServerProcess  # reads LANSHOU_TEST_DATABASE_URL

    with _database(args) as (database, api_key):
        kind = "postgresql" if database.url.startswith("postgres") else "sqlite"
        print(f"{kind}, {args.pickups:,} pickups, {args.requests} requests each; load {os.getloadavg()}")
        server = ServerProcess(database).start()
        try:
            try:
                assert server.proc is not None
                asyncio.run(over_http(server.url, server.proc.pid, api_key, args.requests))
            except AssertionError:
                print(server.log()[-3000:])
                raise
            print(f"load {os.getloadavg()}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
