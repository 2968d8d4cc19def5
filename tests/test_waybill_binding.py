"""A waybill binds one pickup (订单号与运单号捆绑): a waybill number already collected on one pickup is
refused on any other, also when two couriers scan the same waybill at the same moment."""

from __future__ import annotations

import asyncio

from tests.conftest import Api, Personas, login_couriers, make_zone, new_waybill, pickup_body
from tests.conftest import TestZone as Zone  # aliased: pytest would collect a Test* class


async def held_pickup(people: Personas, courier: Api, zone: Zone) -> int:
    """A new pickup in the zone, accepted by this courier."""
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    pickup_id = int(r.json()["id"])
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    return pickup_id


async def test_a_waybill_bound_to_one_pickup_is_refused_on_another(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    first, second = await held_pickup(people, courier, zone), await held_pickup(people, courier, zone)
    waybill = new_waybill()

    r = await courier.post(f"/api/v1/courier/pickups/{first}/collect", json={"waybill_no": waybill})
    assert r.status_code == 200, r.text
    r = await courier.post(f"/api/v1/courier/pickups/{second}/collect", json={"waybill_no": waybill.lower()})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "waybill_taken" and [e["field"] for e in body["errors"]] == ["waybill_no"]

    seen = (await people.partner().get(f"/api/v1/pickups/{second}")).json()
    assert seen["status"] == "accepted" and seen["waybill_no"] is None
    assert "pickup.collected" not in [e["type"] for e in seen["events"]]
    # The right waybill still collects it.
    r = await courier.post(f"/api/v1/courier/pickups/{second}/collect", json={"waybill_no": new_waybill()})
    assert r.status_code == 200, r.text


async def test_a_pickup_not_held_is_answered_as_such_before_its_waybill(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    held = await held_pickup(people, courier, zone)
    waybill = new_waybill()
    assert (
        await courier.post(f"/api/v1/courier/pickups/{held}/collect", json={"waybill_no": waybill})
    ).status_code == 200
    r = await courier.post(f"/api/v1/courier/pickups/{held}/collect", json={"waybill_no": waybill})
    assert r.status_code == 409 and r.json()["current_status"] == "collected", r.text


async def test_two_couriers_scanning_one_waybill_at_once_bind_it_once(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    alice, bob = await login_couriers(people, zone)
    for _trial in range(3):
        mine, theirs = await held_pickup(people, alice, zone), await held_pickup(people, bob, zone)
        waybill = new_waybill()
        results = await asyncio.gather(
            alice.post(f"/api/v1/courier/pickups/{mine}/collect", json={"waybill_no": waybill}),
            bob.post(f"/api/v1/courier/pickups/{theirs}/collect", json={"waybill_no": waybill}),
        )
        assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
        refused = next(r for r in results if r.status_code == 409)
        assert refused.json()["code"] == "waybill_taken"
