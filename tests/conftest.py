"""Test harness: a fresh database per run (SQLite file, or a uniquely named PostgreSQL database),
migrated and seeded through the real CLI, and real `lanshou serve` processes reached over HTTP. Tests
that need a database of their own get a copy of the run's template (TEMPLATES), not a new migration.

LANSHOU_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test runs the suite on PostgreSQL: the
URL names a server and a database to connect to for creating (and finally dropping) the run's own.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("LANSHOU_TEST_DATABASE_URL", "").strip()
ON_POSTGRES = PG_ADMIN_URL.startswith("postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_url_for(admin_url: str, database: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + database))


async def _pg_admin(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Database:
    """A database made for this test run, with its URL and the env a server process needs."""

    def __init__(
        self, tmp: Path, pg_admin_url: str | None = PG_ADMIN_URL or None, prefix: str = "lanshou_test"
    ) -> None:
        """On PostgreSQL when given a server to create the database on (by default the test run's)."""
        self.tmp = tmp
        self.pg_admin_url = pg_admin_url
        self.name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.path = tmp / "lanshou.sqlite3"
        if pg_admin_url:
            asyncio.run(_pg_admin(pg_admin_url, f'CREATE DATABASE "{self.name}"'))
            self.url = _pg_url_for(pg_admin_url, self.name)
        else:
            self.url = f"sqlite:///{self.path}"

    @classmethod
    def copy_of(cls, template: Database, tmp: Path) -> Database:
        """A new database holding what `template` holds (on its server, when on PostgreSQL): the file
        copied through SQLite's backup API (which reads the WAL the CLI leaves behind), or
        CREATE DATABASE … TEMPLATE. Nothing may be connected to the template meanwhile."""
        database = cls.__new__(cls)
        database.tmp = tmp
        database.pg_admin_url = template.pg_admin_url
        database.name = f"lanshou_test_{uuid.uuid4().hex[:12]}"
        database.path = tmp / "lanshou.sqlite3"
        if template.pg_admin_url:
            sql = f'CREATE DATABASE "{database.name}" TEMPLATE "{template.name}"'
            asyncio.run(_pg_admin(template.pg_admin_url, sql))
            database.url = _pg_url_for(template.pg_admin_url, database.name)
        else:
            with (
                closing(sqlite3.connect(template.path)) as src,
                closing(sqlite3.connect(database.path)) as dst,
            ):
                src.backup(dst)
            database.url = f"sqlite:///{database.path}"
        return database

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANSHOU_")}
        env.update(
            LANSHOU_DATABASE_URL=self.url,
            LANSHOU_DATA_DIR=str(self.tmp),
            LANSHOU_SECRET_KEY="test-secret-key-0123456789abcdefghijklmnop",
            LANSHOU_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
            PICCOLO_CONF="server.piccolo_conf",
        )
        env.update(extra)
        return env

    def cli(self, *args: str, **extra_env: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "server", *args],
            cwd=ROOT,
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"lanshou {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def drop(self) -> None:
        if self.pg_admin_url:
            asyncio.run(_pg_admin(self.pg_admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


def wait_until_serving(proc: subprocess.Popen[bytes], url: str, log_path: Path, seconds: float = 30) -> None:
    """Until GET /health says push_ready; RuntimeError with the server's log if it exits or times out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited at start:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/health", timeout=1).json().get("push_ready"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")


def stop_process(proc: subprocess.Popen[bytes] | None, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL, to simulate a crash) and wait; SIGKILL if it will not go within 10 s."""
    if proc is None or proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class ServerProcess:
    """`lanshou serve` in a subprocess on a free loopback port (`args`: more command-line arguments)."""

    def __init__(self, db: Database, *args: str, **env: str) -> None:
        self.db = db
        self.args = args
        self.extra_env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = db.tmp / f"server-{self.port}.log"

    def start(self) -> ServerProcess:
        with self.log_path.open("ab") as log:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--port", str(self.port), *self.args],
                cwd=ROOT,
                env=self.db.env(**self.extra_env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_serving(self.proc, self.url, self.log_path)
        return self

    def stop(self, kill: bool = False) -> None:
        stop_process(self.proc, kill=kill)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class _Templates:
    """The run's two template databases, each made once through the real CLI (`lanshou migrate`, then
    `lanshou demo` on a copy of that) and copied for every test that needs a database of its own: a copy
    costs milliseconds where migrating and seeding cost seconds (argon2 hashes for the demo's people).
    Each copy is a database of its own as before; only the work of filling it is shared."""

    def __init__(self) -> None:
        self._migrated: Database | None = None
        self._demo: tuple[Database, str] | None = None
        self._tmp: list[Path] = []

    def _folder(self) -> Path:
        tmp = Path(tempfile.mkdtemp(prefix="lanshou-template-"))
        self._tmp.append(tmp)
        return tmp

    def migrated(self) -> Database:
        if self._migrated is None:
            database = Database(self._folder(), prefix="lanshou_template")
            database.cli("migrate")
            self._migrated = database
        return self._migrated

    def demo(self) -> tuple[Database, str]:
        """The demo template and the partner API key `lanshou demo` printed for it (so for every copy)."""
        if self._demo is None:
            database = Database.copy_of(self.migrated(), self._folder())
            self._demo = database, seed_demo(database)["api_key"]
        return self._demo

    def drop(self) -> None:
        for database in (self._migrated, self._demo[0] if self._demo else None):
            if database is not None:
                database.drop()
        for tmp in self._tmp:
            shutil.rmtree(tmp, ignore_errors=True)


TEMPLATES = _Templates()


def pytest_sessionfinish(session: pytest.Session) -> None:
    TEMPLATES.drop()


@contextmanager
def _own_folder(tmp_prefix: str, make: Any) -> Iterator[Database]:
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix))
    database: Database | None = None
    try:
        database = make(tmp)
        yield database
    finally:
        if database is not None:
            database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def migrated_database(tmp_prefix: str, through_cli: bool = False) -> Iterator[Database]:
    """A database of its own in a temporary folder, migrated (a copy of the run's template migrated
    through the CLI, or — `through_cli` — migrated through the CLI itself), dropped afterwards."""

    def make(tmp: Path) -> Database:
        if not through_cli:
            return Database.copy_of(TEMPLATES.migrated(), tmp)
        database = Database(tmp)
        database.cli("migrate")
        return database

    with _own_folder(tmp_prefix, make) as database:
        yield database


@contextmanager
def demo_database(tmp_prefix: str) -> Iterator[tuple[Database, str]]:
    """A migrated database of its own with the demo city (a copy of the run's demo template); yields it
    and the partner's API key."""
    template, api_key = TEMPLATES.demo()
    with _own_folder(tmp_prefix, lambda tmp: Database.copy_of(template, tmp)) as database:
        yield database, api_key


@contextmanager
def demo_server(tmp_prefix: str, **env: str) -> Iterator[tuple[Database, ServerProcess, str]]:
    """A server of its own on a demo database of its own, for tests whose state must not be shared
    (or that must not see others'): yields the database, the server and the partner's API key."""
    with demo_database(tmp_prefix) as (database, api_key):
        server = ServerProcess(database, **env).start()
        try:
            yield database, server, api_key
        finally:
            server.stop()


@pytest.fixture(scope="session")
def _demo_db() -> Iterator[tuple[Database, str]]:
    with demo_database("lanshou-test-") as database_and_key:
        yield database_and_key


@pytest.fixture(scope="session")
def db(_demo_db: tuple[Database, str]) -> Database:
    """The session's shared database (migrated, demo seeded), which the session's server serves."""
    return _demo_db[0]


def seed_demo(database: Database) -> dict[str, str]:
    """Seeds the demo city; returns the partner API key it printed."""
    out = database.cli("demo")
    match = re.search(r"(lsk_[A-Za-z0-9_\-]+)", out)
    assert match, out
    return {"api_key": match.group(1)}


@pytest.fixture(scope="session")
def demo(_demo_db: tuple[Database, str]) -> dict[str, str]:
    return {"api_key": _demo_db[1]}


@pytest.fixture
def fresh_db() -> Iterator[tuple[Database, dict[str, str]]]:
    """A database of its own (migrated, demo seeded) for tests that start and stop their own servers,
    so that no other server's scheduler touches its timers."""
    with demo_database("lanshou-fresh-") as (database, api_key):
        yield database, {"api_key": api_key}


@pytest.fixture(scope="session")
def server(db: Database, demo: dict[str, str]) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        db,
        LANSHOU_SCHEDULER_INTERVAL_MS="50",
        LANSHOU_WEBHOOK_INTERVAL_MS="100",
        LANSHOU_WEBHOOK_ALLOWED_HOSTS="127.0.0.1,localhost",  # test receivers listen on loopback
        LANSHOU_BOOKING_PER_ADDRESS="100000",  # every test books from 127.0.0.1; one test checks the limit
        LANSHOU_IDEMPOTENCY_WAIT_S="3",  # a key held by a dead request answers 409 sooner than 10 s
    ).start()
    yield proc
    proc.stop()


# -- HTTP helpers ------------------------------------------------------------------------------------


class Api:
    """An httpx client for one persona (partner key or signed-in user) against one server."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers or {}, timeout=30)

    async def login(self, username: str, password: str = "demo") -> dict[str, Any]:
        r = await self.client.post("/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()

    async def close(self) -> None:
        await self.client.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Personas:
    """Makes clients and closes them all at the end of the test."""

    def __init__(self, server: ServerProcess, api_key: str) -> None:
        self.server = server
        self.api_key = api_key
        self._clients: list[Api] = []
        self._admin: Api | None = None

    def partner(self, api_key: str | None = None) -> Api:
        api = Api(self.server.url, {"authorization": f"Bearer {api_key or self.api_key}"})
        self._clients.append(api)
        return api

    def anonymous(self) -> Api:
        api = Api(self.server.url)
        self._clients.append(api)
        return api

    async def user(self, username: str, password: str = "demo") -> Api:
        api = self.anonymous()
        await api.login(username, password)
        return api

    async def admin(self) -> Api:
        """The admin, signed in once for this test's helpers (make_station, make_zone): each sign-in
        is an argon2 check, and a test making a zone signed in twice for each."""
        if self._admin is None:
            self._admin = await self.user("admin")
        return self._admin

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._clients))


@pytest.fixture
async def people(server: ServerProcess, demo: dict[str, str]) -> AsyncIterator[Personas]:
    personas = Personas(server, demo["api_key"])
    yield personas
    await personas.close()


# -- fresh zones and couriers, so tests do not share state ----------------------------------------------

_zone_counter = itertools.count()


def square(lng: float, lat: float, size: float = 0.004) -> dict[str, Any]:
    ring = [[lng, lat], [lng + size, lat], [lng + size, lat + size], [lng, lat + size], [lng, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


class TestZone(msgspec.Struct):
    code: str
    lng: float  # a point inside
    lat: float
    station: str = ""
    couriers: list[str] = []
    courier_ids: list[int] = []


async def make_station(people: Personas, parent: str = "HN-CS-TX") -> str:
    admin = await people.admin()
    code = f"ST-{uuid.uuid4().hex[:8]}"
    r = await admin.post("/api/v1/stations", json={"code": code, "name": f"测试站 {code}", "parent": parent})
    assert r.status_code == 201, r.text
    return code


async def make_zone(
    people: Personas, couriers: int = 0, station: str | None = None, **props: Any
) -> TestZone:
    """A new zone east of the demo city (one per call), in a new station of its own unless one is
    named, with `couriers` new couriers in it."""
    n = next(_zone_counter)
    tag = uuid.uuid4().hex[:6]
    lng, lat = 113.10 + (n % 40) * 0.005, 28.10 + (n // 40) * 0.005
    code = f"T{n}-{tag}"
    station = station or await make_station(people)
    admin = await people.admin()
    feature = {
        "type": "Feature",
        "geometry": square(lng, lat),
        "properties": {"code": code, "name": f"测试区 {n}", "station": station, "priority": 10, **props},
    }
    r = await admin.put("/api/v1/zones", json={"type": "FeatureCollection", "features": [feature]})
    assert r.status_code == 200, r.text
    zone = TestZone(code=code, lng=lng + 0.002, lat=lat + 0.002, station=station)
    for i in range(couriers):
        username = f"c{n}x{i}-{tag}"
        r = await admin.post(
            "/api/v1/users",
            json={
                "username": username,
                "password": "pw-" + tag,
                "role": "courier",
                "zones": [{"zone": code}],
            },
        )
        assert r.status_code == 201, r.text
        zone.couriers.append(username)
        zone.courier_ids.append(r.json()["courier_id"])
    return zone


async def login_couriers(people: Personas, zone: TestZone, on_duty: bool = True) -> list[Api]:
    """Signs in the zone's couriers (made by make_zone) and puts them on duty."""
    couriers = [await people.user(name, "pw-" + name.split("-")[-1]) for name in zone.couriers]
    if on_duty:
        for courier in couriers:
            r = await courier.post("/api/v1/courier/duty", json={"on_duty": True})
            assert r.status_code == 200, r.text
    return couriers


_waybill_serials = itertools.count(int(uuid.uuid4().int % 90_000_000) + 1_000_000)


def new_waybill() -> str:
    """A valid UPU S10 waybill number no other pickup has (a waybill binds one pickup)."""
    from server.domain.contact import s10_check_digit

    serial = f"{next(_waybill_serials) % 100_000_000:08d}"
    return f"EA{serial}{s10_check_digit(serial)}CN"


def pickup_body(zone: TestZone | None = None, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sender": {"name": "李四", "phone": "13912345678"},
        "address": {
            "province": "湖南省",
            "city": "长沙市",
            # Real names (GB/T 2260) that no demo zone lists, so only coordinates match a zone.
            "district": "望城区",
            "street": "白箬铺镇",
            "detail": "1号楼2单元",
            "datum": "wgs84",
        },
        "parcel_count": 1,
    }
    if zone is not None:
        body["address"].update(lat=zone.lat, lng=zone.lng)
    body.update(over)
    return body


# -- SSE -----------------------------------------------------------------------------------------------


class SSEEvent(msgspec.Struct):
    event: str
    id: str | None
    data: Any


class SSEStream:
    """Reads an SSE endpoint in the background; `await next_event(type)` waits for one."""

    def __init__(
        self, api: Api, path: str = "/api/v1/courier/events", last_event_id: str | None = None
    ) -> None:
        self.api = api
        self.path = path
        self.last_event_id = last_event_id
        self.events: asyncio.Queue[SSEEvent] = asyncio.Queue()
        self.seen: list[SSEEvent] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def __aenter__(self) -> SSEStream:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _read(self) -> None:
        headers = {"accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["last-event-id"] = self.last_event_id
        async with self.api.client.stream("GET", self.path, headers=headers, timeout=None) as response:
            assert response.status_code == 200, await response.aread()
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line == "":
                    if "event" in fields or "data" in fields:
                        data = fields.get("data", "")
                        event = SSEEvent(
                            event=fields.get("event", "message"),
                            id=fields.get("id"),
                            data=msgspec.json.decode(data) if data.startswith(("{", "[")) else data,
                        )
                        if event.event == "ready":
                            self.connected.set()
                        self.seen.append(event)
                        await self.events.put(event)
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = (
                    fields[name] + "\n" + value.lstrip(" ") if name in fields else value.lstrip(" ")
                )

    async def next_event(
        self, event_type: str, timeout: float = 5.0, pickup_id: int | None = None
    ) -> SSEEvent:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no {event_type} event within {timeout}s; saw {[e.event for e in self.seen]}"
                )
            event = await asyncio.wait_for(self.events.get(), remaining)
            if event.event == event_type and (pickup_id is None or event.data.get("pickup_id") == pickup_id):
                return event

    async def expect_none(self, event_type: str, within: float = 0.5) -> None:
        try:
            event = await self.next_event(event_type, timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {event_type}: {event}")
