"""Stop-ship check per pickup create: the in-memory copy (what Lanshou does) vs a query per check.

Run: python -m tests.bench.bench_stop_ship [--areas 50] [--checks 2000]
(on PostgreSQL with LANSHOU_TEST_DATABASE_URL=postgresql://…, as the tests). Prints figures only.

"A query per check" is what a check without the copy has to do: read the areas (all not yet ended: a
validity period cannot be compared as text on SQLite, see Timer.due_ms) and test the point against their
polygons, i.e. the copy's reload followed by the check.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

import msgspec

from server.db.engine import close_engine, get_engine, open_engine
from server.intake import stop_ship
from server.push.log import utcnow
from server.tables import StopShipArea
from tests.conftest import migrated_database, square


async def run(url: str, areas: int, checks: int) -> None:
    engine = get_engine(url)
    await open_engine(engine)
    try:
        now = utcnow()
        rows = [
            StopShipArea(
                name=f"area {i}",
                reason="bench",
                geojson=msgspec.json.encode(square(100 + i * 0.01, 30.0, 0.005)).decode(),
                admin_areas=msgspec.json.encode([f"街道{i}"]).decode(),
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=1) if i % 2 else None,
                created_at=now,
                updated_at=now,
            )
            for i in range(areas)
        ]
        await StopShipArea.insert(*rows)
        names = {"province": "湖南省", "city": "长沙市", "district": "天心区", "street": "无此街道"}

        await stop_ship.directory.reload()
        start = time.perf_counter()
        for _ in range(checks):  # a miss: every area is tried
            assert await stop_ship.active_stop_ship(**names, lng=113.0, lat=28.2) is None
        cached = (time.perf_counter() - start) / checks

        start = time.perf_counter()
        for _ in range(checks // 10):
            await stop_ship.directory.reload()
            assert await stop_ship.active_stop_ship(**names, lng=113.0, lat=28.2) is None
        queried = (time.perf_counter() - start) / (checks // 10)
        kind = "postgresql" if url.startswith("postgres") else "sqlite"
        print(
            f"{kind}, {areas} areas: in-memory copy {cached * 1e6:.0f} µs per check; "
            f"query per check {queried * 1e6:.0f} µs ({queried / cached:.0f}× slower)"
        )
    finally:
        await close_engine(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--areas", type=int, default=50)
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args()
    with migrated_database("lanshou-bench-") as database:
        asyncio.run(run(database.url, args.areas, args.checks))


if __name__ == "__main__":
    main()
