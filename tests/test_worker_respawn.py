"""`lanshou serve --workers 2` on PostgreSQL when a worker dies: it is replaced, the other keeps the port
(no new connection is refused), courier streams on the dead one reconnect elsewhere and resume from the
event log with nothing lost or repeated, /metrics neither loses the dead worker's counts nor keeps its
streams, and a replacement that dies at every start is retried after growing pauses, not spun on.

Workers are found as the supervisor's children in /proc (tests/bench/bench_restart.py's worker_pids), and
a worker serves once it holds a listening socket on the port."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.bench.bench_restart import worker_pids
from tests.conftest import (
    PG_ADMIN_URL,
    Api,
    Database,
    Personas,
    ServerProcess,
    _pg_admin,
    demo_database,
    login_couriers,
    make_zone,
    pickup_body,
)

pytestmark = pytest.mark.skipif(not PG_ADMIN_URL, reason="several workers need PostgreSQL")


@pytest.fixture
def respawn_db() -> Iterator[tuple[Database, str]]:
    with demo_database("lanshou-respawn-") as database_and_key:
        yield database_and_key


@pytest.fixture
async def two_workers(
    respawn_db: tuple[Database, str],
) -> AsyncIterator[tuple[Database, ServerProcess, Personas]]:
    database, api_key = respawn_db
    server = ServerProcess(
        database, "--workers", "2", LANSHOU_CHANNELS_URL=database.url, LANSHOU_API_RATE_LIMIT="0"
    )
    await asyncio.to_thread(server.start)
    people = Personas(server, api_key)
    try:
        yield database, server, people
    finally:
        await people.close()
        server.stop()


def listening_pids(server: ServerProcess) -> set[int]:
    """The workers holding a listening socket on the server's port (those serving it)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == server.port:  # LISTEN
                inodes.add(parts[9])
    found = set()
    assert server.proc is not None
    for pid in worker_pids(server.proc.pid):
        try:
            targets = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
        if any(t.startswith("socket:[") and t[8:-1] in inodes for t in targets):
            found.add(pid)
    return found


async def until(what: str, check: Callable[[], Any], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        await asyncio.sleep(0.05)
    return found


def two_serving(server: ServerProcess, keep: int = 0, gone: int = 0) -> set[int] | None:
    """The two workers serving the port, if two do (with `keep` among them and `gone` not); else None."""
    pids = listening_pids(server)
    if len(pids) != 2 or (keep and keep not in pids) or (gone and gone in pids):
        return None
    return pids


def log_lines(server: ServerProcess) -> str:
    return "\n".join(line for line in server.log().splitlines() if "worker [" in line)


# -- a killed worker ---------------------------------------------------------------------------------------


async def test_a_killed_worker_is_replaced_while_the_other_keeps_the_port(
    two_workers: tuple[Database, ServerProcess, Personas],
) -> None:
    _, server, _ = two_workers
    victim, survivor = sorted(await until("two workers serving", lambda: two_serving(server)))
    outcomes: list[tuple[float, str]] = []  # (when sent, "ok" or the error)
    stop = asyncio.Event()

    async def ask_again_and_again() -> None:
        # A new connection for every request, so the kernel picks a worker each time.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=5, limits=limits) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    r = await client.get("/readyz")
                    outcomes.append((sent, "ok" if r.status_code == 200 else str(r.status_code)))
                except httpx.HTTPError as exc:
                    outcomes.append((sent, repr(exc)))

    asking = asyncio.create_task(ask_again_and_again())
    await asyncio.sleep(0.5)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    # Its listening socket closes as the kernel tears the process down (not quite at once).
    await until("the killed worker's socket closed", lambda: victim not in listening_pids(server))
    closed_at = time.monotonic()
    # Seconds; more on a loaded machine (a worker is a fresh interpreter importing the app).
    serving = await until("the replacement serving", lambda: two_serving(server, gone=victim), 30)
    replaced_at = time.monotonic()
    await asyncio.sleep(0.3)  # and a little of the two of them serving again
    stop.set()
    await asyncio.wait_for(asking, 10)

    (new,) = serving - {survivor}
    figures = (closed_at - killed_at, replaced_at - killed_at, len(outcomes))
    # What failed is only what the kernel had given the killed worker before its socket closed (the
    # request in flight, connections it took while being torn down): nothing sent after.
    errors = [(sent - killed_at, outcome) for sent, outcome in outcomes if outcome != "ok"]
    assert all(sent <= closed_at for sent, outcome in outcomes if outcome != "ok"), (errors, figures)
    # The survivor answered everything sent while the slot was empty.
    in_the_gap = [outcome for sent, outcome in outcomes if closed_at < sent < replaced_at]
    assert len(in_the_gap) >= 10 and set(in_the_gap) == {"ok"}, (errors, figures)
    lines = log_lines(server)
    assert f"worker [{victim}] exited (killed by SIGKILL); starting another" in lines, lines
    assert f"worker [{victim}] replaced by [{new}]" in lines, lines
    assert "Traceback" not in server.log(), server.log()[-3000:]


class ResumingStream:
    """A courier's event stream that reconnects as EventSource does (Last-Event-ID, a short retry),
    recording every event id it hears and how often its connection broke."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.last_id: str | None = None
        self.offers: list[tuple[int, int]] = []  # (pickup id, event id) of every pickup.offered heard
        self.connected = asyncio.Event()
        self.breaks = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._read()
            except (httpx.HTTPError, OSError):
                pass
            self.connected.clear()
            self.breaks += 1
            await asyncio.sleep(0.2)

    async def _read(self) -> None:
        headers = {"accept": "text/event-stream"}
        if self.last_id is not None:
            headers["last-event-id"] = self.last_id
        async with self.api.client.stream(
            "GET", "/api/v1/courier/events", headers=headers, timeout=httpx.Timeout(5, read=None)
        ) as response:
            assert response.status_code == 200
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.lstrip(" ")
                    continue
                if fields.get("id"):
                    self.last_id = fields["id"]
                if fields.get("event") == "ready":
                    self.connected.set()
                elif fields.get("event") == "pickup.offered":
                    data = msgspec.json.decode(fields["data"])
                    self.offers.append((data["pickup_id"], int(fields["id"])))
                fields = {}

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def streams_open(metrics: str) -> float:
    found = re.search(r'lanshou_sse_streams_open\{kind="courier"\} (\S+)', metrics)
    assert found, metrics[:2000]
    return float(found.group(1))


def creates_counted(metrics: str) -> float:
    pattern = r'lanshou_http_requests_total\{method="POST",route="/api/v1/pickups",status="2xx"\} (\S+)'
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


async def scrapes(server: ServerProcess, count: int = 4) -> list[str]:
    # New connections, so that both workers answer some: each adds every worker up.
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        return [(await client.get("/metrics", headers={"connection": "close"})).text for _ in range(count)]


async def test_streams_on_a_killed_worker_resume_from_the_log_and_metrics_forget_them(
    two_workers: tuple[Database, ServerProcess, Personas],
) -> None:
    from tests.bench.load import streams_by_worker

    _, server, people = two_workers
    assert server.proc is not None
    await until("two workers serving", lambda: two_serving(server))
    zone = await make_zone(people, couriers=6)
    couriers = await login_couriers(people, zone)
    partner = people.partner()
    streams = [ResumingStream(courier) for courier in couriers]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in streams)), 10)
        held = streams_by_worker(server.proc.pid, server.port)
        victim = max(held, key=lambda pid: held[pid])  # the worker holding the most streams
        assert all(streams_open(text) == len(streams) for text in await scrapes(server))

        async def create() -> int:
            # As a partner does: a request to the killed worker (its kept-alive connection, or a new one
            # the kernel gave it while tearing it down) fails, and is sent again with its Idempotency-Key.
            body, key = pickup_body(zone), uuid.uuid4().hex
            for attempt in range(3):
                try:
                    r = await partner.post("/api/v1/pickups", json=body, headers={"idempotency-key": key})
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.2)
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        pickups = [await create() for _ in range(2)]  # heard live before the kill
        os.kill(victim, signal.SIGKILL)
        pickups += [await create() for _ in range(3)]  # while the victim's streams are away

        # Every stream hears every offer exactly once, with the log's event id, whichever worker it is on.
        offered: dict[int, int] = {}
        for pickup_id in pickups:
            events = (await partner.get(f"/api/v1/pickups/{pickup_id}")).json()["events"]
            (offered[pickup_id],) = [e["id"] for e in events if e["type"] == "pickup.offered"]
        expected = sorted(offered.items())
        await until("every offer heard", lambda: all(len(s.offers) >= len(pickups) for s in streams))
        await asyncio.sleep(0.3)  # a duplicate, if any, would come now
        for stream in streams:
            assert sorted(stream.offers) == expected, (stream.offers, expected)
        # The killed worker's streams broke and came back (on the survivor or the replacement).
        assert sum(s.breaks for s in streams) >= 1
        await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in streams)), 10)

        # /metrics: the dead worker's open streams are no longer counted (its live gauge file is
        # removed), while the creates it answered still are (its counter files stay).
        deadline = time.monotonic() + 5
        while True:
            texts = await scrapes(server)
            if all(streams_open(text) == len(streams) for text in texts) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert [streams_open(text) for text in texts] == [len(streams)] * len(texts)
        assert [creates_counted(text) for text in texts] == [len(pickups)] * len(texts)
    finally:
        for stream in streams:
            await stream.close()


def allow_connections(database: Database, allow: bool) -> None:
    assert database.pg_admin_url
    sql = f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS {str(allow).lower()}'
    asyncio.run(_pg_admin(database.pg_admin_url, sql))


# -- a replacement that cannot start ------------------------------------------------------------------------


async def test_a_replacement_failing_at_every_start_is_retried_after_growing_pauses(
    two_workers: tuple[Database, ServerProcess, Personas],
) -> None:
    database, server, _ = two_workers
    assert server.proc is not None and database.pg_admin_url
    victim, survivor = sorted(await until("two workers serving", lambda: two_serving(server)))
    # New connections to the database are refused (the running workers keep the ones they hold): a
    # replacement fails at start-up, every time, until they are allowed again.
    await asyncio.to_thread(allow_connections, database, False)
    seen: dict[int, list[float]] = {}  # replacement's pid: [first seen, last seen]

    def failed_replacements() -> list[int]:
        """Records when each replacement is seen; those gone, in order."""
        now = time.monotonic()
        assert server.proc is not None and server.proc.poll() is None, server.log()[-3000:]
        alive = worker_pids(server.proc.pid) - {survivor, victim}
        for pid in alive:
            seen.setdefault(pid, [now, now])[1] = now
        return [pid for pid in sorted(seen, key=lambda pid: seen[pid][0]) if pid not in alive]

    def a_replacement_serving() -> set[int] | None:
        failed_replacements()  # keeps recording when the next one appears
        return two_serving(server, keep=survivor)

    try:
        os.kill(victim, signal.SIGKILL)
        await until("two replacements failed", lambda: len(failed_replacements()) >= 2, 20)
        first, second = failed_replacements()[:2]
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:  # the survivor answers
            for _ in range(5):
                assert (await client.get("/health", headers={"connection": "close"})).status_code == 200
    finally:
        await asyncio.to_thread(allow_connections, database, True)
    # The next one starts and serves beside the survivor.
    serving = await until("a replacement serving", a_replacement_serving, 20)
    (third,) = serving - {survivor}
    # The first replacement came at once; after it failed, 1 s before the next, then 2 s.
    pause_1 = seen[second][0] - seen[first][1]
    pause_2 = seen[third][0] - seen[second][1]
    assert pause_1 >= 0.9 and pause_2 >= 1.9, (pause_1, pause_2)
    lines = log_lines(server)
    assert f"worker [{first}] failed before serving (status 3)" in lines, lines
    assert re.search(rf"worker \[{first}\] .*\(2 deaths in a row\); starting another in 1 s", lines), lines
    assert re.search(rf"worker \[{second}\] .*\(3 deaths in a row\); starting another in 2 s", lines), lines
    assert f"worker [{second}] replaced by [{third}]" in lines, lines
