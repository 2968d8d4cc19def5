"""Dispatch rules and the dispatcher's actions, through HTTP."""

from __future__ import annotations

import asyncio
import uuid

from tests.conftest import Personas, SSEStream, login_couriers, make_zone, new_waybill, pickup_body


async def create(people: Personas, zone, **over) -> dict:  # type: ignore[no-untyped-def]
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, **over))
    assert r.status_code == 201, r.text
    return r.json()


async def history(people: Personas, pickup_id: int) -> list[dict]:
    r = await people.partner().get(f"/api/v1/pickups/{pickup_id}")
    return r.json()["events"]


async def test_grab_with_ten_couriers_has_one_winner_and_nine_withdrawals(people: Personas) -> None:
    zone = await make_zone(people, couriers=10)
    couriers = await login_couriers(people, zone)
    streams = [SSEStream(c) for c in couriers]
    await asyncio.gather(*(s.__aenter__() for s in streams))
    try:
        pickup = await create(people, zone)
        offers = await asyncio.gather(
            *(s.next_event("pickup.offered", pickup_id=pickup["id"]) for s in streams)
        )
        assert len(offers) == 10
        results = await asyncio.gather(
            *(c.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={}) for c in couriers)
        )
        winners = [i for i, r in enumerate(results) if r.status_code == 200]
        assert len(winners) == 1
        losers = [s for i, s in enumerate(streams) if i != winners[0]]
        withdrawn = await asyncio.gather(
            *(s.next_event("pickup.withdrawn", pickup_id=pickup["id"]) for s in losers)
        )
        assert {w.data["reason"] for w in withdrawn} == {"taken"}
        await streams[winners[0]].expect_none("pickup.withdrawn", within=0.3)
    finally:
        await asyncio.gather(*(s.close() for s in streams))


async def test_assign_offers_one_courier_the_least_loaded_then_nearest(people: Personas) -> None:
    zone = await make_zone(people, couriers=3, dispatch_mode="assign", offer_ttl_s=30)
    busy, far, near = await login_couriers(people, zone)
    # `busy` already holds a pickup; `far` and `near` hold none and differ only by distance.
    first = await create(people, zone)
    offered_to = [e for e in await history(people, first["id"]) if e["type"] == "pickup.offered"]
    assert len(offered_to) == 1
    r = await busy.post(f"/api/v1/courier/pickups/{first['id']}/accept", json={})
    if r.status_code != 200:  # the rule chose someone else first: hand it to `busy` as the dispatcher
        dispatcher = await people.user("dispatch")
        r = await dispatcher.post(
            "/api/v1/dispatch/assign", json={"pickup_ids": [first["id"]], "courier_id": zone.courier_ids[0]}
        )
        assert r.status_code == 200, r.text
    await far.post(
        "/api/v1/courier/heartbeat", json={"lat": zone.lat + 0.03, "lng": zone.lng, "datum": "wgs84"}
    )
    await near.post(
        "/api/v1/courier/heartbeat", json={"lat": zone.lat + 0.0005, "lng": zone.lng, "datum": "wgs84"}
    )
    async with SSEStream(near) as near_stream, SSEStream(far) as far_stream:
        second = await create(people, zone)
        await near_stream.next_event("pickup.offered", pickup_id=second["id"])
        await far_stream.expect_none("pickup.offered", within=0.5)
    r = await far.post(f"/api/v1/courier/pickups/{second['id']}/accept", json={})
    assert r.status_code == 404  # never offered to `far`: it does not exist for them
    r = await near.post(f"/api/v1/courier/pickups/{second['id']}/accept", json={})
    assert r.status_code == 200


async def test_a_zone_with_nobody_on_duty_escalates_straight_to_the_dispatcher(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    pickup = await create(people, zone)
    assert pickup["status"] == "pending"
    types = [(e["type"], e["data"].get("stage")) for e in await history(people, pickup["id"])]
    assert ("pickup.escalated", "dispatcher") in types
    # The courier coming on duty is offered what waited for them.
    (courier,) = await login_couriers(people, zone)
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text


async def test_dispatcher_reassigns_and_both_couriers_are_told(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    alice, bob = await login_couriers(people, zone)
    pickup = await create(people, zone)
    assert (await alice.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})).status_code == 200
    dispatcher = await people.user("dispatch")
    async with SSEStream(alice) as alice_stream, SSEStream(bob) as bob_stream:
        r = await dispatcher.post(
            "/api/v1/dispatch/assign",
            json={
                "pickup_ids": [pickup["id"]],
                "courier_id": zone.courier_ids[1],
                "reason": "alice is stuck",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["changed"] == [pickup["id"]]
        lost = await alice_stream.next_event("pickup.withdrawn", pickup_id=pickup["id"])
        assert lost.data["reason"] == "reassigned"
        gained = await bob_stream.next_event("pickup.reassigned", pickup_id=pickup["id"])
        assert gained.data["reason"] == "alice is stuck"
    events = await history(people, pickup["id"])
    reassigned = [e for e in events if e["type"] == "pickup.reassigned"]
    assert reassigned and reassigned[0]["actor"] == "dispatcher"
    r = await bob.post(
        f"/api/v1/courier/pickups/{pickup['id']}/collect",
        json={"waybill_no": "YT" + new_waybill()[2:10] + "0123"},
    )
    assert r.status_code == 200
    r = await alice.post(f"/api/v1/courier/pickups/{pickup['id']}/contacted", json={})
    assert r.status_code == 409 and r.json()["code"] == "not_yours"


async def test_assigning_many_at_once_is_all_or_nothing(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    other = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    await login_couriers(people, other)
    ours = await create(people, zone)
    theirs = await create(people, other)
    dispatcher = await people.user("dispatch")
    r = await dispatcher.post(
        "/api/v1/dispatch/assign",
        json={"pickup_ids": [ours["id"], theirs["id"]], "courier_id": zone.courier_ids[0]},
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "courier_outside_zone"
    assert r.json()["errors"][0]["field"] == "pickup_ids[1]"
    for p in (ours, theirs):
        r = await people.partner().get(f"/api/v1/pickups/{p['id']}")
        assert r.json()["status"] == "offered"  # nothing changed
    r = await dispatcher.post(
        "/api/v1/dispatch/assign",
        json={
            "pickup_ids": [ours["id"], theirs["id"]],
            "courier_id": zone.courier_ids[0],
            "allow_outside_zone": True,
        },
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["changed"]) == sorted([ours["id"], theirs["id"]])


async def test_dispatch_refuses_bad_assignments_and_changes_nothing(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    on, _off = await login_couriers(people, zone, on_duty=False)
    await on.post("/api/v1/courier/duty", json={"on_duty": True})
    pickup = await create(people, zone)
    dispatcher = await people.user("dispatch")

    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [pickup["id"]], "courier_id": 99_999_999}
    )
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "courier_id"
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [pickup["id"]], "courier_id": zone.courier_ids[1]}
    )
    assert r.status_code == 422 and r.json()["code"] == "courier_off_duty"
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [99_999_999], "courier_id": zone.courier_ids[0]}
    )
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "pickup_ids[0]"
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [], "courier_id": zone.courier_ids[0]}
    )
    assert r.status_code in (400, 422)

    assert (await on.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})).status_code == 200
    r = await on.post(f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": new_waybill()})
    assert r.status_code == 200
    before = await history(people, pickup["id"])
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [pickup["id"]], "courier_id": zone.courier_ids[0]}
    )
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    r = await dispatcher.post("/api/v1/dispatch/unassign", json={"pickup_ids": [pickup["id"]]})
    assert r.status_code == 409
    assert await history(people, pickup["id"]) == before

    courier = await people.user(zone.couriers[0], "pw-" + zone.couriers[0].split("-")[-1])
    r = await courier.post("/api/v1/dispatch/assign", json={"pickup_ids": [pickup["id"]], "courier_id": 1})
    assert r.status_code == 403


async def test_unassign_takes_the_pickup_back_and_offers_it_again(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    alice, bob = await login_couriers(people, zone)
    pickup = await create(people, zone)
    assert (await alice.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})).status_code == 200
    dispatcher = await people.user("dispatch")
    async with SSEStream(alice) as alice_stream, SSEStream(bob) as bob_stream:
        r = await dispatcher.post(
            "/api/v1/dispatch/unassign", json={"pickup_ids": [pickup["id"]], "reason": "sick"}
        )
        assert r.status_code == 200, r.text
        assert (await alice_stream.next_event("pickup.withdrawn", pickup_id=pickup["id"])).data[
            "reason"
        ] == "unassigned"
        await bob_stream.next_event("pickup.offered", pickup_id=pickup["id"])
    r = await people.partner().get(f"/api/v1/pickups/{pickup['id']}")
    assert r.json()["status"] == "offered" and r.json()["courier"] is None


async def test_a_chase_re_alerts_the_courier_holding_the_pickup(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup = await create(people, zone)
    await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    async with SSEStream(courier) as stream:
        r = await people.partner().post(f"/api/v1/pickups/{pickup['id']}/chase")
        assert r.status_code == 200, r.text
        chased = await stream.next_event("pickup.chased", pickup_id=pickup["id"])
        assert chased.data["count"] == 1


async def test_a_cancelled_pickup_is_withdrawn_from_every_courier_offered_it(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    couriers = await login_couriers(people, zone)
    pickup = await create(people, zone)
    async with SSEStream(couriers[0]) as stream:
        r = await people.partner().post(
            f"/api/v1/pickups/{pickup['id']}/cancel", json={"reason": "customer changed mind"}
        )
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        withdrawn = await stream.next_event("pickup.withdrawn", pickup_id=pickup["id"])
        assert withdrawn.data["reason"] == "cancelled"
    r = await couriers[1].post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 409
    r = await people.partner().post(f"/api/v1/pickups/{pickup['id']}/cancel", json={})
    assert r.status_code == 409 and r.json()["current_status"] == "cancelled"


async def test_another_partner_cannot_chase_or_cancel(people: Personas, db) -> None:  # type: ignore[no-untyped-def]
    import re

    zone = await make_zone(people)
    pickup = await create(people, zone)
    key = re.search(r"lsk_\S+", db.cli("partner", "create", "--code", "rival-shop")).group(0)  # type: ignore[union-attr]
    rival = people.partner(key)
    assert (await rival.post(f"/api/v1/pickups/{pickup['id']}/chase")).status_code == 404
    assert (await rival.post(f"/api/v1/pickups/{pickup['id']}/cancel", json={})).status_code == 404


async def test_station_figures_roll_up_to_city_and_province(people: Personas) -> None:
    dispatcher = await people.user("admin")  # the whole tree; the demo dispatcher sees Changsha only
    before = (await dispatcher.get("/api/v1/dispatch/stations")).json()
    zone = await make_zone(people)
    await create(people, zone)
    after = (await dispatcher.get("/api/v1/dispatch/stations")).json()
    province_before = next(s for s in before if s["code"] == "HN")
    province_after = next(s for s in after if s["code"] == "HN")
    total = lambda node: sum(node["counts"].values())  # noqa: E731
    assert total(province_after) == total(province_before) + 1
    city = next(c for c in province_after["children"] if c["code"] == "HN-CS")
    assert total(city) == total(province_after)


async def test_broken_geojson_is_refused_with_the_feature_index_and_nothing_changes(people: Personas) -> None:
    dispatcher = await people.user("dispatch")
    before = (await dispatcher.get("/api/v1/zones")).json()
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "OK-1", "name": "fine", "station": "ST-TX"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[113.2, 28.2], [113.21, 28.2], [113.21, 28.21], [113.2, 28.2]]],
                },
            },
            {
                "type": "Feature",
                "properties": {"code": "BAD-1", "name": "bow tie", "station": "ST-TX"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[113.3, 28.3], [113.31, 28.31], [113.31, 28.3], [113.3, 28.31], [113.3, 28.3]]
                    ],
                },
            },
            {
                "type": "Feature",
                "properties": {"code": "BAD-2", "name": "open ring", "station": "ST-TX"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[113.4, 28.4], [113.41, 28.4], [113.41, 28.41], [113.4, 28.41]]],
                },
            },
        ],
    }
    r = await dispatcher.put("/api/v1/zones", json=collection)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_geojson"
    indexes = {e["index"] for e in body["errors"]}
    assert indexes == {1, 2}
    assert any("intersect" in e["message"].lower() for e in body["errors"] if e["index"] == 1)
    assert all(e["field"].startswith(f"features[{e['index']}]") for e in body["errors"])
    assert (await dispatcher.get("/api/v1/zones")).json() == before


async def test_zone_priority_decides_between_overlapping_zones(people: Personas) -> None:
    low = await make_zone(people, priority=1)
    dispatcher = await people.user("dispatch")
    ring = [
        [low.lng - 0.001, low.lat - 0.001],
        [low.lng + 0.001, low.lat - 0.001],
        [low.lng + 0.001, low.lat + 0.001],
        [low.lng - 0.001, low.lat + 0.001],
        [low.lng - 0.001, low.lat - 0.001],
    ]
    high = {
        "type": "Feature",
        "properties": {"code": f"HI-{low.code}", "name": "overlay", "station": low.station, "priority": 50},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    r = await dispatcher.put("/api/v1/zones", json={"type": "FeatureCollection", "features": [high]})
    assert r.status_code == 200, r.text
    pickup = await create(people, low)
    assert pickup["zone"]["code"] == f"HI-{low.code}"


# -- capacity under races ---------------------------------------------------------------------------------


async def courier_with_capacity(people: Personas, zone, capacity: int):  # type: ignore[no-untyped-def]
    """A new courier of `zone` who holds at most `capacity` pickups, signed in and on duty."""
    admin = await people.user("admin")
    username = f"cap{capacity}-{uuid.uuid4().hex[:8]}"
    r = await admin.post(
        "/api/v1/users",
        json={
            "username": username,
            "password": "pw-capacity",
            "role": "courier",
            "capacity": capacity,
            "zones": [{"zone": zone.code}],
        },
    )
    assert r.status_code == 201, r.text
    courier = await people.user(username, "pw-capacity")
    assert (await courier.post("/api/v1/courier/duty", json={"on_duty": True})).status_code == 200
    return courier, r.json()["courier_id"]


async def test_six_accepts_at_once_stop_at_the_couriers_capacity(people: Personas) -> None:
    for _ in range(2):  # two trials: a race that slips once is still a race
        zone = await make_zone(people)
        courier, _ = await courier_with_capacity(people, zone, 2)
        pickups = [await create(people, zone) for _ in range(6)]
        assert all(p["status"] == "offered" for p in pickups)
        results = await asyncio.gather(
            *(courier.post(f"/api/v1/courier/pickups/{p['id']}/accept", json={}) for p in pickups)
        )
        assert sorted(r.status_code for r in results) == [200, 200, 409, 409, 409, 409]
        assert {r.json()["code"] for r in results if r.status_code == 409} == {"over_capacity"}
        assert len((await courier.get("/api/v1/courier/pickups")).json()["held"]) == 2


async def test_two_dispatchers_filling_one_courier_at_once_stop_at_capacity(people: Personas) -> None:
    dispatchers = [await people.user("dispatch"), await people.user("admin")]
    for _ in range(3):
        zone = await make_zone(people)
        courier, courier_id = await courier_with_capacity(people, zone, 2)
        pickups = [(await create(people, zone))["id"] for _ in range(4)]
        results = await asyncio.gather(
            *(
                d.post(
                    "/api/v1/dispatch/assign",
                    json={"pickup_ids": pickups[2 * i : 2 * i + 2], "courier_id": courier_id},
                )
                for i, d in enumerate(dispatchers)
            )
        )
        assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
        assert [r.json()["code"] for r in results if r.status_code == 409] == ["over_capacity"]
        assert len((await courier.get("/api/v1/courier/pickups")).json()["held"]) == 2


# -- a courier coming on duty, and who an event is credited to -------------------------------------------


async def test_a_backup_courier_coming_on_duty_is_offered_what_waits(people: Personas) -> None:
    """Nobody of the zone on duty: the pickup waits for the dispatcher. A backup courier of the zone,
    or any courier of its station, coming on duty is then offered it, as the escalation would have."""
    for role in ("backup", "station"):
        zone = await make_zone(people, couriers=1)  # its primary courier stays off duty
        home = await make_zone(people, couriers=1, station=zone.station)
        helper_id = home.courier_ids[0]
        if role == "backup":
            dispatcher = await people.user("dispatch")
            r = await dispatcher.put(
                f"/api/v1/couriers/{helper_id}/zones",
                json={"zones": [{"zone": home.code}, {"zone": zone.code, "role": "backup"}]},
            )
            assert r.status_code == 200, r.text
        pickup = await create(people, zone)
        assert pickup["status"] == "pending"
        (helper,) = await login_couriers(people, home, on_duty=False)
        async with SSEStream(helper) as stream:
            r = await helper.post("/api/v1/courier/duty", json={"on_duty": True})
            assert r.status_code == 200 and r.json()["offers_sent"] == 1, (role, r.text)
            offered = await stream.next_event("pickup.offered", pickup_id=pickup["id"])
            assert "couriers" not in offered.data  # who else was offered it is not its business
        r = await helper.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
        assert r.status_code == 200, (role, r.text)


async def test_an_event_is_credited_to_whoever_decided(people: Personas) -> None:
    """The partner creates, chases and cancels; the rules (the system) offer, escalate and withdraw
    the offers others lost; a courier accepts; a dispatcher assigns and unassigns."""

    def actors(events: list[dict]) -> list[tuple[str, str]]:
        return [(e["type"], e["actor"]) for e in events]

    zone = await make_zone(people, couriers=2)
    alice, _bob = await login_couriers(people, zone)
    pickup = await create(people, zone)
    assert (await alice.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})).status_code == 200
    assert (await people.partner().post(f"/api/v1/pickups/{pickup['id']}/chase")).status_code == 200
    dispatcher = await people.user("dispatch")
    r = await dispatcher.post(
        "/api/v1/dispatch/unassign", json={"pickup_ids": [pickup["id"]], "reason": "re-plan"}
    )
    assert r.status_code == 200, r.text
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [pickup["id"]], "courier_id": zone.courier_ids[1]}
    )
    assert r.status_code == 200, r.text
    r = await people.partner().post(f"/api/v1/pickups/{pickup['id']}/cancel", json={"reason": "no"})
    assert r.status_code == 200, r.text
    assert actors(await history(people, pickup["id"])) == [
        ("pickup.created", "partner"),
        ("pickup.offered", "system"),
        ("pickup.accepted", "courier"),
        ("pickup.withdrawn", "system"),  # Bob's offer: Alice was first
        ("pickup.chased", "partner"),
        ("pickup.withdrawn", "dispatcher"),  # taken from Alice
        ("pickup.unassigned", "dispatcher"),
        ("pickup.offered", "system"),  # offered afresh by the rules
        ("pickup.withdrawn", "dispatcher"),  # the new offers, as the dispatcher assigns Bob
        ("pickup.assigned", "dispatcher"),
        ("pickup.cancelled", "partner"),
    ]

    # Nobody on duty: escalated by the rules; offered by them when a courier comes on duty.
    quiet = await make_zone(people, couriers=1)
    waiting = await create(people, quiet)
    await login_couriers(people, quiet)
    assert actors(await history(people, waiting["id"])) == [
        ("pickup.created", "partner"),
        ("pickup.escalated", "system"),
        ("pickup.offered", "system"),
    ]
