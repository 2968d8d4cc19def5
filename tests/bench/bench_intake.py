"""Partner intake throughput: single creates over HTTP, 500-item batches, and what the rate limit costs.

Run: python -m tests.bench.bench_intake [--seconds 5] [--concurrency 16] [--batches 6] [--postgres URL]
     [--redis redis://127.0.0.1:6379/0]

For each database (a fresh SQLite file; with --postgres URL a fresh database on that server, as
LANSHOU_TEST_DATABASE_URL does for tests), on a `lanshou serve` process with the demo city and two
couriers on duty in the zone the pickups land in (so each create also offers):

* single create, rate limit on: POST /api/v1/pickups driven by tests/bench/loadgen.py (C keep-alive
  connections, 1 s warm-up, N seconds), with the partner's limit set high enough never to refuse, so
  every request pays for its count (process memory on SQLite, an upsert on PostgreSQL, Redis INCR with
  --redis);
* single create, rate limit off (LANSHOU_API_RATE_LIMIT=0): the difference is the limiter's cost;
* batch create: B sequential POST /api/v1/pickups/batch of 500 items each (every item with its own
  partner_order_no, half of them in the couriers' zone): seconds per batch, pickups per second, and
  the server's CPU seconds per batch (the steadier figure on a machine other work shares).

Then the rate limiter's own cost per request, in this process: RateLimit.check with the in-memory
counter (the SQLite default) and, with --redis, with the Redis counter (one pipelined round trip).

It prints figures and asserts nothing: the numbers belong to the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.bench.bench_create_pickup import ON_DUTY, PICKUP, Row, Served, measure, pickup_request
from tests.conftest import Database

NO_LIMIT = {"LANSHOU_API_RATE_LIMIT": "0"}
HIGH_LIMIT = {"LANSHOU_API_RATE_LIMIT": "100000000", "LANSHOU_API_RATE_WINDOW_S": "60"}


def couriers_on_duty(url: str) -> None:
    for username in ON_DUTY:
        with httpx.Client(base_url=url, timeout=30) as courier:
            r = courier.post("/auth/login", json={"username": username, "password": "demo"})
            assert r.status_code == 200, r.text
            r = courier.post("/api/v1/courier/duty", json={"on_duty": True})
            assert r.status_code == 200, r.text


def batch_body(size: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:12]
    items = []
    for i in range(size):
        item: dict[str, Any] = {**PICKUP, "partner_order_no": f"B{tag}-{i}"}
        if i % 2:
            item["address"] = {k: v for k, v in PICKUP["address"].items() if k not in ("lat", "lng")}  # type: ignore[union-attr]
        items.append(item)
    return {"items": items}


def bench_batches(served: Served, api_key: str, batches: int) -> tuple[list[float], list[float]]:
    """Seconds per batch, as the client waited and as server CPU (steadier on a shared machine)."""
    seconds, cpu = [], []
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=served.url, timeout=120, headers=headers) as partner:
        partner.post("/api/v1/pickups/batch", json=batch_body(50))  # warm-up
        for _ in range(batches):
            body = batch_body(500)
            cpu0, started = served.cpu_seconds(), time.perf_counter()
            r = partner.post("/api/v1/pickups/batch", json=body)
            seconds.append(time.perf_counter() - started)
            cpu.append(served.cpu_seconds() - cpu0)
            assert r.status_code == 200 and r.json()["created"] == 500, r.text[:500]
    return seconds, cpu


def bench_database(
    label: str, tmp: Path, args: argparse.Namespace, pg_admin_url: str | None, extra_env: dict[str, str]
) -> tuple[list[Row], tuple[list[float], list[float]]]:
    workdir = tmp / re.sub(r"\W+", "-", label).strip("-").lower()
    workdir.mkdir()
    db = Database(workdir, pg_admin_url, prefix="lanshou_bench")
    rows: list[Row] = []
    try:
        match = re.search(r"(lsk_[A-Za-z0-9_\-]+)", db.cli("demo"))
        assert match
        api_key = match.group(1)
        cmd = [sys.executable, "-m", "server", "serve"]
        for limiter, env in (("on", {**HIGH_LIMIT, **extra_env}), ("off", {**NO_LIMIT, **extra_env})):
            with Served(cmd, db.env(**env), workdir / f"server-{limiter}.log") as served:
                couriers_on_duty(served.url)
                r = httpx.post(
                    served.url + "/api/v1/pickups",
                    json=PICKUP,
                    headers={"authorization": f"Bearer {api_key}"},
                )
                assert r.status_code == 201 and r.json()["status"] == "offered", r.text
                assert ("ratelimit-limit" in r.headers) == (limiter == "on"), r.headers
                result, cpu = measure(served, pickup_request(served.port, api_key), args)
                rows.append(Row(f"{label}: single create, rate limit {limiter}", result, cpu))
                if limiter == "on":
                    batch_seconds = bench_batches(served, api_key, args.batches)
    finally:
        db.drop()
    return rows, batch_seconds


async def limiter_cost(redis_url: str | None) -> list[tuple[str, float]]:
    """Microseconds per RateLimit.check, in memory and (with a URL) in Redis."""
    from server.partnerapi.ratelimit import MemoryCounter, RateLimit, RedisCounter

    limiters = [("in memory (SQLite default)", RateLimit(10**9, 60, MemoryCounter()), 20_000)]
    if redis_url:
        counter = RedisCounter(redis_url, f"bench-{uuid.uuid4().hex[:8]}", 60)
        limiters.append(("Redis INCR + EXPIRE", RateLimit(10**9, 60, counter), 2_000))
    costs = []
    for label, limiter, n in limiters:
        await limiter.check(1)
        started = time.perf_counter()
        for _ in range(n):
            await limiter.check(1)
        costs.append((label, (time.perf_counter() - started) / n * 1e6))
    return costs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per single-create run")
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--batches", type=int, default=6, help="500-item batches per database (default 6)")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL (admin URL)")
    parser.add_argument(
        "--redis", metavar="URL", help="count rate limits in this Redis (LANSHOU_CHANNELS_URL)"
    )
    args = parser.parse_args(argv)
    extra_env = {}
    if args.redis:
        extra_env = {
            "LANSHOU_CHANNELS_URL": args.redis,
            "LANSHOU_CHANNELS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        }

    print(
        f"partner intake · {args.concurrency} keep-alive connections · 1 s warm-up + {args.seconds:g} s · "
        f"{args.batches} × 500-item batches · {os.cpu_count()} CPUs · load average {os.getloadavg()[0]:.2f} · "
        f"Python {platform.python_version()}"
        + (f" · rate limits in Redis {args.redis}" if args.redis else ""),
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-bench-intake-"))
    results: list[tuple[str, list[Row], tuple[list[float], list[float]]]] = []
    try:
        targets = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
        for label, pg in targets:
            try:
                rows, batches = bench_database(label, tmp, args, pg, extra_env)
                results.append((label, rows, batches))
            except Exception as exc:  # report it and measure the others
                print(f"{label}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"{'target':<38}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'201s':>9}{'other':>7}"
        f"{'srv CPU':>8}{'ms/req':>9}{'cli CPU':>8}"
    )
    for _, rows, _ in results:
        for row in rows:
            print(row.line())
    print()
    for label, micros in asyncio.run(limiter_cost(args.redis)):
        print(f"rate limit check, {label}: {micros:,.1f} µs per request")
    print()
    print(f"{'batch create (500 items)':<38}{'median s':>10}{'max s':>8}{'pickups/s':>11}{'CPU s':>8}")
    for label, rows, (batches, cpu) in results:
        print(
            f"{label:<38}{statistics.median(batches):>10.3f}{max(batches):>8.3f}"
            f"{500 * len(batches) / sum(batches):>11,.0f}{statistics.median(cpu):>8.3f}"
        )
        on, off = rows
        if on.result.rate and off.result.rate:
            print(
                f"{label}: rate limit costs {on.cpu_ms_per_request - off.cpu_ms_per_request:+.3f} ms server CPU "
                f"per request ({on.result.rate:,.0f} vs {off.result.rate:,.0f} creates/s)"
            )


if __name__ == "__main__":
    main()
