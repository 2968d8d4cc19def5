"""The console board at 100,000 pickups: its first page and a search, over HTTP and as queries.

Run: python -m tests.bench.bench_board [--pickups 100000] [--requests 60] [--postgres postgresql://…]
(SQLite by default; with --postgres, or LANSHOU_TEST_DATABASE_URL as the tests, on PostgreSQL). Prints
figures only, no timed assertions.

The demo city is copied into a database of its own, 100,000 pickups are written there with raw multi-row
INSERTs (server/db/bulk.py: most of them closed in the last 60 days, a tenth open, some failed, as a
busy city's history looks), then a real `lanshou serve` answers the demo dispatcher's board requests:
the first page (every section), a search by tracking code, by phone, by the phone's last four digits,
by partner order number, by waybill, a zone filter and a page deep in a section. Each is timed over
HTTP (the partial as console.js fetches it) and as the query function alone (read_board).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from datetime import timedelta
from typing import Any

import httpx

N_DEFAULT = 100_000


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def seed(url: str, n: int) -> dict[str, Any]:
    """n pickups in the demo city's zones; returns one of them (its keys) to search for."""
    from server.db.bulk import insert_rows
    from server.db.engine import close_engine, get_engine, open_engine
    from server.domain.contact import new_tracking_code
    from server.push.log import utcnow
    from server.tables import Courier, Partner, Pickup, Zone

    engine = get_engine(url)
    await open_engine(engine)
    try:
        zones = [z["id"] for z in await Zone.select(Zone.id)]
        couriers = [c["id"] for c in await Courier.select(Courier.id)]
        partner = (await Partner.select(Partner.id).first())["id"]
        base = {k: v for k, v in Pickup().to_dict().items() if k != "id"}
        now = utcnow()
        rnd = random.Random(9)
        rows = []
        for i in range(n):
            roll = rnd.random()
            created = now - timedelta(minutes=rnd.randrange(0, 60 * 24 * 60))
            status, courier, reason, waybill = "collected", rnd.choice(couriers), None, f"ZT{i:012d}"
            if roll < 0.10:  # open: created today
                created = now - timedelta(minutes=rnd.randrange(0, 600))
                status = rnd.choice(["pending", "offered", "offered", "accepted", "contacted"])
                courier = courier if status in ("accepted", "contacted") else None
                waybill = None
            elif roll < 0.12:
                status, reason, waybill = "failed", rnd.choice(["customer_absent", "address_wrong"]), None
            elif roll < 0.17:
                status, courier, waybill = "cancelled", None, None
            phone = f"1{rnd.choice('3456789')}{rnd.randrange(10**9):09d}"
            rows.append(
                dict(
                    base,
                    tracking_code=new_tracking_code(),
                    partner=partner,
                    partner_order_no=f"BO-{i:08d}",
                    status=status,
                    zone=rnd.choice(zones),
                    courier=courier,
                    sender_name="测试",
                    sender_phone=phone,
                    sender_phone_last4=phone[-4:],
                    province="湖南省",
                    city="长沙市",
                    district="天心区",
                    street="坡子街街道",
                    address_detail="1号",
                    waybill_no=waybill,
                    failure_reason=reason,
                    escalation_stage=3 if status == "offered" and roll < 0.005 else 0,
                    created_at=created,
                    updated_at=created + timedelta(minutes=rnd.randrange(1, 300))
                    if roll >= 0.10
                    else created,
                    due_at=created + timedelta(hours=2),
                )
            )
        start = time.perf_counter()
        for chunk in range(0, n, 5000):
            await insert_rows(Pickup, rows[chunk : chunk + 5000])
        print(f"seeded {n:,} pickups in {time.perf_counter() - start:.1f} s")
        if url.startswith("postgres"):
            # As autovacuum leaves a table in use: statistics, and the visibility map that lets the
            # covering indexes answer without reading the table.
            await Pickup.raw("VACUUM ANALYZE pickups")
        else:
            await Pickup.raw("ANALYZE")
        # A collected pickup (it has a waybill) to look for by each of its keys.
        target = next(r for r in rows if r["waybill_no"])
        return {k: target[k] for k in ("tracking_code", "sender_phone", "partner_order_no", "waybill_no")}
    finally:
        await close_engine(engine)


def cases(target: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        "first page": {},
        "search tracking code": {"q": target["tracking_code"]},
        "search phone": {"q": target["sender_phone"]},
        "search last four": {"q": target["sender_phone"][-4:]},
        "search order no": {"q": target["partner_order_no"]},
        "search waybill": {"q": target["waybill_no"]},
        "zone CS-TX-02": {"zone": "CS-TX-02"},
        "needs attention: failed": {"attention": "failed"},
        "closed, page 20": {"closed_page": "20"},
    }


async def over_http(base_url: str, target: dict[str, Any], requests: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        r = await client.post("/auth/login", json={"username": "dispatch", "password": "demo"})
        r.raise_for_status()
        for name, params in cases(target).items():
            samples = []
            for i in range(requests + 3):
                start = time.perf_counter()
                r = await client.get("/console/board", params=params, headers={"HX-Request": "true"})
                elapsed = time.perf_counter() - start
                assert r.status_code == 200, r.text
                if i >= 3:  # warm-up
                    samples.append(elapsed * 1000)
            if name.startswith("search"):
                assert f">{target['tracking_code']}</a>" in r.text, name
            print(
                f"  HTTP  {name:28} p50 {statistics.median(samples):6.1f} ms   p90 {_pct(samples, 90):6.1f} ms"
                f"   p99 {_pct(samples, 99):6.1f} ms   max {max(samples):6.1f} ms"
            )


async def as_queries(url: str, target: dict[str, Any], requests: int, explain: bool = False) -> None:
    from server.console import board
    from server.console.board import BoardFilter, read_board
    from server.db.engine import close_engine, get_engine, open_engine
    from server.dispatch.scope import scope_of
    from server.tables import User

    engine = get_engine(url)
    await open_engine(engine)
    try:
        from server.auth.principal import Principal

        user = await User.select(User.id, User.station, User.role).where(User.username == "dispatch").first()
        principal = Principal(
            kind="user", id=user["id"], name="dispatch", role=user["role"], station_id=user["station"]
        )
        scope = await scope_of(principal)
        for name, params in cases(target).items():
            f = BoardFilter.from_params(params)
            if explain:
                await show_plans(url, board, f, scope)
            samples = []
            for i in range(requests + 3):
                start = time.perf_counter()
                await read_board(f, scope)
                if i >= 3:
                    samples.append((time.perf_counter() - start) * 1000)
            print(
                f"  query {name:28} p50 {statistics.median(samples):6.1f} ms   p99 {_pct(samples, 99):6.1f} ms"
            )
    finally:
        await close_engine(engine)


async def show_plans(url: str, board: Any, f: Any, scope: Any) -> None:
    """The database's plan for the count and for each section's page (--explain)."""
    from server.tables import Pickup

    since = board._windows(f)
    where, *_ = await board.filter_clause(f, scope)
    queries = {f"count {i}": q for i, q in enumerate(board.count_queries(where, since))}
    for key in board.SECTIONS:
        queries[key] = board.page_query(key, where, since, f.sort, f.pages.get(key, 1), board.PAGE_SIZE)
    prefix = "EXPLAIN " if url.startswith("postgres") else "EXPLAIN QUERY PLAN "
    for name, query in queries.items():
        plan = await Pickup.raw(prefix + str(query))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            await query
            times.append((time.perf_counter() - start) * 1000)
        steps = " | ".join(str(list(row.values())[-1]) for row in plan)
        print(f"    {name} {statistics.median(times):.1f} ms: {steps[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pickups", type=int, default=N_DEFAULT)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--explain", action="store_true", help="print the query plans too")
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL to create the database on")
    args = parser.parse_args()
    if args.postgres:
        os.environ["LANSHOU_TEST_DATABASE_URL"] = args.postgres
    from tests.conftest import ServerProcess, demo_database  # reads LANSHOU_TEST_DATABASE_URL

    with demo_database("lanshou-bench-") as (database, _):
        kind = "postgresql" if database.url.startswith("postgres") else "sqlite"
        target = asyncio.run(seed(database.url, args.pickups))
        print(
            f"{kind}, {args.pickups:,} pickups; the demo dispatcher (Changsha), {args.requests} requests each"
        )
        asyncio.run(as_queries(database.url, target, args.requests, args.explain))
        server = ServerProcess(database).start()
        try:
            asyncio.run(over_http(server.url, target, args.requests))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
