"""A courier's answers to an offer beyond accept: decline (with a reason; dispatch goes on at once),
seen (the card was on the screen), arrived (at the door); and the offer's alert timeline."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from tests.conftest import (
    ON_POSTGRES,
    Database,
    Personas,
    SSEStream,
    login_couriers,
    make_zone,
    pickup_body,
)


async def db_rows(db: Database, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows read straight from the test database (what no API shows: the offers' timeline)."""
    if ON_POSTGRES:
        import asyncpg

        for i in range(len(args)):
            sql = sql.replace("?", f"${i + 1}", 1)
        conn = await asyncpg.connect(db.url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()
    with sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


async def offers_of(db: Database, pickup_id: int) -> list[dict[str, Any]]:
    return await db_rows(
        db,
        "SELECT courier, round, outcome, offered_at, seen_at, answered_at, contacted_at "
        "FROM pickup_offers WHERE pickup = ? ORDER BY id",
        pickup_id,
    )


async def events_of(db: Database, pickup_id: int, type_: str) -> list[dict[str, Any]]:
    return await db_rows(
        db,
        "SELECT type, actor_kind, actor_id, data, at, client_at, client_action_id FROM events "
        "WHERE pickup = ? AND type = ? ORDER BY id",
        pickup_id,
        type_,
    )


async def new_pickup(people: Personas, zone: Any) -> dict[str, Any]:
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    return r.json()


def url(pickup: dict[str, Any], action: str) -> str:
    return f"/api/v1/courier/pickups/{pickup['id']}/{action}"


# -- decline ----------------------------------------------------------------------------------------------


async def test_a_decline_in_assign_mode_passes_the_offer_to_the_next_courier_at_once(
    people: Personas, db: Database
) -> None:
    zone = await make_zone(people, couriers=2, dispatch_mode="assign", offer_ttl_s=600)
    alice, bob = await login_couriers(people, zone)
    async with SSEStream(alice) as alice_stream, SSEStream(bob) as bob_stream:
        pickup = await new_pickup(people, zone)
        await alice_stream.next_event("pickup.offered", pickup_id=pickup["id"])
        body = {"reason": "too_far", "note": "过江太远", "client_action_id": "a-decline-1"}
        r = await alice.post(url(pickup, "decline"), json=body)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == pickup["id"] and r.json()["status"] == "offered"
        assert r.json()["sender"]["phone"] == "139****5678"  # still only an offer: masked
        # Bob is offered it now, not when Alice's ten minutes are up.
        await bob_stream.next_event("pickup.offered", timeout=5, pickup_id=pickup["id"])
        # Alice's stream says so too (her app stops ringing for it).
        declined = await alice_stream.next_event("pickup.declined", pickup_id=pickup["id"])
        assert declined.data["reason"] == "too_far"
    (event,) = await events_of(db, pickup["id"], "pickup.declined")
    assert (event["actor_kind"], event["actor_id"]) == ("courier", zone.courier_ids[0])
    assert '"reason":"too_far"' in event["data"] and event["client_action_id"] == "a-decline-1"
    offers = await offers_of(db, pickup["id"])
    assert [(o["courier"], o["outcome"]) for o in offers] == [
        (zone.courier_ids[0], "declined"),
        (zone.courier_ids[1], None),
    ]
    assert offers[0]["answered_at"] is not None
    # A replay of the same action is answered, not redone (nor refused: the offer is closed now).
    again = await alice.post(url(pickup, "decline"), json=body)
    assert again.status_code == 200 and again.json()["id"] == pickup["id"]
    assert len(await events_of(db, pickup["id"], "pickup.declined")) == 1
    # Bob declines too: nobody is left, and the dispatcher has it.
    assert (await bob.post(url(pickup, "decline"), json={"reason": "busy"})).status_code == 200
    view = (await people.partner().get(f"/api/v1/pickups/{pickup['id']}")).json()
    assert view["status"] == "pending"
    assert any(e["type"] == "pickup.escalated" and e["data"]["stage"] == "dispatcher" for e in view["events"])
    # The partner never hears who declined, or why.
    assert not [e for e in view["events"] if e["type"] == "pickup.declined"]


async def test_a_grab_round_goes_on_while_someone_may_still_take_it(people: Personas) -> None:
    zone = await make_zone(people, couriers=2, offer_ttl_s=600)
    alice, bob = await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    assert (await alice.post(url(pickup, "decline"), json={"reason": "vehicle_full"})).status_code == 200
    # Bob's offer is still open: he takes it.
    r = await bob.post(url(pickup, "accept"), json={})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    # Everyone declining a grab round ends it at once (not at its expiry): the dispatcher's.
    other = await new_pickup(people, zone)
    for courier in (alice, bob):
        assert (await courier.post(url(other, "decline"), json={"reason": "busy"})).status_code == 200
    view = (await people.partner().get(f"/api/v1/pickups/{other['id']}")).json()
    assert view["status"] == "pending"


async def test_declining_needs_an_open_offer_and_a_known_reason(people: Personas) -> None:
    zone = await make_zone(people, couriers=2, offer_ttl_s=600)
    alice, bob = await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    r = await alice.post(url(pickup, "decline"), json={"reason": "lazy"})
    assert r.status_code in (400, 422) and r.json()["errors"][0]["field"] == "reason", r.text
    r = await alice.post(url(pickup, "decline"), json={})
    assert r.status_code in (400, 422) and r.json()["errors"][0]["field"] == "reason", r.text
    r = await alice.post(url(pickup, "decline"), json={"reason": "other", "note": "x" * 501})
    assert r.status_code in (400, 422) and r.json()["errors"][0]["field"] == "note", r.text
    assert (await alice.post(url(pickup, "accept"), json={})).status_code == 200
    # Bob's offer was withdrawn when Alice took it; Alice holds it, she has no offer to decline.
    for courier in (bob, alice):
        r = await courier.post(url(pickup, "decline"), json={"reason": "busy"})
        assert r.status_code == 409 and r.json()["code"] == "illegal_transition", r.text
    r = await alice.post("/api/v1/courier/pickups/999999999/decline", json={"reason": "busy"})
    assert r.status_code == 404
    # An offer that is open to someone else only.
    zone2 = await make_zone(people, couriers=2, dispatch_mode="assign", offer_ttl_s=600)
    carol, dave = await login_couriers(people, zone2)
    assigned = await new_pickup(people, zone2)  # offered to Carol (lowest id) alone
    assert (await carol.post(url(assigned, "seen"), json={})).status_code == 200
    r = await dave.post(url(assigned, "decline"), json={"reason": "busy"})
    assert r.status_code == 404  # never put in front of Dave: it does not exist for him


async def test_a_decline_of_an_offer_declined_before_is_not_offered(people: Personas) -> None:
    zone = await make_zone(people, couriers=2, offer_ttl_s=600)
    alice, _bob = await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    assert (await alice.post(url(pickup, "decline"), json={"reason": "busy"})).status_code == 200
    r = await alice.post(url(pickup, "decline"), json={"reason": "busy"})
    assert r.status_code == 409 and r.json()["code"] == "not_offered", r.text


# -- seen, arrived and the timeline ----------------------------------------------------------------------


async def test_seen_is_kept_the_first_time_only(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=1, offer_ttl_s=600)
    (alice,) = await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    body = {"client_at": "2026-11-25T09:00:00+08:00"}
    r = await alice.post(url(pickup, "seen"), json=body)
    assert r.status_code == 200 and r.json()["status"] == "offered"
    assert r.json()["sender"]["phone"] == "139****5678"
    first = (await offers_of(db, pickup["id"]))[0]["seen_at"]
    assert first is not None
    await asyncio.sleep(0.05)
    assert (await alice.post(url(pickup, "seen"), json={})).status_code == 200
    assert (await offers_of(db, pickup["id"]))[0]["seen_at"] == first
    (event,) = await events_of(db, pickup["id"], "pickup.offer_seen")
    assert event["client_at"] is not None and event["at"] is not None  # the phone's time and ours
    # Without an open offer: 409.
    assert (await alice.post(url(pickup, "accept"), json={})).status_code == 200
    r = await alice.post(url(pickup, "seen"), json={})
    assert r.status_code == 409, r.text


async def test_the_timeline_runs_from_offer_to_first_contact(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=1, offer_ttl_s=600)
    (alice,) = await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    assert (await alice.post(url(pickup, "seen"), json={})).status_code == 200
    assert (await alice.post(url(pickup, "accept"), json={})).status_code == 200
    assert (await alice.post(url(pickup, "contacted"), json={})).status_code == 200
    (offer,) = await offers_of(db, pickup["id"])
    assert offer["outcome"] == "accepted"
    times = [offer[k] for k in ("offered_at", "seen_at", "answered_at", "contacted_at")]
    assert all(t is not None for t in times), offer
    if ON_POSTGRES:  # SQLite keeps these as text in one format: compare as read
        assert times == sorted(times)
    else:
        assert times == sorted(times, key=str)
    # The first contact is kept: calling again does not move it.
    assert (await alice.post(url(pickup, "contacted"), json={})).status_code == 200
    assert (await offers_of(db, pickup["id"]))[0]["contacted_at"] == offer["contacted_at"]


async def test_arrived_is_recorded_for_a_held_pickup_only(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=2, offer_ttl_s=600)
    alice, bob = await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    r = await alice.post(url(pickup, "arrived"), json={})
    assert r.status_code == 409 and r.json()["current_status"] == "offered", r.text
    assert (await alice.post(url(pickup, "accept"), json={})).status_code == 200
    r = await alice.post(url(pickup, "arrived"), json={"client_action_id": "a-arrived-1"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert r.json()["sender"]["phone"] == "13912345678"  # hers now: the full number
    assert (
        await alice.post(url(pickup, "arrived"), json={"client_action_id": "a-arrived-1"})
    ).status_code == 200
    assert len(await events_of(db, pickup["id"], "pickup.arrived")) == 1
    r = await bob.post(url(pickup, "arrived"), json={})
    assert r.status_code == 409 and r.json()["code"] == "not_yours", r.text
    assert (await alice.post(url(pickup, "contacted"), json={})).status_code == 200
    assert (await alice.post(url(pickup, "arrived"), json={})).status_code == 200
    history = (await people.partner().get(f"/api/v1/pickups/{pickup['id']}")).json()["events"]
    assert not {"pickup.arrived", "pickup.offer_seen"} & {e["type"] for e in history}
