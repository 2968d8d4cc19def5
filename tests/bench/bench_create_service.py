"""CPU of one pickup create inside the process, without HTTP: `service.create_pickup` called back to back.

Run: python -m tests.bench.bench_create_service [--n 2000] [--concurrency 1] [--couriers 20] [--zones 2]
         [--postgres URL] [--profile OUT.prof]

Seeds a fresh database as the load harness does (tests/bench/load_seed.py: zones and couriers on duty,
every create offered to the couriers of its zone), then times N creates through the service, with
`concurrency` of them in flight at once (what group commit has to work with). It prints creates/s and
the process's CPU per create; --profile writes a cProfile of the timed part. The push publisher is a
stub that only counts messages: what is measured is the create, not the streams.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import ROOT, Database


class CountingPublisher:
    def __init__(self) -> None:
        self.messages = 0

    def publish(self, messages: object) -> None:
        self.messages += len(messages)  # type: ignore[arg-type]


async def drive(args: argparse.Namespace, seeded: dict) -> None:
    import msgspec

    from server.auth.principal import Principal
    from server.db import sqlite_engine
    from server.db.engine import close_engine, get_engine, open_engine
    from server.intake import stop_ship
    from server.pickups import service
    from server.pickups.schemas import PickupCreate
    from server.push import log as push_log
    from server.tables import Partner
    from server.zones.service import directory

    # CPU the SQLite writer's thread spends running groups of scripts, COMMIT included (thread_time);
    # absent before scripts existed (the same bench run on an older tree).
    in_thread = [0.0]
    drive = getattr(sqlite_engine, "_run_group", None)

    def timed_drive(*a: object) -> object:
        t = time.thread_time()
        try:
            return drive(*a)  # type: ignore[misc]
        finally:
            in_thread[0] += time.thread_time() - t

    if drive is not None:
        sqlite_engine._run_group = timed_drive  # type: ignore[attr-defined]
    engine = get_engine(os.environ["LANSHOU_DATABASE_URL"])
    await open_engine(engine)
    await directory.reload()
    await stop_ship.directory.reload()
    publisher = CountingPublisher()
    push_log.set_publisher(publisher)
    partner_row = await Partner.select(Partner.id).first()
    partner = Principal(kind="partner", id=partner_row["id"], name="load", role="partner")
    zones = seeded["zones"]

    def body(i: int) -> PickupCreate:
        z = zones[i % len(zones)]
        return msgspec.convert(
            {
                "sender": {"name": "李四", "phone": "13912345678"},
                "address": {
                    "province": "湖南省",
                    "city": "长沙市",
                    "district": "天心区",
                    "street": "坡子街街道",
                    "detail": "坡子街 88 号",
                    "lat": z["lat"],
                    "lng": z["lng"],
                    "datum": "wgs84",
                },
                "parcel_count": 1,
                "partner_order_no": f"B{i}",
            },
            PickupCreate,
        )

    bodies = [body(i) for i in range(args.n + 50)]
    for b in bodies[:50]:  # warm-up
        await service.create_pickup(partner, b)
    todo = iter(bodies[50:])

    async def worker() -> None:
        for b in todo:
            await service.create_pickup(partner, b)

    profile = cProfile.Profile() if args.profile else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    in_thread[0] = 0.0
    if profile:
        profile.enable()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        f"{args.n} creates, concurrency {args.concurrency}: {args.n / wall:,.0f} creates/s, "
        f"{cpu / args.n * 1000:.3f} ms CPU per create ({cpu / wall:.2f} cores), "
        f"of which {in_thread[0] / args.n * 1000:.3f} ms in the SQLite writer's thread (scripts); "
        f"{publisher.messages} messages published; load average {os.getloadavg()[0]:.2f}"
    )
    await close_engine(engine)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--couriers", type=int, default=20)
    parser.add_argument("--zones", type=int, default=2)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--profile", metavar="OUT")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-bench-create-"))
    db = Database(tmp, pg_admin_url=args.postgres)
    try:
        env = db.env()
        spec = json.dumps({"zones": args.zones, "couriers": args.couriers})
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.load_seed", spec],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        seeded = json.loads(out.stdout)
        os.environ.update(env)
        asyncio.run(drive(args, seeded))
    finally:
        db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
