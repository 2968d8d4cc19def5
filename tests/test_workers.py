"""`lanshou serve --workers N`: refused where several processes would be wrong, and on PostgreSQL two
workers behind one port deliver every offer exactly once to couriers connected to either of them, checked
against the event log, with /metrics adding both workers up.

The two-worker run is the load harness (tests/bench/load.py) used as a library: its seeding, its
couriers' streams and its open-loop creates, against a server this test starts itself."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bench import load
from tests.conftest import PG_ADMIN_URL, ROOT, Database, ServerProcess


def serve_workers(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "serve", "--workers", "2", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = Database.__new__(Database)
    env.tmp, env.url = tmp_path, f"sqlite:///{tmp_path / 'lanshou.sqlite3'}"
    return env.env(**extra)


def test_workers_are_refused_on_sqlite_with_a_reason(tmp_path: Path) -> None:
    # Channels configured or not: SQLite is refused first (its one writer gains nothing from more).
    run = serve_workers(base_env(tmp_path, LANSHOU_CHANNELS_URL="redis://127.0.0.1:1/0"))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--workers needs PostgreSQL" in run.stderr
    assert "Traceback" not in run.stderr


def test_workers_are_refused_with_in_process_channels(tmp_path: Path) -> None:
    # Nothing is connected to: the settings alone refuse (this URL has no server behind it).
    env = base_env(tmp_path, LANSHOU_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    run = serve_workers(env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--workers needs LANSHOU_CHANNELS_URL" in run.stderr
    assert "miss offers" in run.stderr


@pytest.mark.parametrize(
    "reuseport",
    [
        pytest.param(False, id="a plain listener"),
        # Another Lanshou's workers listen with SO_REUSEPORT, which ours would share: found all the same.
        pytest.param(True, id="another server's workers"),
    ],
)
def test_a_port_in_use_stops_the_workers_before_they_start(tmp_path: Path, reuseport: bool) -> None:
    # The parent looks for a listener and binds first: no worker is started.
    with socket.socket() as taken:
        if reuseport:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(
            tmp_path,
            LANSHOU_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
            LANSHOU_CHANNELS_URL="postgresql://nobody@127.0.0.1:1/none",
        )
        run = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 3, run.stdout + run.stderr
    assert "cannot listen on" in run.stderr and "in use" in run.stderr


def test_fewer_than_one_worker_is_refused(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--workers", "0"],
        cwd=ROOT,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "--workers must be at least 1" in run.stderr


# -- two workers on PostgreSQL ----------------------------------------------------------------------------

postgres_only = pytest.mark.skipif(not PG_ADMIN_URL, reason="several workers need PostgreSQL")

CREATES_PER_S, SECONDS, COURIERS, ZONES = 30, 3, 24, 4


@pytest.fixture
def load_db() -> Iterator[Database]:
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-workers-"))
    database = Database(tmp, PG_ADMIN_URL, prefix="lanshou_workers")
    try:
        yield database
    finally:
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def requests_counted(metrics: str, method: str, route: str) -> float:
    pattern = (
        rf'lanshou_http_requests_total\{{method="{method}",route="{re.escape(route)}",status="2xx"\}} (\S+)'
    )
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


@postgres_only
async def test_two_workers_deliver_every_offer_once_to_couriers_on_either(load_db: Database) -> None:
    args = load.parse_args(
        [
            "--rate", str(CREATES_PER_S), "--seconds", str(SECONDS), "--couriers", str(COURIERS),
            "--zones", str(ZONES), "--postgres", PG_ADMIN_URL, "--serve-workers", "2", "--channels", "db",
            "--drain", "8", "--ceiling-seconds", "0",
        ]
    )  # fmt: skip
    seeded = load.seed(load_db, args)
    server = ServerProcess(load_db, "--workers", "2", **load.server_env(args, load_db)).start()
    try:
        figures, timing, db_state = await load.drive(args, seeded, [server], load_db)  # type: ignore[list-item]
        result = load.summarise(args, figures, timing, seeded, db_state, None)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            # Each scrape is answered by one worker or the other (new connections): every one adds both up.
            scrapes = [(await client.get("/metrics", headers={"connection": "close"})).text for _ in range(4)]
    finally:
        server.stop()
    report = load.table(result)

    # The couriers' streams were spread over both workers (the kernel picks one per connection).
    streams = result["server"]["streams_by_process"]
    assert len(streams) == 2 and sum(streams) == COURIERS and min(streams) > 0, report

    due = CREATES_PER_S * SECONDS
    assert result["errors"] == {}, report
    assert result["creates"]["created"] == result["creates"]["offered"] == due, report
    # Every pickup.offered event of the log heard exactly once by every courier it names, whichever
    # worker committed it and whichever holds the courier's stream.
    log = result["offers"]["event_log"]
    assert log["offer_deliveries_in_log"] == due * COURIERS // ZONES, report  # grab: the zone's couriers
    assert log["heard"] == log["offer_deliveries_in_log"], report
    assert log["lost"] == log["duplicated"] == 0, report
    assert result["offers"]["lost"] == result["offers"]["duplicated"] == result["offers"]["unexpected"] == 0
    assert result["couriers"]["accepted_twice"] == 0, report
    assert result["couriers"]["collected"] == due, report

    for text in scrapes:
        assert requests_counted(text, "POST", "/api/v1/pickups") == due, text[:2000]
    assert "Traceback" not in server.log(), server.log()[-3000:]
