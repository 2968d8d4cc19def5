"""The load harness (tests/bench/load.py) runs, briefly and gently, as a user would run it, and what
must hold on any machine holds: every create answered and offered, every offer heard exactly once by its
courier (checked against the database's offers), every pickup accepted once and collected, no server
error. No timing is asserted: the machine is shared; the figures only have to be there. And the end of an
overloaded run blames the server for nothing the harness did itself."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.load import Figures, Pool, courier_action, give_up_courier_actions
from tests.conftest import PG_ADMIN_URL, ROOT, ServerProcess, migrated_database


def test_the_load_harness_loses_nothing_under_a_modest_load(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    command = [
        sys.executable,
        "-m",
        "tests.bench.load",
        "--rate", "20", "--seconds", "20", "--couriers", "20", "--zones", "4",
        "--ceiling-seconds", "1", "--json", str(out),
    ]  # fmt: skip
    if PG_ADMIN_URL:
        command += ["--postgres", PG_ADMIN_URL]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    report = run.stdout + run.stderr

    assert result["errors"] == {}, report  # no 5xx, no transport error, no unexpected refusal
    creates = result["creates"]
    assert creates["due"] == 400
    assert creates["answered"] == creates["created"] == creates["offered"] == 400, report

    offers = result["offers"]
    assert offers["in_database"] == 400 * 5, report  # grab: each of the zone's five couriers
    assert offers["heard"] == offers["in_database"], report
    assert offers["lost"] == offers["duplicated"] == offers["unexpected"] == 0, report
    assert offers["pickups_not_heard"] == 0, report
    assert offers["stream_reconnects"] == 0, report  # no stream cut off for falling behind

    couriers = result["couriers"]
    assert couriers["accepted"] == couriers["collected"] == 400, report
    assert couriers["accepted_twice"] == 0, report
    # Two couriers race for each pickup: every losing accept is a conflict (409), never an error.
    assert couriers["accept_attempts"] == 800, report
    assert couriers["accept_conflicts"] == 400, report
    assert result["pickup_statuses"] == {"collected": 400}, report

    for figure in ("http_ms", "create_to_event_ms", "create_to_last_event_ms"):
        assert result[figure]["n"] == 400 and result[figure]["p50"] is not None, figure
    assert result["server"]["cpu_ms_per_create"] > 0
    assert result["server"]["rss_mib_peak"] > 0
    assert result["ceiling"]["per_second"] > 0 and result["ceiling"]["bad"] == 0
    assert result["server_log_errors"] == 0, report
    assert "creates/s" in run.stdout and "bare-endpoint ceiling" in run.stdout  # the table


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with migrated_database("lanshou-load-end-") as database:
        server = ServerProcess(database).start()
        yield server
        server.stop()


async def test_requests_given_up_at_the_end_are_unanswered_not_transport_errors(
    server: ServerProcess,
) -> None:
    # An overloaded run ends with courier actions in flight. The harness closed its connections under
    # them and each then failed with IncompleteReadError, reported as "IncompleteReadError on a
    # kept-alive connection" as if the server had cut them off: 256 of them, one per pooled connection.
    assert server.proc is not None
    figures = Figures()
    pool = Pool(server.port, 1)
    server.proc.send_signal(signal.SIGSTOP)  # overloaded: no answer comes in time
    try:
        for pickup_id in (1, 2):  # one sent, one waiting for the pool's only connection
            task = asyncio.create_task(
                courier_action(figures, pool, "no-session", "accept", pickup_id, b"{}")
            )
            figures.actions.add(task)
            task.add_done_callback(figures.actions.discard)
        for _ in range(500):  # the first written, within 5 s
            if pool.sent:
                break
            await asyncio.sleep(0.01)
        await give_up_courier_actions(figures, [pool])
        pool.close()  # as the run does next
        await asyncio.sleep(0.2)
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert figures.errors == {
        "courier action unanswered at the end": 2,
        "courier action unanswered at the end, sent to the server": 1,
    }
    assert not figures.actions and not figures.statuses
