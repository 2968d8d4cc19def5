"""Rotating or revoking a partner's key takes effect at once in every server process.

Two `lanshou serve` processes share one database; each is asked first, so that a process that kept
keys in memory would have the old key there when it changes.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import (
    Database,
    Personas,
    ServerProcess,
    demo_database,
    login_couriers,
    make_zone,
    pickup_body,
)
from tests.test_webhooks import Receiver, wait_for


def api_key_in(cli_output: str) -> str:
    match = re.search(r"(lsk_[A-Za-z0-9_\-]+)", cli_output)
    assert match, cli_output
    return match.group(1)


@pytest.fixture(scope="module")
def keys_db() -> Iterator[tuple[Database, dict[str, str]]]:
    with demo_database("lanshou-keys-") as (database, api_key):
        yield database, {"api_key": api_key}


@pytest.fixture(scope="module")
def two_servers(keys_db: tuple[Database, dict[str, str]]) -> Iterator[list[ServerProcess]]:
    database, _ = keys_db
    env = {"LANSHOU_WEBHOOK_INTERVAL_MS": "100", "LANSHOU_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    servers = [ServerProcess(database, **env).start(), ServerProcess(database, **env).start()]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
async def people(
    two_servers: list[ServerProcess], keys_db: tuple[Database, dict[str, str]]
) -> AsyncIterator[Personas]:
    personas = Personas(two_servers[0], keys_db[1]["api_key"])
    yield personas
    await personas.close()


async def status_on_each(servers: list[ServerProcess], key: str) -> list[int]:
    async def status(server: ServerProcess) -> int:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            r = await client.get("/api/v1/pickups", headers={"authorization": f"Bearer {key}"})
            return r.status_code

    return [await status(s) for s in servers]


async def test_a_rotated_key_is_refused_at_once_by_every_process(
    two_servers: list[ServerProcess], keys_db: tuple[Database, dict[str, str]]
) -> None:
    db, _ = keys_db
    code = f"rotate-{uuid.uuid4().hex[:6]}"
    old_key = api_key_in(db.cli("partner", "create", "--code", code))
    assert await status_on_each(two_servers, old_key) == [200, 200]
    new_key = api_key_in(db.cli("partner", "create", "--code", code))
    assert await status_on_each(two_servers, old_key) == [401, 401]
    assert await status_on_each(two_servers, new_key) == [200, 200]


async def test_a_revoked_key_is_refused_at_once_and_its_webhooks_stop(
    two_servers: list[ServerProcess], keys_db: tuple[Database, dict[str, str]], people: Personas
) -> None:
    db, _ = keys_db
    code = f"revoke-{uuid.uuid4().hex[:6]}"
    key = api_key_in(db.cli("partner", "create", "--code", code))
    receiver = Receiver()
    try:
        partner = people.partner(key)
        r = await partner.put("/api/v1/partner/webhook", json={"url": receiver.url})
        assert r.status_code == 200, r.text
        zone = await make_zone(people, couriers=1)
        (courier,) = await login_couriers(people, zone)
        r = await partner.post("/api/v1/pickups", json=pickup_body(zone, partner_order_no="REVOKE-1"))
        assert r.status_code == 201, r.text
        pickup_id = r.json()["id"]
        await wait_for(lambda: any(e["type"] == "pickup.offered" for e in receiver.delivered()))
        assert await status_on_each(two_servers, key) == [200, 200]

        out = db.cli("partner", "revoke", "--code", code)
        assert "revoked" in out
        assert await status_on_each(two_servers, key) == [401, 401]

        # The pickup goes on; its partner hears nothing more.
        r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
        assert r.status_code == 200, r.text
        delivered_before = len(receiver.calls)
        await asyncio.sleep(1.5)  # fifteen webhook rounds in each process
        assert len(receiver.calls) == delivered_before
        assert not any(e["type"] == "pickup.accepted" for e in receiver.delivered())
    finally:
        receiver.close()


async def test_a_revoked_partner_gets_a_working_key_from_partner_create(
    two_servers: list[ServerProcess], keys_db: tuple[Database, dict[str, str]]
) -> None:
    db, _ = keys_db
    code = f"again-{uuid.uuid4().hex[:6]}"
    revoked_key = api_key_in(db.cli("partner", "create", "--code", code))
    db.cli("partner", "revoke", "--code", code)
    new_key = api_key_in(db.cli("partner", "create", "--code", code))
    assert await status_on_each(two_servers, new_key) == [200, 200]
    assert await status_on_each(two_servers, revoked_key) == [401, 401]


def test_revoking_an_unknown_partner_fails_and_says_so(keys_db: tuple[Database, dict[str, str]]) -> None:
    db, _ = keys_db
    with pytest.raises(RuntimeError, match="no partner 'no-such-partner'"):
        db.cli("partner", "revoke", "--code", "no-such-partner")
