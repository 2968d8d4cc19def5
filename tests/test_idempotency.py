"""Idempotency-Key on partners' POSTs: replays answer as the first did and act once; reuse is refused."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.conftest import ON_POSTGRES, Database, Personas, pickup_body
from tests.test_partner_keys import api_key_in


async def execute(db: Database, statement: str) -> None:
    """Run one SQL statement on the test database (to move a key's clock back)."""
    if ON_POSTGRES:
        import asyncpg

        conn = await asyncpg.connect(db.url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
    else:
        import sqlite3

        with sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=10) as conn:
            conn.execute(statement)


async def fetch_state(db: Database, key: str) -> str | None:
    """The stored state of an idempotency key ("running" or "done"), None if there is no row."""
    statement = "SELECT state FROM idempotency_keys WHERE key = $1"
    if ON_POSTGRES:
        import asyncpg

        conn = await asyncpg.connect(db.url)
        try:
            return await conn.fetchval(statement, key)
        finally:
            await conn.close()
    import sqlite3

    with sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=10) as conn:
        row = conn.execute(statement.replace("$1", "?"), (key,)).fetchone()
    return row[0] if row else None


async def pickups_with_note(partner: Any, note: str) -> list[dict[str, Any]]:
    items = (await partner.get("/api/v1/pickups", params={"limit": 200})).json()["items"]
    return [p for p in items if p["note"] == note]


async def test_a_repeated_create_answers_as_the_first_and_creates_one_pickup(people: Personas) -> None:
    partner = people.partner()
    note = f"idem-{uuid.uuid4().hex}"
    headers = {"idempotency-key": str(uuid.uuid4())}
    first = await partner.post("/api/v1/pickups", json=pickup_body(note=note), headers=headers)
    again = await partner.post("/api/v1/pickups", json=pickup_body(note=note), headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert [p["id"] for p in await pickups_with_note(partner, note)] == [first.json()["id"]]


async def test_fifty_concurrent_copies_of_one_key_act_once_and_all_get_its_answer(people: Personas) -> None:
    partner = people.partner()
    note = f"idem-{uuid.uuid4().hex}"
    headers = {"idempotency-key": f"order-{uuid.uuid4().hex}"}
    answers = await asyncio.gather(
        *(partner.post("/api/v1/pickups", json=pickup_body(note=note), headers=headers) for _ in range(50))
    )
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers if r.status_code != 201]
    assert len({r.text for r in answers}) == 1
    assert sum("idempotent-replayed" in r.headers for r in answers) == 49
    assert len(await pickups_with_note(partner, note)) == 1


async def test_a_refusal_is_replayed_too(people: Personas) -> None:
    partner = people.partner()
    headers = {"idempotency-key": str(uuid.uuid4())}
    bad = pickup_body(sender={"name": "王五", "phone": "12345"})
    first = await partner.post("/api/v1/pickups", json=bad, headers=headers)
    again = await partner.post("/api/v1/pickups", json=bad, headers=headers)
    assert first.status_code == again.status_code == 422
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"


async def test_the_same_key_with_another_body_is_refused_naming_the_first_request(people: Personas) -> None:
    partner = people.partner()
    note = f"idem-{uuid.uuid4().hex}"
    headers = {"idempotency-key": str(uuid.uuid4())}
    assert (
        await partner.post("/api/v1/pickups", json=pickup_body(note=note), headers=headers)
    ).status_code == 201
    other = await partner.post("/api/v1/pickups", json=pickup_body(note=note + "x"), headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert "POST /api/v1/pickups with another body" in other.json()["message"]
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    elsewhere = await partner.post("/api/v1/pickups/batch", json={"items": [pickup_body()]}, headers=headers)
    assert elsewhere.status_code == 422 and elsewhere.json()["first_request"] == "POST /api/v1/pickups"
    assert len(await pickups_with_note(partner, note)) == 1


async def test_keys_are_per_partner(people: Personas, db: Database) -> None:
    """Another partner's identical key is its own: it acts (and sees nothing of the first)."""
    api_key = second_partner_key(db)
    note = f"idem-{uuid.uuid4().hex}"
    headers = {"idempotency-key": "shared-key-" + uuid.uuid4().hex}
    mine = await people.partner().post("/api/v1/pickups", json=pickup_body(note=note), headers=headers)
    theirs = await people.partner(api_key).post(
        "/api/v1/pickups", json=pickup_body(note=note), headers=headers
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"] and "idempotent-replayed" not in theirs.headers


def second_partner_key(db: Database) -> str:
    return api_key_in(db.cli("partner", "create", "--code", f"p{uuid.uuid4().hex[:8]}"))


async def test_malformed_keys_are_refused_before_anything_acts(people: Personas) -> None:
    partner = people.partner()
    note = f"idem-{uuid.uuid4().hex}"
    for key in ("x" * 256, "has space", "中文"):
        r = await partner.post(
            "/api/v1/pickups",
            json=pickup_body(note=note),
            headers={"idempotency-key": key.encode()},
        )
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "bad_idempotency_key"
    assert await pickups_with_note(partner, note) == []


async def test_a_key_is_forgotten_after_a_day(people: Personas, db: Database) -> None:
    partner = people.partner()
    note = f"idem-{uuid.uuid4().hex}"
    key = str(uuid.uuid4())
    first = await partner.post(
        "/api/v1/pickups", json=pickup_body(note=note), headers={"idempotency-key": key}
    )
    # 23 hours on: still the first answer.
    await execute(
        db, f"UPDATE idempotency_keys SET created_ms = created_ms - {23 * 3600_000} WHERE key = '{key}'"
    )
    again = await partner.post(
        "/api/v1/pickups", json=pickup_body(note=note), headers={"idempotency-key": key}
    )
    assert again.json()["id"] == first.json()["id"]
    # Past 24 hours: the key is new again, and acts.
    await execute(
        db, f"UPDATE idempotency_keys SET created_ms = created_ms - {2 * 3600_000} WHERE key = '{key}'"
    )
    later = await partner.post(
        "/api/v1/pickups", json=pickup_body(note=note), headers={"idempotency-key": key}
    )
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in later.headers


async def test_a_key_held_by_a_request_that_died_is_taken_over_after_its_lease(
    people: Personas, db: Database
) -> None:
    """A process that died mid-request leaves its key "running": held for the lease, then free."""
    partner = people.partner()
    key = str(uuid.uuid4())

    async def post() -> Any:
        return await partner.post("/api/v1/pickups", json=pickup_body(), headers={"idempotency-key": key})

    first = await post()
    # The answer is stored just after it is sent: wait for that, or it would overwrite what follows.
    for _ in range(200):
        if await fetch_state(db, key) == "done":
            break
        await asyncio.sleep(0.05)
    # As if the first had died before its answer was stored: running, its lease not over.
    await execute(
        db, f"UPDATE idempotency_keys SET state = 'running', lease_ms = {10**15} WHERE key = '{key}'"
    )
    busy = await post()  # waits for the first (3 s in tests), then gives up
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_key_in_use"
    assert busy.headers["retry-after"] == "1"
    await execute(db, f"UPDATE idempotency_keys SET lease_ms = 0 WHERE key = '{key}'")
    taken = await post()
    assert taken.status_code == 201 and taken.json()["id"] != first.json()["id"]


async def test_a_post_without_a_key_acts_every_time(people: Personas) -> None:
    partner = people.partner()
    note = f"idem-{uuid.uuid4().hex}"
    for _ in range(2):
        assert (await partner.post("/api/v1/pickups", json=pickup_body(note=note))).status_code == 201
    assert len(await pickups_with_note(partner, note)) == 2
