"""The load harness: Lanshou as a user runs it, under partner creates while couriers grab, contact and
collect, measured from outside.

Run: python -m tests.bench.load --rate 200 --seconds 20 --couriers 100 --zones 10
         [--postgres URL] [--workers K --channels db|URL] [--serve-workers N]
         [--mode grab|assign] [--accept 1.0]
         [--racers 2] [--ceiling-seconds 3] [--json out.json]

What it does, in order:

1. a fresh database (a SQLite file; with --postgres URL a uniquely named database on that server,
   created and finally dropped as LANSHOU_TEST_DATABASE_URL does for tests), seeded before any server
   starts by tests/bench/load_seed.py: a partner key, Z square zones (ten to a station), N couriers on
   duty spread evenly over them, and a login session per courier written straight into the session table
   (no password hashing per courier: 10,000 couriers are seeded in seconds);
2. K `lanshou serve` processes (the command a user runs; K > 1 shares push through LANSHOU_CHANNELS_URL,
   as the README's PostgreSQL section describes for scale-out), with the partner rate limit off; with
   --serve-workers N each is `lanshou serve --workers N` (N processes on one port: the kernel hands each
   connection to one of them, and the run reports how many streams each worker holds);
3. one SSE stream per courier (GET /api/v1/courier/events with the courier's cookie), all read by this one
   asyncio process over raw sockets (courier i on server i mod K);
4. open-loop partner creates: POST /api/v1/pickups at fixed intervals (rate R for S seconds, each to the
   next zone in turn, round-robin over the servers), sent when due whatever the earlier ones are doing, and
   timed from when they were due, so a slow server shows as latency rather than as fewer requests
   (no coordinated omission);
5. couriers answering: for a share of the pickups (--accept) the first `--racers` couriers that hear the
   offer accept it at once (the loser's 409 is an accept conflict), and the winner marks it contacted and
   collects it with a valid S10 waybill number;
6. after the last create, a drain (until every pickup is heard and every courier action answered, at most
   --drain seconds), then a check against the database: every offer row (pickup_offers) heard exactly
   once by its courier (lost and duplicated offers), each pickup.offered event of the log heard exactly
   once by each courier it names (event_recipients, by event id), no pickup accepted twice (events),
   pickups collected;
7. the bare-endpoint ceiling: tests/bench/bare_app.py (the same PickupCreate struct decoded, no database)
   in its own process, driven closed-loop at full speed by tests/bench/loadgen.py for a few seconds, after
   Lanshou has stopped (so they do not share the CPU).

It prints a table (and with --json writes every figure) and asserts nothing: tests/test_load_smoke.py
runs it briefly and checks what must hold on any machine. Servers are stopped and the database dropped
on the way out, Ctrl+C included.

Shapes the targets of issue #10 name (examples):
  2,000 creates/s on one SQLite process:      --rate 2000 --couriers 100 --zones 10
  10,000 couriers in 1,000 zones at 500/s:    --rate 500 --couriers 10000 --zones 1000
  one grab zone of 1,000 couriers:            --rate 20 --couriers 1000 --zones 1
  PostgreSQL, two processes sharing push:     --postgres URL --workers 2 --channels db
                                   (one port):  --postgres URL --serve-workers 2 --channels db
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from tests.bench.bench_create_pickup import Served
from tests.bench.loadgen import _ProtocolError, _read_response, build_request, load, run
from tests.conftest import ROOT, Database, new_waybill

clock = time.perf_counter  # not loop.time(): uvloop's clock ticks in whole milliseconds
TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _ProtocolError)


def pickup_body(lng: float, lat: float, n: int) -> bytes:
    return msgspec.json.encode(
        {
            "sender": {"name": "李四", "phone": "13912345678"},
            "address": {
                "province": "湖南省",
                "city": "长沙市",
                "district": "望城区",
                "street": "白箬铺镇",
                "detail": f"{n % 97 + 1}号楼2单元",
                "lat": lat,
                "lng": lng,
                "datum": "wgs84",
            },
            "parcel_count": 1,
        }
    )


# -- HTTP over raw keep-alive connections ----------------------------------------------------------------


class TransportError(Exception):
    """A request that got no answer: what broke, and whether on a new or a kept-alive connection."""

    def __init__(self, exc: BaseException, reused: bool) -> None:
        super().__init__(f"{type(exc).__name__} on a {'kept-alive' if reused else 'new'} connection")
        self.kind = str(self)


class Pool:
    """Keep-alive connections to one server, opened as needed up to `limit` at once.

    A connection idle for IDLE_S or more is not reused: uvicorn closes kept-alive connections after 5 s
    idle, and a request written just as the server closes one would fail with nothing to say whether
    the server had it (a create must not be sent twice, so it is not retried)."""

    IDLE_S = 2.0

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(limit)
        self.all: set[asyncio.StreamWriter] = set()
        self.sent = 0  # requests written and not answered yet (the rest of those waiting wait for a slot)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle:
            reader, writer, since = self.idle.pop()
            if clock() - since < self.IDLE_S and not reader.at_eof():
                return reader, writer, True
            writer.close()
            self.all.discard(writer)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as exc:
            raise TransportError(exc, False) from exc
        self.all.add(writer)
        return reader, writer, False

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        data = build_request(method, path, host=self.host, body=body, headers=headers)
        async with self.slots:
            reader, writer, reused = await self._connection()
            self.sent += 1
            try:
                writer.write(data)
                status, answer, closes = await _read_response(reader)
            except BaseException as exc:
                writer.close()
                self.all.discard(writer)
                if isinstance(exc, TRANSPORT_ERRORS):
                    raise TransportError(exc, reused) from exc
                raise
            finally:
                self.sent -= 1
            if closes:
                writer.close()
                self.all.discard(writer)
            else:
                self.idle.append((reader, writer, clock()))
            return status, answer

    def close(self) -> None:
        for writer in self.all:
            writer.close()


# -- the couriers' streams -------------------------------------------------------------------------------


class _EventData(msgspec.Struct):
    pickup_id: int | None = None


class CourierStream:
    """One courier's SSE stream over a raw socket: chunked body decoded by hand, each event's type and
    pickup id handed to `on_event(courier_index, type, pickup_id, arrival_time)`.

    Like a browser's EventSource it reconnects when the stream ends or breaks (the server cuts off a
    client too far behind), sending Last-Event-ID so the server replays what was missed from its log;
    `reconnects` counts how often."""

    _decode = msgspec.json.Decoder(_EventData).decode

    def __init__(
        self, index: int, port: int, session: str, on_event: Callable[[int, str, int | None, float], None]
    ) -> None:
        self.index = index
        self.port = port
        self.session = session
        self.on_event = on_event
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.last_id = ""
        self.reconnects = 0

    async def run(self, connecting: asyncio.Semaphore) -> None:
        while True:
            try:
                await self._stream(connecting)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if not self.ready.is_set():
                    self.error = exc  # never connected: the harness stops
                    return
            self.reconnects += 1
            await asyncio.sleep(0.1)

    async def _stream(self, connecting: asyncio.Semaphore) -> None:
        async with connecting:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
            resume = f"last-event-id: {self.last_id}\r\n" if self.last_id else ""
            writer.write(
                (
                    "GET /api/v1/courier/events HTTP/1.1\r\n"
                    f"host: 127.0.0.1:{self.port}\r\naccept: text/event-stream\r\n{resume}"
                    f"cookie: lanshou_session={self.session}\r\n\r\n"
                ).encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200") or b"transfer-encoding: chunked" not in head.lower():
                writer.close()
                raise RuntimeError(f"stream refused: {head[:200]!r}")
        try:
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
        now = clock()
        event_type, data = "", b""
        for line in block.split(b"\r\n"):
            if line.startswith(b"event: "):
                event_type = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
            elif line.startswith(b"id: "):
                self.last_id = line[4:].decode()
        if event_type == "ready":
            self.ready.set()
        elif event_type:
            pickup_id = self._decode(data).pickup_id if data.startswith(b"{") else None
            self.on_event(self.index, event_type, pickup_id, now)


# -- the run ---------------------------------------------------------------------------------------------


@dataclass
class Created:
    due: float
    answered: float = 0.0
    status: int = 0
    pickup_id: int | None = None
    pickup_status: str = ""


@dataclass
class Figures:
    creates_due: int = 0
    creates: list[Created] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # "create 500", "accept ConnectionResetError"
    statuses: Counter[str] = field(default_factory=Counter)  # "create 201", "accept 409 conflict" …
    heard: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))  # (courier, pickup)
    heard_events: Counter[tuple[int, int]] = field(default_factory=Counter)  # (courier, event id) offered
    first_heard: dict[int, float] = field(default_factory=dict)
    last_heard: dict[int, float] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    racers: dict[int, int] = field(default_factory=dict)  # pickup -> couriers sent to accept it
    accepted: dict[int, int] = field(default_factory=dict)  # pickup -> courier whose accept won
    accept_conflicts: Counter[str] = field(default_factory=Counter)
    collected: set[int] = field(default_factory=set)
    actions: set[asyncio.Task[None]] = field(default_factory=set)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "max": ordered[-1] * 1000, "n": len(ordered)}


def proc_stat(pid: int) -> tuple[float, int, int]:
    """(CPU seconds user + system, VmRSS bytes, VmHWM bytes) of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = hwm = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
        return cpu, rss, hwm
    except (OSError, IndexError, ValueError):
        return float("nan"), 0, 0


def family(pid: int) -> list[int]:
    """A process and its descendants (a `lanshou serve --workers N` and its workers), from /proc."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
        i += 1
    return pids


def family_stat(pid: int) -> tuple[float, int, int]:
    """proc_stat summed over a process and its descendants (the largest high-water mark, not a sum)."""
    stats = [proc_stat(p) for p in family(pid)]
    return sum(s[0] for s in stats), sum(s[1] for s in stats), max(s[2] for s in stats)


def streams_by_worker(pid: int, port: int) -> dict[int, int]:
    """Established connections to `port` held by each process of the family (the streams each worker
    serves; Linux /proc: socket inodes of each process's descriptors, looked up in /proc/net/tcp*)."""
    inodes: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:] + (
        Path("/proc/net/tcp6").read_text().splitlines()[1:] if Path("/proc/net/tcp6").exists() else []
    ):
        parts = line.split()
        if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:  # ESTABLISHED, local port
            inodes[parts[9]] = 1
    held: dict[int, int] = {}
    for p in family(pid):
        count = 0
        try:
            for fd in Path(f"/proc/{p}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    count += 1
        except OSError:
            continue
        if count:
            held[p] = count
    return held


def pid_of(served: Served) -> int:
    assert served.proc is not None
    return served.proc.pid


def _code(body: bytes) -> str:
    try:
        code = msgspec.json.decode(body).get("code", "")
    except (msgspec.DecodeError, AttributeError):
        return ""
    return str(code)


async def courier_action(
    figures: Figures, pool: Pool, session: str, action: str, pickup_id: int, body: bytes
) -> int:
    """POST one courier action (accept, contacted, collect) and count its answer; 0 if none came."""
    headers = {"cookie": f"lanshou_session={session}"}
    path = f"/api/v1/courier/pickups/{pickup_id}/{action}"
    try:
        status, answer = await pool.request("POST", path, body, headers)
    except TransportError as exc:
        figures.errors[f"{action}: {exc.kind}"] += 1
        return 0
    if status >= 500:
        figures.errors[f"{action} {status}"] += 1
    elif action == "accept" and status == 409:
        figures.accept_conflicts[_code(answer)] += 1
    elif status != 200:
        figures.errors[f"{action} {status} {_code(answer)}"] += 1
    figures.statuses[f"{action} {status}"] += 1
    return status


async def give_up_courier_actions(figures: Figures, pools: list[Pool]) -> None:
    """Count the courier actions still unanswered at the end of a run, and cancel them.

    Before the pools close: a request whose connection is closed under it fails with
    IncompleteReadError, which would be counted as the server's fault. It was, for every request in
    flight at the end: 256 "IncompleteReadError on a kept-alive connection" in an overloaded run (one per
    connection of the pool), while the server had closed no connection that carried a request."""
    if not figures.actions:
        return
    figures.errors["courier action unanswered at the end"] = len(figures.actions)
    sent = sum(pool.sent for pool in pools)
    if sent:  # the others were still waiting for a free connection in this client
        figures.errors["courier action unanswered at the end, sent to the server"] = sent
    given_up = list(figures.actions)
    for task in given_up:
        task.cancel()
    await asyncio.gather(*given_up, return_exceptions=True)


async def drive(
    args: argparse.Namespace, seeded: dict[str, Any], servers: list[Served], db: Database
) -> tuple[Figures, dict[str, Any], dict[str, Any]]:
    figures = Figures()
    load_before = os.getloadavg()
    zones = seeded["zones"]
    couriers = seeded["couriers"]
    ports = [s.port for s in servers]
    partner_pools = [Pool(port, args.connections) for port in ports]
    courier_pools = [Pool(port, args.connections) for port in ports]
    accept_share = args.accept

    async def courier_call(index: int, action: str, pickup_id: int, body: bytes) -> int:
        pool = courier_pools[index % len(ports)]
        return await courier_action(figures, pool, couriers[index]["session"], action, pickup_id, body)

    async def take(index: int, pickup_id: int) -> None:
        if await courier_call(index, "accept", pickup_id, b"{}") != 200:
            return
        if pickup_id in figures.accepted:
            figures.errors["accept 200 twice"] += 1
        figures.accepted[pickup_id] = index
        if await courier_call(index, "contacted", pickup_id, b"{}") != 200:
            return
        body = msgspec.json.encode({"waybill_no": new_waybill()})
        if await courier_call(index, "collect", pickup_id, body) == 200:
            figures.collected.add(pickup_id)

    def on_event(index: int, event_type: str, pickup_id: int | None, at: float) -> None:
        figures.events[event_type] += 1
        if event_type != "pickup.offered" or pickup_id is None:
            return
        key = (index, pickup_id)
        figures.heard[key] += 1
        if streams[index].last_id.isdigit():  # the event's id (the stream parsed it before this call)
            figures.heard_events[(index, int(streams[index].last_id))] += 1
        if figures.heard[key] > 1:
            return  # a duplicate: counted, not answered again
        figures.first_heard.setdefault(pickup_id, at)
        figures.last_heard[pickup_id] = at
        # Whether this pickup is taken is decided by its id (the same pickups in every run).
        sent = figures.racers.get(pickup_id, 0)
        if sent < args.racers and (pickup_id * 2654435761 % 10_000) < accept_share * 10_000:
            figures.racers[pickup_id] = sent + 1
            task = asyncio.create_task(take(index, pickup_id))
            figures.actions.add(task)
            task.add_done_callback(figures.actions.discard)

    # Open every stream, a few hundred connects at a time (a listen backlog overflows otherwise).
    connecting = asyncio.Semaphore(200)
    streams = [
        CourierStream(i, ports[i % len(ports)], c["session"], on_event) for i, c in enumerate(couriers)
    ]
    for stream in streams:
        stream.task = asyncio.create_task(stream.run(connecting))
    deadline = clock() + 30 + len(streams) / 100
    while not all(s.ready.is_set() for s in streams):
        broken = [s for s in streams if s.error is not None]
        if broken:
            raise RuntimeError(f"{len(broken)} courier streams failed, e.g. {broken[0].error!r}")
        if clock() > deadline:
            raise RuntimeError("courier streams not ready in time")
        await asyncio.sleep(0.05)
    print(f"{len(streams)} courier streams open", file=sys.stderr, flush=True)

    bodies = [pickup_body(z["lng"], z["lat"], i) for i, z in enumerate(zones)]
    partner_headers = {"authorization": f"Bearer {seeded['api_key']}"}

    async def create(n: int, record: Created) -> None:
        pool = partner_pools[n % len(ports)]
        try:
            status, answer = await pool.request(
                "POST", "/api/v1/pickups", bodies[n % len(bodies)], partner_headers
            )
        except TransportError as exc:
            record.answered = clock()
            figures.errors[f"create: {exc.kind}"] += 1
            return
        record.answered = clock()
        record.status = status
        figures.statuses[f"create {status}"] += 1
        if status == 201:
            out = msgspec.json.decode(answer)
            record.pickup_id, record.pickup_status = out["id"], out["status"]
        else:
            figures.errors[f"create {status} {_code(answer)}"] += 1

    total = int(args.rate * args.seconds)
    figures.creates_due = total
    by_worker = {s.port: streams_by_worker(pid_of(s), s.port) for s in servers}
    before = {s.port: family_stat(pid_of(s)) for s in servers}
    peak_rss = {s.port: before[s.port][1] for s in servers}
    sampling = True

    async def sample_rss() -> None:
        while sampling:
            for s in servers:
                peak_rss[s.port] = max(peak_rss[s.port], family_stat(pid_of(s))[1])
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    client_cpu0 = time.process_time()
    started = clock()
    tasks = []
    interval = 1.0 / args.rate
    late = 0  # creates sent more than 10 ms after they were due (this client falling behind)
    for n in range(total):
        due = started + n * interval
        wait = due - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.01:
            late += 1
        record = Created(due=due)
        figures.creates.append(record)
        tasks.append(asyncio.create_task(create(n, record)))
    sent_seconds = clock() - started
    await asyncio.wait(tasks, timeout=args.drain + 30)
    # Creates still unanswered now are given up (the server may yet do them: their pickups are left
    # out of every figure), so that what is checked below is a fixed set.
    unanswered = [task for task in tasks if not task.done()]
    if unanswered:
        figures.errors["create unanswered at the end"] = len(unanswered)
    for task in unanswered:
        task.cancel()
    # Drain: every answered create heard by a courier, every courier action answered.
    drain_until = clock() + args.drain
    while clock() < drain_until:
        ids = [c.pickup_id for c in figures.creates if c.pickup_id is not None]
        if all(i in figures.first_heard for i in ids) and not figures.actions:
            break
        await asyncio.sleep(0.05)
    if figures.actions:
        await asyncio.wait(list(figures.actions), timeout=max(1.0, drain_until - clock()))
    # Then every offer the database holds for an answered create, heard by its courier: an overloaded
    # server's events arrive late, and late is not lost. What is still missing after this is reported.
    courier_index = {c["id"]: i for i, c in enumerate(couriers)}
    answered_ids = {c.pickup_id for c in figures.creates if c.pickup_id is not None}
    offers_until = clock() + args.drain
    while True:
        db_state = await asyncio.to_thread(check_database, db)
        missing = [
            (courier_index[courier], pickup)
            for pickup, courier in db_state["offers"]
            if pickup in answered_ids
            and courier in courier_index
            and (courier_index[courier], pickup) not in figures.heard
        ]
        if not missing or clock() > offers_until:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.2)  # late duplicates, if any, still count
    await give_up_courier_actions(figures, courier_pools)
    wall = clock() - started
    sampling = False
    await sampler
    after = {s.port: family_stat(pid_of(s)) for s in servers}
    client_cpu = time.process_time() - client_cpu0
    for stream in streams:
        if stream.task is not None:
            stream.task.cancel()
    await asyncio.gather(*(s.task for s in streams if s.task is not None), return_exceptions=True)
    for pool in partner_pools + courier_pools:
        pool.close()
    process = [
        {
            "port": s.port,
            "cpu_seconds": after[s.port][0] - before[s.port][0],
            "rss_mib_end": after[s.port][1] / 2**20,
            "rss_mib_peak_sampled": peak_rss[s.port] / 2**20,
            "rss_mib_hwm": after[s.port][2] / 2**20,
            "streams_by_process": list(by_worker[s.port].values()),
        }
        for s in servers
    ]
    timing = {
        "send_seconds": sent_seconds,
        "wall_seconds": wall,
        "late_sends": late,
        "client_cpu_seconds": client_cpu,
        "processes": process,
        "load_average_before": load_before,
        "stream_reconnects": sum(stream.reconnects for stream in streams),
    }
    return figures, timing, db_state


def check_database(db: Database) -> dict[str, Any]:
    """The offers, accepts and collections as the database has them (for the event-log check)."""
    offers_sql = "SELECT pickup, courier FROM pickup_offers"
    accepts_sql = "SELECT pickup, COUNT(*) FROM events WHERE type = 'pickup.accepted' GROUP BY pickup"
    status_sql = "SELECT status, COUNT(*) FROM pickups GROUP BY status"
    offer_events_sql = (
        "SELECT r.courier, e.id, e.pickup FROM events e JOIN event_recipients r ON r.event = e.id "
        "WHERE e.type = 'pickup.offered'"
    )
    if db.pg_admin_url:

        async def query() -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            import asyncpg

            conn = await asyncpg.connect(db.url)
            try:
                return (
                    [tuple(r) for r in await conn.fetch(offers_sql)],
                    [tuple(r) for r in await conn.fetch(accepts_sql)],
                    [tuple(r) for r in await conn.fetch(status_sql)],
                    [tuple(r) for r in await conn.fetch(offer_events_sql)],
                )
            finally:
                await conn.close()

        offers, accepts, statuses, offer_events = asyncio.run(query())
    else:
        with sqlite3.connect(db.path) as conn:
            offers = conn.execute(offers_sql).fetchall()
            accepts = conn.execute(accepts_sql).fetchall()
            statuses = conn.execute(status_sql).fetchall()
            offer_events = conn.execute(offer_events_sql).fetchall()
    return {
        "offers": offers,
        "accepts": dict(accepts),
        "statuses": dict(statuses),
        "offer_events": offer_events,
    }


def summarise(
    args: argparse.Namespace,
    figures: Figures,
    timing: dict[str, Any],
    seeded: dict[str, Any],
    db_state: dict[str, Any],
    ceiling: dict[str, Any] | None,
) -> dict[str, Any]:
    answered = [c for c in figures.creates if c.answered]
    created = [c for c in answered if c.pickup_id is not None]
    ids = [c.pickup_id for c in created if c.pickup_id is not None]
    by_id = {c.pickup_id: c for c in created}
    to_event_first = [
        figures.first_heard[c.pickup_id] - c.answered for c in created if c.pickup_id in figures.first_heard
    ]
    to_event_last = [
        figures.last_heard[c.pickup_id] - c.answered for c in created if c.pickup_id in figures.last_heard
    ]
    # The event-log check: each offer row heard once by its courier, and nothing heard that was not offered.
    courier_index = {c["id"]: i for i, c in enumerate(seeded["couriers"])}
    offer_pairs = {
        (courier_index[courier], pickup)
        for pickup, courier in db_state["offers"]
        if pickup in by_id and courier in courier_index
    }
    heard_pairs = {pair for pair in figures.heard if pair[1] in by_id}
    lost = len(offer_pairs - heard_pairs)
    unexpected = len(heard_pairs - offer_pairs)
    duplicated = sum(count - 1 for pair, count in figures.heard.items() if count > 1)
    accepted_twice = sum(1 for pickup, n in db_state["accepts"].items() if pickup in by_id and n > 1)
    # The same by the log itself: every (courier, pickup.offered event) of event_recipients heard once.
    logged = {
        (courier_index[courier], event)
        for courier, event, pickup in db_state["offer_events"]
        if pickup in by_id and courier in courier_index
    }
    heard_logged = {pair: n for pair, n in figures.heard_events.items() if pair in logged}
    event_log = {
        "offer_deliveries_in_log": len(logged),
        "heard": len(heard_logged),
        "lost": len(logged - set(heard_logged)),
        "duplicated": sum(n - 1 for n in figures.heard_events.values() if n > 1),
    }
    cpu = sum(p["cpu_seconds"] for p in timing["processes"])
    # Achieved: created pickups over the time from the first create due to the last one answered (a
    # server falling behind stretches it), not over the time the client took to send them.
    span = max((c.answered for c in answered), default=0.0) - (figures.creates[0].due if answered else 0.0)
    achieved = len(created) / span if span > 0 else 0.0
    http = percentiles([c.answered - c.due for c in answered if c.status])
    result: dict[str, Any] = {
        "shape": {
            "database": "postgresql" if args.postgres else "sqlite",
            "workers": args.workers,
            "serve_workers": args.serve_workers,
            "server": "granian" if args.granian else "uvicorn",
            "channels": args.channels or "in-process",
            "rate": args.rate,
            "seconds": args.seconds,
            "couriers": len(seeded["couriers"]),
            "zones": len(seeded["zones"]),
            "mode": args.mode,
            "accept": args.accept,
            "racers": args.racers,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": timing["load_average_before"],
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
        },
        "creates": {
            "due": figures.creates_due,
            "answered": len(answered),
            "created": len(created),
            "offered": sum(1 for c in created if c.pickup_status == "offered"),
            "not_offered": dict(Counter(c.pickup_status for c in created if c.pickup_status != "offered")),
            "per_second": achieved,
            "late_sends": timing["late_sends"],
        },
        "http_ms": http,  # create answered − create due (open loop: queueing included)
        "create_to_event_ms": percentiles(to_event_first),  # first courier's pickup.offered − create answered
        "create_to_last_event_ms": percentiles(to_event_last),  # the last courier offered it
        "offers": {
            "in_database": len(offer_pairs),
            "heard": len(heard_pairs),
            "lost": lost,
            "duplicated": duplicated,
            "unexpected": unexpected,
            "pickups_heard": sum(1 for i in ids if i in figures.first_heard),
            "pickups_not_heard": sum(1 for i in ids if i not in figures.first_heard),
            "stream_reconnects": timing["stream_reconnects"],
            "event_log": event_log,
        },
        "couriers": {
            "accept_attempts": sum(figures.racers.values()),
            "accepted": len(figures.accepted),
            "accept_conflicts": sum(figures.accept_conflicts.values()),
            "accept_conflicts_by_code": dict(figures.accept_conflicts),
            "accepted_twice": accepted_twice,
            "collected": len(figures.collected),
            "accepted_not_collected": len(set(figures.accepted) - figures.collected),
        },
        "pickup_statuses": db_state["statuses"],
        "events_heard": dict(figures.events),
        "responses": dict(figures.statuses),
        "errors": dict(figures.errors),
        "server": {
            "processes": timing["processes"],
            "streams_by_process": [n for p in timing["processes"] for n in p["streams_by_process"]],
            "cpu_ms_per_create": cpu / len(created) * 1000 if created else None,
            "cpu_cores": cpu / timing["wall_seconds"],
            "rss_mib_peak": max(p["rss_mib_hwm"] for p in timing["processes"]),
        },
        "client": {
            "cpu_cores": timing["client_cpu_seconds"] / timing["wall_seconds"],
            "wall_seconds": timing["wall_seconds"],
        },
        "ceiling": ceiling,
    }
    if ceiling and ceiling.get("per_second"):
        result["creates"]["share_of_ceiling"] = achieved / ceiling["per_second"]
    return result


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(result: dict[str, Any]) -> str:
    s, c, o, k, srv = (result[x] for x in ("shape", "creates", "offers", "couriers", "server"))
    lines = [
        f"Lanshou load · {s['database']} · {s['workers']} process(es)"
        + (f" × {s['serve_workers']} workers each" if s["serve_workers"] > 1 else "")
        + f", push {s['channels']}"
        + f" · {s['couriers']:,} couriers in {s['zones']:,} {s['mode']} zones · {s['rate']:g} creates/s for "
        f"{s['seconds']:g} s · accept {s['accept']:.0%}, {s['racers']} racing · "
        f"{result['machine']['cpus']} CPUs, load average {result['machine']['load_average_before'][0]:.2f} "
        f"before, {result['machine']['load_average_after'][0]:.2f} after",
        "",
        f"{'':42}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'n':>9}",
    ]
    for label, key in (
        ("HTTP create (from when it was due)", "http_ms"),
        ("create answered → first courier's offer", "create_to_event_ms"),
        ("create answered → last courier's offer", "create_to_last_event_ms"),
    ):
        p = result[key]
        lines.append(f"{label:42}{fmt(p['p50']):>10}{fmt(p['p99']):>10}{fmt(p['max']):>10}{fmt(p['n']):>9}")
    lines += [
        "",
        f"creates: {fmt(c['created'])} of {fmt(c['due'])} due ({fmt(c['per_second'])}/s achieved), "
        f"{fmt(c['offered'])} offered, {fmt(c['late_sends'])} sent late by the client"
        + (f"; {c['share_of_ceiling']:.1%} of the bare-endpoint ceiling" if "share_of_ceiling" in c else ""),
        f"offers: {fmt(o['in_database'])} in the database, {fmt(o['heard'])} heard, {fmt(o['lost'])} never heard, "
        f"{fmt(o['duplicated'])} duplicated, {fmt(o['unexpected'])} unexpected; "
        f"{fmt(o['pickups_not_heard'])} pickups heard by nobody; {fmt(o['stream_reconnects'])} stream "
        "reconnects",
        f"event log: {fmt(o['event_log']['offer_deliveries_in_log'])} offer deliveries (event × courier), "
        f"{fmt(o['event_log']['heard'])} heard, {fmt(o['event_log']['lost'])} lost, "
        f"{fmt(o['event_log']['duplicated'])} duplicated",
        f"couriers: {fmt(k['accepted'])} accepted, {fmt(k['accept_conflicts'])} accept conflicts "
        f"{k['accept_conflicts_by_code'] or ''}, {fmt(k['accepted_twice'])} accepted twice, "
        f"{fmt(k['collected'])} collected",
        f"errors: {result['errors'] or 'none'}",
        f"server: {fmt(srv['cpu_ms_per_create'], 2)} ms CPU per create, {fmt(srv['cpu_cores'], 2)} cores, "
        f"peak RSS {fmt(srv['rss_mib_peak'])} MiB"
        + "".join(f" · :{p['port']} HWM {p['rss_mib_hwm']:.0f} MiB" for p in srv["processes"][1:])
        + f"; streams per process {srv['streams_by_process']}",
        f"client: {fmt(result['client']['cpu_cores'], 2)} cores over {fmt(result['client']['wall_seconds'])} s",
    ]
    ceiling = result["ceiling"]
    if ceiling:
        lines.append(
            f"bare-endpoint ceiling: {fmt(ceiling['per_second'], 0)} creates/s closed-loop "
            f"({ceiling['concurrency']} connections, p50 {fmt(ceiling['p50_ms'], 2)} ms, "
            f"server {fmt(ceiling['cpu_ms_per_request'], 3)} ms CPU per request)"
        )
    return "\n".join(lines)


def bare_ceiling(tmp: Path, args: argparse.Namespace, zone: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANSHOU_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "tests.bench.bare_app", "--log-level", "warning"]
    with Served(cmd, env, tmp / "bare.log") as served:
        assert served.proc is not None
        request = build_request(
            "POST",
            "/api/v1/pickups",
            host=f"127.0.0.1:{served.port}",
            body=pickup_body(zone["lng"], zone["lat"], 1),
        )
        cpu0 = proc_stat(served.proc.pid)[0]
        result = run(
            load(
                "127.0.0.1",
                served.port,
                request,
                concurrency=args.ceiling_concurrency,
                seconds=args.ceiling_seconds,
                warmup=1.0,
            )
        )
        cpu = proc_stat(served.proc.pid)[0] - cpu0
    return {
        "per_second": result.rate,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "bad": result.bad(201),
        "concurrency": args.ceiling_concurrency,
        "seconds": args.ceiling_seconds,
        "cpu_ms_per_request": cpu / max(1, result.requests) * 1000,  # warm-up CPU included: an upper bound
    }


def raise_fd_limit(couriers: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = (
        min(hard, max(soft, couriers * 2 + 4096)) if hard != resource.RLIM_INFINITY else couriers * 2 + 4096
    )
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the servers inherit it
    if want < couriers + 1024:
        print(f"warning: open-file limit {want} is low for {couriers} streams", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200, help="partner creates per second (open loop)")
    parser.add_argument("--seconds", type=float, default=20, help="how long creates are sent")
    parser.add_argument("--couriers", type=int, default=100, help="couriers on duty, each with a stream")
    parser.add_argument("--zones", type=int, default=10, help="zones the couriers and creates spread over")
    parser.add_argument("--mode", choices=["grab", "assign"], default="grab", help="the zones' dispatch mode")
    parser.add_argument("--accept", type=float, default=1.0, help="share of pickups accepted (0…1)")
    parser.add_argument("--racers", type=int, default=2, help="couriers accepting each taken pickup at once")
    parser.add_argument("--capacity", type=int, default=1000, help="open pickups a courier may hold")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server (admin URL, as for tests)")
    parser.add_argument(
        "--workers", type=int, default=1, help="`lanshou serve` processes sharing the database"
    )
    parser.add_argument(
        "--serve-workers",
        type=int,
        default=1,
        metavar="N",
        help="each server is `lanshou serve --workers N` (N processes on one port; needs --channels)",
    )
    parser.add_argument(
        "--granian", action="store_true", help="serve with granian instead of uvicorn (to compare them)"
    )
    parser.add_argument(
        "--channels",
        metavar="URL",
        default="",
        help="LANSHOU_CHANNELS_URL: redis://… or `db` (LISTEN/NOTIFY on the run's PostgreSQL database); "
        "needed with --workers > 1",
    )
    parser.add_argument("--connections", type=int, default=256, help="most connections per pool and server")
    parser.add_argument("--drain", type=float, default=10, help="most seconds to wait after the last create")
    parser.add_argument("--ceiling-seconds", type=float, default=3, help="bare-endpoint run (0: skip it)")
    parser.add_argument("--ceiling-concurrency", type=int, default=16)
    parser.add_argument("--json", metavar="PATH", help="write every figure here as JSON")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run the servers under cProfile, writing DIR/server-K.prof (slower: for where, not how fast)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE", help="more env")
    args = parser.parse_args(argv)
    if (args.workers > 1 or args.serve_workers > 1) and not args.channels:
        parser.error("--workers > 1 needs --channels (db with --postgres, or redis://…) to share push")
    if args.channels == "db" and not args.postgres:
        parser.error("--channels db needs --postgres")
    if not 0 <= args.accept <= 1 or args.rate <= 0 or args.zones < 1 or args.couriers < args.zones:
        parser.error("need 0 ≤ --accept ≤ 1, --rate > 0, and at least one courier per zone")
    return args


def seed(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    """Step 1: the database seeded (tests/bench/load_seed.py in a process of its own)."""
    print(f"seeding {args.couriers} couriers in {args.zones} zones …", file=sys.stderr, flush=True)
    spec = {"zones": args.zones, "couriers": args.couriers, "mode": args.mode, "capacity": args.capacity}
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
    return json.loads(seeding.stdout)  # type: ignore[no-any-return]


def server_env(args: argparse.Namespace, db: Database) -> dict[str, str]:
    """What the servers run with besides the database's environment."""
    env = {
        "LANSHOU_API_RATE_LIMIT": "0",  # one partner sends everything: no limit
        "LANSHOU_PUSH_RENOTIFY_S": "0",
        "LANSHOU_LOG_LEVEL": "warning",
    }
    if args.channels:
        env["LANSHOU_CHANNELS_URL"] = db.url if args.channels == "db" else args.channels
    for pair in args.server_env:
        name, _, value = pair.partition("=")
        env[name] = value
    return env


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    raise_fd_limit(args.couriers)
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-load-"))
    db: Database | None = None
    result: dict[str, Any] = {}
    try:
        db = Database(tmp, args.postgres, prefix="lanshou_load")
        seeded = seed(db, args)
        env = server_env(args, db)
        with ExitStack() as stack:
            servers = []
            for k in range(args.workers):
                cmd = [sys.executable, "-m", "server", "serve", "--workers", str(args.serve_workers)]
                if args.granian:  # for comparing servers: tests/bench/granian_serve.py
                    cmd = [
                        sys.executable,
                        "-m",
                        "tests.bench.granian_serve",
                        "--workers",
                        str(args.serve_workers),
                    ]
                if args.profile:
                    out = Path(args.profile).resolve() / f"server-{k}.prof"
                    cmd = [sys.executable, "-m", "tests.bench.profiled_serve", str(out)]
                servers.append(stack.enter_context(Served(cmd, db.env(**env), tmp / f"server-{k}.log")))
            figures, timing, db_state = run(drive(args, seeded, servers, db))
            logs = [(s.log_path, s.log_path.stat().st_size) for s in servers]
        ceiling = None
        if args.ceiling_seconds > 0:
            print("bare-endpoint ceiling …", file=sys.stderr, flush=True)
            ceiling = bare_ceiling(tmp, args, seeded["zones"][0])
        result = summarise(args, figures, timing, seeded, db_state, ceiling)
        print(table(result))
        # What the servers logged while under load (not while being stopped, when an overloaded server
        # cancels its open requests and logs each).
        server_errors = [
            line
            for path, size in logs
            for line in path.read_bytes()[:size].decode(errors="replace").splitlines()
            if line.startswith(("ERROR", "Traceback", "CRITICAL"))
        ]
        result["server_log_errors"] = len(server_errors)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        if server_errors:
            args.keep = True
            print(f"the servers logged {len(server_errors)} errors under load (logs kept):", file=sys.stderr)
            print("\n".join(server_errors[:20]), file=sys.stderr)
    finally:
        if db is not None:
            try:
                db.drop()
            except Exception as exc:  # report it and go on cleaning up
                print(f"could not drop {db.name}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Ctrl+C and SIGTERM end the run through main's clean-up (servers stopped, database dropped).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: servers stopped, database dropped", file=sys.stderr)
        sys.exit(130)
