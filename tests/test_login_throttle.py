"""Failed sign-ins are limited per username and per client address, in every process at once.

Two `lanshou serve` processes share one database with small limits (3 failures per username, 8 per
address, in a 10-minute window). Clients act as different addresses with X-Forwarded-For, which uvicorn
honours from 127.0.0.1. Each test uses its own demo users and addresses, so the counters do not meet.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from server.auth import passwords
from tests.conftest import Database, ServerProcess, demo_database

PER_USER = 3
PER_ADDRESS = 8
_address = itertools.count(1)


def new_address() -> str:
    return f"198.51.100.{next(_address)}"


@pytest.fixture(scope="module")
def throttled_db() -> Iterator[Database]:
    with demo_database("lanshou-throttle-") as (database, _):
        yield database


@pytest.fixture(scope="module")
def two_servers(throttled_db: Database) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    limits = {
        "LANSHOU_LOGIN_FAILURES_PER_USER": str(PER_USER),
        "LANSHOU_LOGIN_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
        "LANSHOU_LOGIN_WINDOW_S": "600",
    }
    first = ServerProcess(throttled_db, **limits).start()
    second = ServerProcess(throttled_db, **limits).start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
async def clients(two_servers: tuple[ServerProcess, ServerProcess]) -> AsyncIterator[list[httpx.AsyncClient]]:
    pair = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in two_servers]
    yield pair
    for client in pair:
        await client.aclose()


async def json_login(client: httpx.AsyncClient, username: str, password: str, address: str) -> httpx.Response:
    return await client.post(
        "/auth/login",
        json={"username": username, "password": password},
        headers={"x-forwarded-for": address},
    )


def assert_rate_limited(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == "rate_limited" and body["message"], body
    retry_after = int(r.headers["retry-after"])
    assert 0 < retry_after <= 600
    assert body["retry_after"] == retry_after
    assert "lanshou_session" not in r.headers.get("set-cookie", "")
    return retry_after


async def test_a_username_is_refused_after_its_failures_even_with_the_right_password(
    clients: list[httpx.AsyncClient],
) -> None:
    a, b = clients
    # Each guess from a different address and through either process: the limit is the username's.
    for i in range(PER_USER):
        r = await json_login((a, b)[i % 2], "courier01", f"guess-{i}", new_address())
        assert r.status_code == 401, r.text
    for client in (a, b):
        # Refused without checking: the right password gets the same 429 (no hash was spent on it).
        assert_rate_limited(await json_login(client, "courier01", "demo", new_address()))
    # Other users are not affected.
    assert (await json_login(a, "courier02", "demo", new_address())).status_code == 200


async def test_an_address_is_refused_after_its_failures_across_usernames(
    clients: list[httpx.AsyncClient],
) -> None:
    a, b = clients
    sprayer = new_address()
    # One guess each at many usernames (never the per-username limit): the address's limit stops it.
    for i in range(PER_ADDRESS):
        r = await json_login((a, b)[i % 2], f"nobody-{i}", "guess", sprayer)
        assert r.status_code == 401, r.text
    assert_rate_limited(await json_login(a, "courier03", "demo", sprayer))
    assert_rate_limited(await json_login(b, "courier03", "demo", sprayer))
    # The same user from another address signs in.
    assert (await json_login(b, "courier03", "demo", new_address())).status_code == 200


async def test_ipv6_clients_are_counted_by_their_64_block(clients: list[httpx.AsyncClient]) -> None:
    a, b = clients
    # One machine on IPv6 usually holds a whole /64: a fresh address per guess must not be a fresh limit.
    for i in range(PER_ADDRESS):
        r = await json_login((a, b)[i % 2], f"ghost-{i}", "guess", f"2001:db8:0:7::{i + 1:x}")
        assert r.status_code == 401, r.text
    assert_rate_limited(await json_login(a, "courier10", "demo", "2001:db8:0:7:ffff::1"))
    assert (await json_login(b, "courier10", "demo", "2001:db8:0:8::1")).status_code == 200


async def test_a_successful_sign_in_clears_the_usernames_failures(clients: list[httpx.AsyncClient]) -> None:
    a, b = clients
    for i in range(PER_USER - 1):
        assert (await json_login(a, "courier04", f"typo-{i}", new_address())).status_code == 401
    assert (await json_login(b, "courier04", "demo", new_address())).status_code == 200
    # Without the clear, the first of these would be the fourth failure in the window: 429.
    for i in range(PER_USER - 1):
        assert (await json_login(a, "courier04", f"typo-{i}", new_address())).status_code == 401
    assert (await json_login(b, "courier04", "demo", new_address())).status_code == 200


async def test_a_concurrent_burst_gets_exactly_the_limit_through_across_processes(
    clients: list[httpx.AsyncClient],
) -> None:
    a, b = clients
    attempts = [json_login((a, b)[i % 2], "courier05", f"burst-{i}", new_address()) for i in range(12)]
    statuses = [r.status_code for r in await asyncio.gather(*attempts)]
    # Each attempt is counted before its password is checked: no burst outruns the count.
    assert sorted(statuses) == [401] * PER_USER + [429] * (12 - PER_USER), statuses
    assert_rate_limited(await json_login(a, "courier05", "demo", new_address()))


async def test_the_form_sign_in_shows_the_page_with_429_in_the_users_language(
    clients: list[httpx.AsyncClient],
) -> None:
    a, _ = clients
    for i in range(PER_USER):
        r = await a.post(
            "/auth/login",
            data={"username": "courier06", "password": f"guess-{i}"},
            headers={"x-forwarded-for": new_address()},
        )
        assert r.status_code == 401
    r = await a.post(
        "/auth/login",
        data={"username": "courier06", "password": "demo"},
        headers={"x-forwarded-for": new_address()},
    )
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("text/html")
    assert 0 < int(r.headers["retry-after"]) <= 600
    assert "登录失败次数过多，请 10 分钟后再试" in r.text
    assert 'value="courier06"' in r.text
    r = await a.post(
        "/auth/login?lang=en",
        data={"username": "courier06", "password": "demo"},
        headers={"x-forwarded-for": new_address()},
    )
    assert r.status_code == 429
    assert "Too many failed sign-ins. Try again in 10 min." in r.text


async def test_the_limit_lifts_by_itself_when_the_window_ends(throttled_db: Database) -> None:
    server = ServerProcess(
        # 5 s: two argon2 checks on a loaded machine must fit inside the window for the third to be refused.
        throttled_db,
        LANSHOU_LOGIN_FAILURES_PER_USER="2",
        LANSHOU_LOGIN_WINDOW_S="5",
    ).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            for i in range(2):
                assert (await json_login(client, "courier07", f"x{i}", new_address())).status_code == 401
            r = await json_login(client, "courier07", "demo", new_address())
            assert r.status_code == 429
            await asyncio.sleep(int(r.headers["retry-after"]) + 0.2)
            assert (await json_login(client, "courier07", "demo", new_address())).status_code == 200
    finally:
        server.stop()


async def test_no_more_than_hash_slots_password_checks_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A login flood must not take every worker thread: checks beyond the slots wait their turn.
    running = peak = 0
    lock = threading.Lock()

    def slow_check(password_hash: str, password: str) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return False

    monkeypatch.setattr(passwords, "_verify", slow_check)
    checks = [passwords.verify_password("$argon2id$x", "guess") for _ in range(passwords.HASH_SLOTS * 4)]
    assert not any(await asyncio.gather(*checks))
    assert peak == passwords.HASH_SLOTS
