"""How long from a partner's POST to the offer on every courier's phone?

Run: python -m tests.bench.bench_offer_latency [--couriers 100] [--pickups 200] [--postgres URL]
                                                [--channels URL|db] [--gap 0.02]

Starts `lanshou serve` on a fresh database (SQLite by default; with --postgres URL, a uniquely named
database on that server, created and finally dropped as LANSHOU_TEST_DATABASE_URL does for tests), makes
one grab-mode zone with N couriers on duty, and holds one SSE stream per courier. Then, one pickup at a
time, it creates a pickup in the zone and waits until all N streams have its `pickup.offered`; for each
it records the time from the POST returning to the first and to the last courier's event (and, since
the offer is pushed as soon as the transaction commits, before the response is built, also from the
POST being sent). It prints median and p99 and asserts nothing: the numbers belong to the machine.

The SSE readers are raw asyncio streams with a minimal chunked-transfer decoder, not httpx: a hundred
httpx streams cost more CPU than the server being measured. Client and server share the machine's cores
(two, where this was written); the CPU line shows how much each used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.conftest import Database, Personas, ServerProcess, make_zone, pickup_body, seed_demo


class _Offer(msgspec.Struct):
    pickup_id: int


class Arrivals:
    """When each pickup's offer reached the first and the last of the N streams."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.count: dict[int, int] = {}
        self.complete: dict[int, asyncio.Event] = {}

    def waiter(self, pickup_id: int) -> asyncio.Event:
        return self.complete.setdefault(pickup_id, asyncio.Event())

    def arrived(self, pickup_id: int, at: float) -> None:
        self.first.setdefault(pickup_id, at)
        self.last[pickup_id] = at
        self.count[pickup_id] = self.count.get(pickup_id, 0) + 1
        if self.count[pickup_id] == self.expected:
            self.waiter(pickup_id).set()


class SSEReader:
    """One courier's stream: GET /api/v1/courier/events over a raw socket, chunked body decoded by hand,
    only `pickup.offered` events parsed (just far enough to find their pickup id)."""

    def __init__(self, port: int, cookie: str, arrivals: Arrivals) -> None:
        self.port = port
        self.cookie = cookie
        self.arrivals = arrivals
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._decode = msgspec.json.Decoder(_Offer).decode

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(
                (
                    "GET /api/v1/courier/events HTTP/1.1\r\n"
                    f"host: 127.0.0.1:{self.port}\r\n"
                    "accept: text/event-stream\r\n"
                    f"cookie: {self.cookie}\r\n\r\n"
                ).encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"stream refused: {head[:200]!r}")
            if b"transfer-encoding: chunked" not in head.lower():
                raise RuntimeError(f"expected a chunked body: {head!r}")
            buffer = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    return
                buffer += chunk[:-2]
                while (end := buffer.find(b"\r\n\r\n")) >= 0:
                    block, buffer = buffer[:end], buffer[end + 4 :]
                    self._event(block)
        finally:
            writer.close()

    def _event(self, block: bytes) -> None:
        block = b"\r\n" + block  # each field then starts after a line break, the first one too
        if b"\r\nevent: pickup.offered\r\n" in block:
            now = time.monotonic()
            data = block[block.index(b"\r\ndata: ") + 8 :].split(b"\r\n", 1)[0]
            self.arrivals.arrived(self._decode(data).pickup_id, now)
        elif b"\r\nevent: ready\r\n" in block:
            self.ready.set()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def ms(value: float) -> str:
    return f"{value * 1000:8.1f}"


async def measure(server: ServerProcess, api_key: str, args: argparse.Namespace) -> None:
    people = Personas(server, api_key)
    try:
        print(f"setting up {args.couriers} couriers …", file=sys.stderr)
        zone = await make_zone(people, couriers=args.couriers, offer_ttl_s=3600)
        cookies = []
        for name in zone.couriers:
            courier = await people.user(name, "pw-" + name.split("-")[-1])
            r = await courier.post("/api/v1/courier/duty", json={"on_duty": True})
            assert r.status_code == 200, r.text
            cookies.append("; ".join(f"{k}={v}" for k, v in courier.client.cookies.items()))
            await courier.close()
    finally:
        await people.close()

    arrivals = Arrivals(args.couriers)
    readers = [SSEReader(server.port, cookie, arrivals) for cookie in cookies]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 30
    while not all(r.ready.is_set() for r in readers):
        for r in readers:
            if r.task is not None and r.task.done():
                r.task.result()  # raises what broke the stream
                raise RuntimeError("a stream ended before `ready`")
        assert time.monotonic() < deadline, "streams not ready within 30 s"
        await asyncio.sleep(0.05)
    print(f"{len(readers)} streams open; {args.pickups} pickups …", file=sys.stderr)

    samples: list[tuple[float, float, float, float, float]] = []  # post, first/last after return/send
    timeouts = 0
    partner = httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {api_key}"}, timeout=30
    )
    assert server.proc is not None
    cpu_server, cpu_client = cpu_seconds(server.proc.pid), time.process_time()
    wall = time.monotonic()
    try:
        for i in range(args.warmup + args.pickups):
            sent = time.monotonic()
            r = await partner.post("/api/v1/pickups", json=pickup_body(zone))
            returned = time.monotonic()
            assert r.status_code == 201 and r.json()["status"] == "offered", r.text
            pickup_id = r.json()["id"]
            try:
                await asyncio.wait_for(arrivals.waiter(pickup_id).wait(), 10)
            except TimeoutError:
                timeouts += 1
                continue
            if i >= args.warmup:
                first, last = arrivals.first[pickup_id], arrivals.last[pickup_id]
                samples.append(
                    (returned - sent, first - returned, last - returned, first - sent, last - sent)
                )
            if args.gap:
                await asyncio.sleep(args.gap)
    finally:
        wall = time.monotonic() - wall
        cpu_server = cpu_seconds(server.proc.pid) - cpu_server
        cpu_client = time.process_time() - cpu_client
        await partner.aclose()
        await asyncio.gather(*(r.stop() for r in readers))

    engine = "PostgreSQL" if args.postgres else "SQLite"
    channels = args.channels or "in-memory"
    print(
        f"\noffer latency: {args.couriers} couriers on SSE in one grab zone, {len(samples)} pickups "
        f"({args.warmup} warm-up not counted), {engine}, channels {channels}"
    )
    print(f"{'':38}{'median ms':>9}{'p99 ms':>9}{'max ms':>9}")
    labels = [
        "POST round trip",
        "POST returned → first courier's offer",
        "POST returned → last courier's offer",
        "POST sent → first courier's offer",
        "POST sent → last courier's offer",
    ]
    for column, label in enumerate(labels):
        values = [s[column] for s in samples]
        if values:
            print(f"{label:38}{ms(statistics.median(values))}{ms(percentile(values, 0.99))}{ms(max(values))}")
    if timeouts:
        print(f"{timeouts} pickups did not reach every courier within 10 s")
    print(
        f"CPU over {wall:.1f} s: server {cpu_server / wall:.2f} cores, load generator "
        f"{cpu_client / wall:.2f} cores (of {os.cpu_count()} shared); negative 'returned →' values: "
        "the push went out before the response was built"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--couriers", type=int, default=100)
    parser.add_argument("--pickups", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10, help="pickups first, not counted")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between one pickup and the next")
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (admin URL, as for tests)")
    parser.add_argument(
        "--channels",
        metavar="URL",
        default="",
        help="LANSHOU_CHANNELS_URL for the server (redis://…), or `db` for LISTEN/NOTIFY on the bench's "
        "PostgreSQL database; in-memory if not given",
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lanshou-bench-offer-"))
    database = Database(tmp, args.postgres, prefix="lanshou_bench")
    server = None
    try:
        database.cli("migrate")
        api_key = seed_demo(database)["api_key"]
        channels = database.url if args.channels == "db" else args.channels
        env = {"LANSHOU_CHANNELS_URL": channels} if channels else {}
        server = ServerProcess(database, **env).start()
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        runner(measure(server, api_key, args))
    finally:
        if server is not None:
            server.stop()
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
