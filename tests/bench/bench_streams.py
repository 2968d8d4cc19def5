"""What an open courier stream costs the server: RSS per stream, for N streams held at once.

Run: python -m tests.bench.bench_streams [--streams 1000 5000] [--postgres URL] [--json out.json]

A real `lanshou serve` process on a fresh database (SQLite file, or with --postgres a database of its
own on that server), seeded by tests/bench/load_seed.py with the largest N couriers on duty, each with a
login session. Then, from this one asyncio process over loopback, courier streams are opened step by step
up to each N (GET /api/v1/courier/events, as the courier app does); once every stream has had its
`ready` event and the server has settled, its RSS is read from /proc. Printed for each N: RSS with no
stream, RSS with N, the difference divided by N, and how long the N took to open. Last, every stream is
closed and the server's RSS read again (what stays after the streams are gone), then the server is sent
SIGTERM with the streams open again and timed until it exits (a graceful restart).

Figures are per process and include what the streams' requests left behind in the allocator; they vary
with the machine's load (printed beside them). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.bench_create_pickup import Served
from tests.bench.load import CourierStream, proc_stat, raise_fd_limit
from tests.conftest import ROOT, Database

MIB = 1024 * 1024


def rss(served: Served) -> int:
    assert served.proc is not None
    return proc_stat(served.proc.pid)[1]


async def settle(served: Served, seconds: float = 1.5) -> int:
    """The server's RSS once it has stopped moving (a few samples apart agree within 1 %)."""
    last = rss(served)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await asyncio.sleep(seconds / 3)
        now = rss(served)
        if abs(now - last) <= last / 100:
            return now
        last = now
    return last


async def open_streams(streams: list[CourierStream], connecting: asyncio.Semaphore, timeout: float) -> float:
    started = time.perf_counter()
    for stream in streams:
        stream.task = asyncio.create_task(stream.run(connecting))
    deadline = started + timeout
    while not all(s.ready.is_set() for s in streams):
        broken = [s for s in streams if s.error is not None]
        if broken:
            raise RuntimeError(f"{len(broken)} streams failed, e.g. {broken[0].error!r}")
        if time.perf_counter() > deadline:
            raise RuntimeError("streams not ready in time")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def close_streams(streams: list[CourierStream]) -> None:
    for stream in streams:
        if stream.task is not None:
            stream.task.cancel()
    await asyncio.gather(*(s.task for s in streams if s.task is not None), return_exceptions=True)


async def measure(served: Served, couriers: list[dict[str, Any]], steps: list[int]) -> dict[str, Any]:
    connecting = asyncio.Semaphore(200)
    no_op = lambda *_: None  # noqa: E731
    streams: list[CourierStream] = []
    # A few streams opened and closed first, so that what every request loads once (templates, routes,
    # the session store's first queries) is not counted as the streams'.
    warm = [CourierStream(i, served.port, c["session"], no_op) for i, c in enumerate(couriers[:20])]
    await open_streams(warm, connecting, 30)
    await close_streams(warm)
    base = await settle(served)
    rows = []
    for n in steps:
        more = [CourierStream(i, served.port, couriers[i]["session"], no_op) for i in range(len(streams), n)]
        took = await open_streams(more, connecting, 30 + len(more) / 50)
        streams += more
        now = await settle(served)
        rows.append(
            {
                "streams": n,
                "rss_mib": now / MIB,
                "kib_per_stream": (now - base) / n / 1024,
                "open_seconds": took,
                "load_average": os.getloadavg()[0],
            }
        )
        print(
            f"{n:>7,} streams: RSS {now / MIB:7.1f} MiB, {(now - base) / n / 1024:6.1f} KiB per stream "
            f"(opened {len(more):,} in {took:.1f} s; load average {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    await close_streams(streams)
    await asyncio.sleep(1)
    after_close = await settle(served)
    print(f"all closed: RSS {after_close / MIB:7.1f} MiB ({(after_close - base) / MIB:+.1f} MiB)", flush=True)
    # A graceful restart with the largest N open: SIGTERM to exit.
    streams = [
        CourierStream(i, served.port, c["session"], no_op) for i, c in enumerate(couriers[: steps[-1]])
    ]
    await open_streams(streams, connecting, 30 + len(streams) / 50)
    assert served.proc is not None
    started = time.perf_counter()
    served.proc.terminate()
    await asyncio.to_thread(served.proc.wait, 30)
    shutdown = time.perf_counter() - started
    print(f"SIGTERM with {len(streams):,} streams open: exited in {shutdown:.2f} s", flush=True)
    await close_streams(streams)
    return {
        "rss_mib_without_streams": base / MIB,
        "steps": rows,
        "rss_mib_after_close": after_close / MIB,
        "shutdown_seconds": shutdown,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1000, 5000], help="stream counts, rising")
    parser.add_argument("--zones", type=int, default=100, help="zones the couriers spread over")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server (admin URL, as for tests)")
    parser.add_argument("--json", metavar="PATH", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    steps = sorted(args.streams)
    raise_fd_limit(steps[-1])
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-streams-"))
    db: Database | None = None
    try:
        db = Database(tmp, args.postgres, prefix="lanshou_streams")
        spec = {"zones": min(args.zones, steps[-1]), "couriers": steps[-1]}
        seeding = subprocess.run(
            [sys.executable, "-m", "tests.bench.load_seed", json.dumps(spec)],
            cwd=ROOT,
            env=db.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if seeding.returncode != 0:
            raise RuntimeError(f"seeding failed:\n{seeding.stderr}")
        couriers = json.loads(seeding.stdout)["couriers"]
        env = db.env(LANSHOU_LOG_LEVEL="warning", LANSHOU_API_RATE_LIMIT="0")
        print(
            f"courier streams on {'postgresql' if args.postgres else 'sqlite'}, "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        with Served([sys.executable, "-m", "server", "serve"], env, tmp / "server.log") as served:
            result = asyncio.run(measure(served, couriers, steps))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return result
    finally:
        if db is not None:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
