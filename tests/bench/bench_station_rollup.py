"""How long does the console's stations page take to compute its figures over 100,000 pickups?

Run: python -m tests.bench.bench_station_rollup [--pickups 100000] [--days 30] [--postgres URL]

Makes a fresh database (SQLite by default; with --postgres URL, a uniquely named database on that server,
dropped at the end), seeds the demo city (3 stations, 6 zones), and writes `--pickups` pickups spread
evenly over the last `--days` days with their events in time order, as the service would have: created,
offered, accepted (9 in 10) then collected (8 in 10), failed or cancelled, and a breach for 1 in 20; each
pickup's status is where its events so far leave it (the open ones are the last hours'). Then
times server.dispatch.rollup.station_rollup (what GET /console/stations runs) for everything and for one
station's scope: the first call of the day (which looks up the day's first event id) and later calls.

It prints the figures and asserts nothing: the numbers belong to the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import Database, seed_demo


async def fill(pickups: int, days: int, seed: int) -> int:
    from server.db.bulk import insert_rows
    from server.tables import Event, Pickup, Zone

    rng = random.Random(seed)
    zones = [z["id"] for z in await Zone.select(Zone.id)]
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    base = {k: v for k, v in Pickup().to_dict().items() if k != "id"}
    events: list[tuple[datetime, int, str]] = []
    chunk: list[dict[str, Any]] = []
    lives: list[list[tuple[datetime, str]]] = []
    # Where each pickup stands after its last event so far.
    status_after = {
        "pickup.offered": "offered",
        "pickup.accepted": "accepted",
        "pickup.collected": "collected",
        "pickup.failed": "failed",
        "pickup.cancelled": "cancelled",
    }

    def life(at: datetime) -> list[tuple[datetime, str]]:
        steps = [(at, "pickup.created"), (at + timedelta(seconds=1), "pickup.offered")]
        fate = rng.random()
        if fate < 0.9:
            accepted = at + timedelta(seconds=rng.uniform(20, 900))
            steps.append((accepted, "pickup.accepted"))
            done = accepted + timedelta(seconds=rng.uniform(600, 5400))
            steps.append((done, "pickup.collected" if fate < 0.8 else "pickup.failed"))
        else:
            steps.append((at + timedelta(seconds=rng.uniform(60, 3600)), "pickup.cancelled"))
        if rng.random() < 0.05:
            steps.append((at + timedelta(hours=2), "pickup.sla_breached"))
        return sorted(s for s in steps if s[0] <= now)

    async def flush() -> None:
        rows = await insert_rows(Pickup, chunk, returning=("id",))
        for row, steps in zip(rows, lives, strict=True):
            events.extend((at, row["id"], kind) for at, kind in steps)
        chunk.clear()
        lives.clear()

    for i in range(pickups):
        created = start + (now - start) * (i / pickups)
        steps = life(created)
        status = [status_after[k] for _, k in steps if k in status_after][-1]
        lives.append(steps)
        chunk.append(
            base
            | {
                "tracking_code": f"LSB{i:019d}",
                "status": status,
                "zone": rng.choice(zones),
                "sender_name": "张三",
                "sender_phone": "13912345678",
                "province": "湖南省",
                "city": "长沙市",
                "district": "天心区",
                "address_detail": "1号",
                "created_at": created,
                "updated_at": created,
            }
        )
        if len(chunk) == 2000:
            await flush()
    if chunk:
        await flush()
    # The demo's own set-up events were written just now, before this history: dated to its start, so
    # that the log's ids follow its times as they do in service.
    await Event.update({Event.at: start}).where(Event.id > 0)
    events.sort()
    rows = [
        {"pickup": p, "type": t, "actor_kind": "system", "actor_id": None, "at": at, "data": "{}"}
        for at, p, t in events
    ]
    for i in range(0, len(rows), 5000):
        await insert_rows(Event, rows[i : i + 5000])
    return len(rows)


async def timed(runs: int, **kwargs: Any) -> tuple[float, list[float], Any]:
    from server.dispatch.rollup import forget_first_event_ids, station_rollup

    forget_first_event_ids()
    t0 = time.perf_counter()
    tree = await station_rollup(**kwargs)
    first = time.perf_counter() - t0
    later = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await station_rollup(**kwargs)
        later.append(time.perf_counter() - t0)
    return first, later, tree


async def measure(url: str, pickups: int, days: int, runs: int, postgres: bool) -> None:
    from server.db.engine import close_engine, get_engine, open_engine
    from server.dispatch.scope import Scope
    from server.tables import Event, Station, Zone

    engine = get_engine(url)
    await open_engine(engine)
    try:
        t0 = time.perf_counter()
        n_events = await fill(pickups, days, seed=1)
        print(f"wrote {pickups:,} pickups and {n_events:,} events in {time.perf_counter() - t0:.1f} s")
        if postgres:  # as autovacuum would soon after a load this size
            await Event.raw("ANALYZE")
        first, later, tree = await timed(runs)
        f = tree[0].figures
        print(
            f"everything: first call {first * 1000:.0f} ms, then median {statistics.median(later) * 1000:.1f} ms "
            f"over {runs} (today: {f.created} created, {f.collected} collected, {f.open} open)"
        )
        station = await Station.select(Station.id).where(Station.code == "ST-TX").first()
        zones = await Zone.select(Zone.id).where(Zone.station == station["id"])
        scope = Scope(station_ids=frozenset({station["id"]}), zone_ids=frozenset(z["id"] for z in zones))
        first, later, _ = await timed(runs, scope=scope)
        print(
            f"one station's dispatcher: first call {first * 1000:.0f} ms, then median {statistics.median(later) * 1000:.1f} ms"
        )
    finally:
        await close_engine(engine)


def main(pickups: int, days: int, runs: int, postgres: str | None, keep: bool = False) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-bench-rollup-"))
    database = Database(tmp, pg_admin_url=postgres, prefix="lanshou_bench")
    try:
        database.cli("migrate")
        seed_demo(database)
        asyncio.run(measure(database.url, pickups, days, runs, bool(postgres)))
    finally:
        if keep:
            print("kept:", database.url)
        else:
            database.drop()
            shutil.rmtree(tmp, ignore_errors=True)
    print("engine:", "PostgreSQL" if postgres else "SQLite")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pickups", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", default=os.environ.get("LANSHOU_BENCH_POSTGRES"))
    parser.add_argument("--keep", action="store_true", help="keep the database (to look at its plans)")
    args = parser.parse_args()
    main(args.pickups, args.days, args.runs, args.postgres, args.keep)
