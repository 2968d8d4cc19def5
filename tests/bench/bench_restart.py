"""A graceful restart with thousands of courier streams open: how long until the old server is gone, and
until every stream is back on the new one, resumed with Last-Event-ID with no offer lost or repeated.

Run: python -m tests.bench.bench_restart [--streams 5000] [--zones 50] [--postgres URL]
         [--restart term|hup] [--workers 2] [--creates 20] [--retry-ms 2000]

* `--restart term` (the default): `lanshou serve`, SIGTERM, and a new `lanshou serve` on the same port
  once the old one has exited (what a service manager does). Pickups are created as soon as the new
  server answers, while the streams are still reconnecting: they must hear them from the log.
* `--restart hup` (PostgreSQL): `lanshou serve --workers N` with push shared through LISTEN/NOTIFY, and
  SIGHUP, which replaces the workers one at a time; the port stays open and creates go on throughout.

The streams are tests/bench/load.py's (one asyncio client, raw sockets), reconnecting as EventSource does:
`--retry-ms` after a stream ends or a connection is refused (the server's `retry:` is 2000 ms), sending
Last-Event-ID. Before the restart each stream has heard some offers (so it resumes from an id); the
check at the end is the harness's: every (courier, pickup.offered event) of event_recipients heard once.

Prints the timings, the server's RSS with the streams open, and the load average; asserts nothing
(tests/test_restart.py runs a small one and checks what must hold).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.bench import load
from tests.conftest import Database, ServerProcess, wait_until_serving

clock = time.perf_counter


class Stream(load.CourierStream):
    """A courier's stream that knows whether it is connected now (from its `ready` until it ends) and
    waits `retry_s` before reconnecting, as EventSource does."""

    retry_s = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connected = False
        self.cut = 0  # times the stream ended or broke after it was going

    def _event(self, block: bytes) -> None:
        super()._event(block)
        if b"event: ready" in block:
            self.connected = True

    async def run(self, connecting: asyncio.Semaphore) -> None:
        while True:
            try:
                await self._stream(connecting)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if not self.ready.is_set():
                    self.error = exc
                    return
            if self.connected:
                self.cut += 1
            self.connected = False
            self.reconnects += 1
            await asyncio.sleep(self.retry_s)


def worker_pids(pid: int) -> set[int]:
    """The server's worker processes (its children other than multiprocessing's resource tracker)."""
    return {
        p
        for p in load.family(pid)[1:]
        if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
    }


def alive(pids: set[int]) -> bool:
    return any(Path(f"/proc/{p}").exists() for p in pids)


def start_again(server: ServerProcess, env: dict[str, str], args: list[str] | None = None) -> None:
    """`lanshou serve` on the server's port (a loaded machine may take a while to start one)."""
    server.proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(server.port), *(args or [])],
        cwd=load.ROOT,
        env=env,
        stdout=server.log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_until_serving(server.proc, server.url, server.log_path, 120)


def cpu_seconds(pid: int) -> float:
    return sum(load.proc_stat(p)[0] for p in load.family(pid))


def rss_mib(pid: int) -> float:
    return sum(load.proc_stat(p)[1] for p in load.family(pid)) / 2**20


async def restart_run(
    db: Database,
    *,
    streams: int,
    zones: int,
    restart: str = "term",
    workers: int = 2,
    creates: int = 20,
    retry_ms: int = 2000,
    server_env: list[str] | None = None,
) -> dict[str, Any]:
    """Seed, serve, open the streams, restart, and return every figure (see the module docstring)."""
    args = load.parse_args(
        ["--couriers", str(streams), "--zones", str(zones), "--rate", "1", "--ceiling-seconds", "0"]
        + (["--channels", "db", "--postgres", db.pg_admin_url or ""] if restart == "hup" else [])
        + [f"--server-env={pair}" for pair in server_env or []]
    )
    load.raise_fd_limit(streams)
    seeded = await asyncio.to_thread(load.seed, db, args)
    env = load.server_env(args, db)
    serve_args = ("--workers", str(workers)) if restart == "hup" else ()
    server = ServerProcess(db, *serve_args, **env)
    try:
        await asyncio.to_thread(start_again, server, db.env(**env), list(serve_args))
    except BaseException:
        server.stop()  # one that did not start in time is not left running
        raise
    heard: Counter[tuple[int, int]] = Counter()
    streams_list: list[Stream] = []

    def on_event(index: int, event_type: str, pickup_id: int | None, at: float) -> None:
        last = streams_list[index].last_id
        if event_type == "pickup.offered" and last.isdigit():
            heard[(index, int(last))] += 1

    Stream.retry_s = retry_ms / 1000
    streams_list = [Stream(i, server.port, c["session"], on_event) for i, c in enumerate(seeded["couriers"])]
    connecting = asyncio.Semaphore(200)
    partner = load.Pool(server.port, 32)
    headers = {"authorization": f"Bearer {seeded['api_key']}"}
    bodies = [load.pickup_body(z["lng"], z["lat"], i) for i, z in enumerate(seeded["zones"])]
    created = Counter[str]()
    n_sent = 0

    async def create_some(count: int) -> None:
        nonlocal n_sent
        for _ in range(count):
            n = n_sent
            n_sent += 1
            try:
                status, _ = await partner.request("POST", "/api/v1/pickups", bodies[n % len(bodies)], headers)
                created[str(status)] += 1
            except load.TransportError as exc:
                created[exc.kind] += 1

    index_of = {c["id"]: i for i, c in enumerate(seeded["couriers"])}

    async def until_all_heard(seconds: float = 30) -> set[tuple[int, int]]:
        """The (courier, event) offer deliveries of the log, once all are heard (or `seconds` passed)."""
        until = clock() + seconds
        while True:
            state = await asyncio.to_thread(load.check_database, db)
            logged = {(index_of[c], e) for c, e, _ in state["offer_events"] if c in index_of}
            if logged <= set(heard) or clock() > until:
                return logged
            await asyncio.sleep(0.1)

    try:
        opened = clock()
        assert server.proc is not None
        cpu_before_open = cpu_seconds(server.proc.pid)
        for stream in streams_list:
            stream.task = asyncio.create_task(stream.run(connecting))
        while not all(s.ready.is_set() for s in streams_list):
            broken = [s for s in streams_list if s.error is not None]
            if broken:
                raise RuntimeError(f"{len(broken)} streams failed, e.g. {broken[0].error!r}")
            await asyncio.sleep(0.05)
        open_s = clock() - opened
        open_cpu = cpu_seconds(server.proc.pid) - cpu_before_open
        await create_some(creates)  # every stream now has an id to resume from
        await until_all_heard()
        assert server.proc is not None
        rss_before = rss_mib(server.proc.pid)
        load_before = os.getloadavg()

        started = clock()
        cpu_at_serving = 0.0
        during: asyncio.Task[None] | None = None
        if restart == "hup":
            old_workers = worker_pids(server.proc.pid)
            server.proc.send_signal(signal.SIGHUP)
            during = asyncio.create_task(create_some(creates))  # the port stays open throughout
            up_s = None
            while alive(old_workers):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            exited_s = clock() - started  # the last old worker gone: every stream is on a new one or coming
        else:
            server.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.proc.wait, 60)
            exited_s = clock() - started
            if code not in (0, -signal.SIGTERM):  # uvicorn ends by re-raising the signal it handled
                raise RuntimeError(f"the old server exited with {code}:\n{server.log()[-3000:]}")
            await asyncio.to_thread(start_again, server, db.env(**env))
            up_s = clock() - started
            assert server.proc is not None
            cpu_at_serving = cpu_seconds(server.proc.pid)
            during = asyncio.create_task(create_some(creates))  # while the streams come back
        back_until = clock() + 120
        while not all(s.connected for s in streams_list) and clock() < back_until:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        back_s = clock() - started
        assert server.proc is not None
        back_cpu = cpu_seconds(server.proc.pid) - cpu_at_serving if restart == "term" else None
        not_back = sum(1 for s in streams_list if not s.connected)
        await during
        # Then the event-log check: every offer delivery of the log heard once (late is not lost).
        logged = await until_all_heard()
        await asyncio.sleep(0.3)  # duplicates, if any, arrive too
        rss_after = rss_mib(server.proc.pid)
    finally:
        for stream in streams_list:
            if stream.task is not None:
                stream.task.cancel()
        await asyncio.gather(*(s.task for s in streams_list if s.task is not None), return_exceptions=True)
        partner.close()
        server.stop()
    log_text = server.log()
    return {
        "restart": restart,
        "workers": workers if restart == "hup" else 1,
        "streams": streams,
        "open_seconds": open_s,
        # Server CPU per stream: steadier than seconds on a shared machine. Resuming includes the
        # creates made meanwhile and their offers (a few ms in all).
        "open_cpu_ms_per_stream": open_cpu / streams * 1000,
        "resume_cpu_ms_per_stream": None if back_cpu is None else back_cpu / streams * 1000,
        "rss_mib_with_streams": rss_before,
        "rss_mib_after": rss_after,
        "old_exited_seconds": exited_s,
        "new_serving_seconds": up_s,
        "all_streams_back_seconds": back_s,
        "streams_not_back": not_back,
        "reconnects": sum(s.reconnects for s in streams_list),
        "streams_cut": sum(s.cut for s in streams_list),
        "creates": dict(created),
        "offer_deliveries_in_log": len(logged),
        "heard": len(set(heard) & logged),
        "lost": len(logged - set(heard)),
        "duplicated": sum(n - 1 for n in heard.values() if n > 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "server_log_errors": sum(
            1 for line in log_text.splitlines() if line.startswith(("ERROR", "Traceback", "CRITICAL"))
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--zones", type=int, default=50)
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server (admin URL, as for tests)")
    parser.add_argument("--restart", choices=["term", "hup"], default="term")
    parser.add_argument("--workers", type=int, default=2, help="with --restart hup")
    parser.add_argument("--creates", type=int, default=20, help="pickups created before and after")
    parser.add_argument("--retry-ms", type=int, default=2000, help="the clients' reconnection delay")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE", help="more env")
    parser.add_argument("--keep-log", metavar="PATH", help="copy the server's log here")
    args = parser.parse_args()
    if args.restart == "hup" and not args.postgres:
        parser.error("--restart hup needs --postgres (several workers)")
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-restart-"))
    db = Database(tmp, args.postgres, prefix="lanshou_restart")
    try:
        result = asyncio.run(
            restart_run(
                db,
                streams=args.streams,
                zones=args.zones,
                restart=args.restart,
                workers=args.workers,
                creates=args.creates,
                retry_ms=args.retry_ms,
                server_env=args.server_env,
            )
        )
        if args.keep_log:
            for log in tmp.glob("server-*.log"):
                shutil.copy(log, args.keep_log)
    finally:
        db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    fmt = lambda v: "—" if v is None else f"{v:.2f} s"  # noqa: E731
    print(
        f"restart ({result['restart']}, {result['workers']} process(es)) with {result['streams']:,} streams "
        f"on {'postgresql' if args.postgres else 'sqlite'}; {os.cpu_count()} CPUs, load average "
        f"{result['load_average_before'][0]:.2f} before, {result['load_average_after'][0]:.2f} after"
    )
    print(
        f"  streams opened in {result['open_seconds']:.2f} s ({result['open_cpu_ms_per_stream']:.2f} ms of "
        f"server CPU each); server RSS {result['rss_mib_with_streams']:.0f} MiB"
    )
    print(
        f"  old server{'s' if args.restart == 'hup' else ''} gone after    {fmt(result['old_exited_seconds'])}"
    )
    print(f"  new server serving after  {fmt(result['new_serving_seconds'])}")
    print(
        f"  every stream back after   {fmt(result['all_streams_back_seconds'])} "
        f"({result['streams_not_back']} not back; {result['streams_cut']:,} streams cut; "
        f"reconnect delay {args.retry_ms} ms)"
    )
    if result["resume_cpu_ms_per_stream"] is not None:
        print(f"  resuming cost the new server {result['resume_cpu_ms_per_stream']:.2f} ms of CPU per stream")
    print(
        f"  offers: {result['offer_deliveries_in_log']:,} deliveries in the log, {result['heard']:,} heard, "
        f"{result['lost']} lost, {result['duplicated']} duplicated; creates {result['creates']}; "
        f"server log errors {result['server_log_errors']}"
    )


if __name__ == "__main__":
    main()
