"""Rate limits per partner API key: headers on every answer, 429 with Retry-After past the limit, one
count shared by every process through PostgreSQL or Redis."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import ON_POSTGRES, Api, Database, ServerProcess
from tests.test_partner_keys import api_key_in

# A day-long window: the count cannot roll over in the middle of a test.
LIMIT = {"LANSHOU_API_RATE_LIMIT": "5", "LANSHOU_API_RATE_WINDOW_S": "86400"}


def redis_running() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@contextmanager
def servers(db: Database, count: int, **env: str) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for _ in range(count):
            started.append(ServerProcess(db, **LIMIT, **env).start())
        yield started
    finally:
        for server in started:
            server.stop()


def new_partner_key(db: Database) -> str:
    """A partner of its own, so no other test's requests count against its limit."""
    return api_key_in(db.cli("partner", "create", "--code", f"rl{uuid.uuid4().hex[:8]}"))


async def test_every_partner_answer_says_where_its_limit_stands_and_the_excess_is_429(db: Database) -> None:
    with servers(db, 1) as (server,):
        api = Api(server.url, {"authorization": f"Bearer {new_partner_key(db)}"})
        try:
            answers = [await api.get("/api/v1/pickups") for _ in range(5)]
            answers.append(await api.get("/api/v1/pickups/999999999"))  # a 404 counts and says so too
        finally:
            await api.close()
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["4", "3", "2", "1", "0", "0"]
    assert all(r.headers["ratelimit-limit"] == "5" for r in answers)
    reset = int(answers[-1].headers["ratelimit-reset"])
    assert 0 < reset <= 86400
    assert answers[-1].headers["retry-after"] == str(reset)
    assert answers[-1].json()["code"] == "rate_limited"
    assert "retry-after" not in answers[0].headers


async def shared_limit_holds(first: ServerProcess, second: ServerProcess, api_key: str) -> None:
    headers = {"authorization": f"Bearer {api_key}"}
    a, b = Api(first.url, headers), Api(second.url, headers)
    try:
        statuses = []
        for i in range(6):
            statuses.append((await (a if i % 2 else b).get("/api/v1/pickups")).status_code)
        assert statuses == [200] * 5 + [429]
        assert (await a.get("/api/v1/pickups")).status_code == 429
        assert (await b.get("/api/v1/pickups")).status_code == 429
    finally:
        await a.close()
        await b.close()


@pytest.mark.skipif(not ON_POSTGRES, reason="on SQLite without Redis the count is the process's own")
async def test_two_processes_share_one_limit_through_postgresql(db: Database) -> None:
    with servers(db, 2) as (first, second):
        await shared_limit_holds(first, second, new_partner_key(db))


@pytest.mark.skipif(not redis_running(), reason="no Redis on 127.0.0.1:6379")
async def test_two_processes_share_one_limit_through_redis(db: Database) -> None:
    redis = {
        "LANSHOU_CHANNELS_URL": "redis://127.0.0.1:6379/0",
        "LANSHOU_CHANNELS_PREFIX": f"lanshou-test-{uuid.uuid4().hex[:8]}",
    }
    with servers(db, 2, **redis) as (first, second):
        await shared_limit_holds(first, second, new_partner_key(db))
