"""A restart with courier streams open (tests/bench/bench_restart.py, small): every stream is ended
cleanly and comes back on the new server with Last-Event-ID, hearing the offers made while it was away,
none lost and none twice (checked against the event log by event id).

On SQLite: SIGTERM, the old process exits at once, a new one starts on the port. On PostgreSQL: SIGHUP
to `lanshou serve --workers 2`, which replaces its workers one at a time while creates go on."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.bench_restart import restart_run
from tests.conftest import PG_ADMIN_URL, Database

STREAMS, CREATES = 200, 6


@pytest.fixture
def restart_db() -> Iterator[Database]:
    tmp = Path(tempfile.mkdtemp(prefix="lanshou-restart-"))
    database = Database(tmp, PG_ADMIN_URL or None, prefix="lanshou_restart")
    try:
        yield database
    finally:
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


async def test_a_restart_brings_every_stream_back_with_nothing_lost_or_repeated(restart_db: Database) -> None:
    rolling = bool(PG_ADMIN_URL)
    result = await restart_run(
        restart_db,
        streams=STREAMS,
        zones=4,
        creates=CREATES,
        retry_ms=200,
        restart="hup" if rolling else "term",
    )

    assert result["creates"] == {"201": 2 * CREATES}, result  # during a rolling restart too
    # Every stream was cut (ended by its server, so it reconnects) and is connected to a new process.
    if rolling:  # some reconnect to the worker not yet replaced, and are cut again
        assert result["streams_cut"] >= STREAMS, result
    else:
        assert result["streams_cut"] == STREAMS, result
        # Well inside uvicorn's 3 s graceful timeout, which a stream left open would have waited out.
        assert result["old_exited_seconds"] < 2.5, result
    assert result["streams_not_back"] == 0, result
    # Half the offers were made while streams were away or moving: heard from the log on resuming.
    assert result["offer_deliveries_in_log"] == 2 * CREATES * STREAMS // 4, result
    assert result["lost"] == result["duplicated"] == 0, result
    assert result["server_log_errors"] == 0, result
