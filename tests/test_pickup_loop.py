"""The whole loop through HTTP: partner creates → courier on duty gets the offer on SSE → twenty
couriers accept at once, one wins → contacted → collected → the partner sees every event in order."""

from __future__ import annotations

import asyncio

from tests.conftest import Personas, SSEStream, make_zone, new_waybill, pickup_body


async def test_the_pickup_loop_end_to_end_with_twenty_rival_accepts(people: Personas) -> None:
    zone = await make_zone(people, couriers=20)
    couriers = [await people.user(name, "pw-" + name.split("-")[-1]) for name in zone.couriers]
    for courier in couriers:
        r = await courier.post("/api/v1/courier/duty", json={"on_duty": True})
        assert r.status_code == 200 and r.json()["on_duty"] is True

    partner = people.partner()
    async with SSEStream(couriers[0]) as stream:
        r = await partner.post("/api/v1/pickups", json=pickup_body(zone, partner_order_no="ORDER-LOOP-1"))
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["status"] == "offered"
        assert created["zone"]["code"] == zone.code
        assert created["tracking_code"].startswith("LS")

        offered = await stream.next_event("pickup.offered", pickup_id=created["id"])
        assert offered.data["pickup"]["id"] == created["id"]
        assert offered.data["pickup"]["sender_phone"] == "139****5678"  # masked until accepted

        results = await asyncio.gather(
            *(c.post(f"/api/v1/courier/pickups/{created['id']}/accept", json={}) for c in couriers)
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [200] + [409] * 19, codes
        losers = [r for r in results if r.status_code == 409]
        assert all(r.json()["current_status"] == "accepted" for r in losers)
        assert all(r.json()["code"] in ("illegal_transition", "conflict", "not_offered") for r in losers)

    winner = couriers[[r.status_code for r in results].index(200)]
    accepted = results[[r.status_code for r in results].index(200)].json()
    assert accepted["sender"]["phone"] == "13912345678"  # the courier who holds it may call

    r = await winner.post(f"/api/v1/courier/pickups/{created['id']}/contacted", json={})
    assert r.status_code == 200 and r.json()["status"] == "contacted"
    waybill = new_waybill()
    r = await winner.post(f"/api/v1/courier/pickups/{created['id']}/collect", json={"waybill_no": waybill})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "collected"

    r = await partner.get(f"/api/v1/pickups/{created['id']}")
    assert r.status_code == 200
    seen = r.json()
    assert seen["status"] == "collected"
    assert seen["waybill_no"] == waybill
    assert seen["partner_order_no"] == "ORDER-LOOP-1"
    types = [e["type"] for e in seen["events"]]
    assert types == [
        "pickup.created",
        "pickup.offered",
        "pickup.accepted",
        "pickup.withdrawn",
        "pickup.contacted",
        "pickup.collected",
    ]
    ids = [e["id"] for e in seen["events"]]
    assert ids == sorted(ids)
    assert "couriers" not in seen["events"][1]["data"]  # who else was offered stays internal


async def test_the_other_couriers_see_the_offer_withdrawn(people: Personas) -> None:
    zone = await make_zone(people, couriers=3)
    couriers = [await people.user(n, "pw-" + n.split("-")[-1]) for n in zone.couriers]
    for c in couriers:
        await c.post("/api/v1/courier/duty", json={"on_duty": True})
    async with SSEStream(couriers[1]) as loser_stream:
        r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
        pickup_id = r.json()["id"]
        await loser_stream.next_event("pickup.offered", pickup_id=pickup_id)
        r = await couriers[0].post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
        assert r.status_code == 200
        withdrawn = await loser_stream.next_event("pickup.withdrawn", pickup_id=pickup_id)
        assert withdrawn.data["reason"] == "taken"


async def test_an_off_duty_courier_gets_no_offer(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    on, off = [await people.user(n, "pw-" + n.split("-")[-1]) for n in zone.couriers]
    await on.post("/api/v1/courier/duty", json={"on_duty": True})
    async with SSEStream(off) as off_stream:
        r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
        assert r.status_code == 201
        await off_stream.expect_none("pickup.offered", within=0.5)
        r = await off.post(f"/api/v1/courier/pickups/{r.json()['id']}/accept", json={})
        assert r.status_code == 404  # never put before them: it does not exist for them
        assert r.json()["code"] == "not_found"


async def test_a_courier_going_on_duty_is_offered_what_is_open_in_the_zone(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    courier = await people.user(zone.couriers[0], "pw-" + zone.couriers[0].split("-")[-1])
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    pickup_id = r.json()["id"]
    assert r.json()["status"] == "pending"  # nobody on duty: it waits on the dispatcher's queue
    async with SSEStream(courier) as stream:
        r = await courier.post("/api/v1/courier/duty", json={"on_duty": True})
        assert r.json()["offers_sent"] == 1
        await stream.next_event("pickup.offered", pickup_id=pickup_id)
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200


async def test_a_pickup_outside_every_zone_waits_pending(people: Personas) -> None:
    body = pickup_body()
    body["address"].update(
        lat=30.5, lng=114.3, province="湖北省", city="武汉市", district="江岸区", street=""
    )  # Wuhan
    r = await people.partner().post("/api/v1/pickups", json=body)
    assert r.status_code == 201
    assert r.json()["status"] == "pending"
    assert r.json()["zone"] is None


async def test_an_address_without_coordinates_matches_by_admin_area(people: Personas) -> None:
    body = pickup_body()
    body["address"].update(district="天心区", street="坡子街街道")
    r = await people.partner().post("/api/v1/pickups", json=body)
    assert r.status_code == 201
    assert r.json()["zone"]["code"] == "CS-TX-02"


async def test_gcj02_coordinates_are_converted_before_matching(people: Personas) -> None:
    from server.domain.geo import from_wgs84

    zone = await make_zone(people)
    lng, lat = from_wgs84(zone.lng, zone.lat, "gcj02")
    body = pickup_body()
    body["address"].update(lat=lat, lng=lng, datum="gcj02")
    r = await people.partner().post("/api/v1/pickups", json=body)
    assert r.json()["zone"]["code"] == zone.code
    assert abs(r.json()["address"]["lng"] - zone.lng) < 1e-5
