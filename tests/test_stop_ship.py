"""Stop-ship areas (停发区域): admins anywhere and dispatchers in their subtree define them; a pickup
inside one in force is refused with its reason; partners list the ones in force.

Areas here are drawn around each test's own zone or named after its own street: the database is shared,
and an area over the demo city would refuse every other test's pickups.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api, Personas, SSEStream, make_zone, pickup_body, square
from tests.conftest import TestZone as Zone  # aliased: pytest would collect a Test* class
from tests.test_scope import station_dispatcher


def around(zone: Zone) -> dict[str, Any]:
    return square(zone.lng - 0.001, zone.lat - 0.001, 0.002)


def iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def new_area(api: Api, **body: Any) -> dict[str, Any]:
    body = {"name": "暴雪停发", "reason": "暴雪封路，暂停揽收", "datum": "wgs84", **body}
    r = await api.post("/api/v1/stop-ship-areas", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_pickup_inside_an_area_in_force_is_refused_with_the_reason(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    admin, partner = await people.user("admin"), people.partner()
    area = await new_area(admin, geometry=around(zone), station=zone.station)
    assert area["active"] is True and area["station"] == zone.station

    r = await partner.post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "stop_ship_area" and body["reason"] == "暴雪封路，暂停揽收"
    assert body["stop_ship"]["id"] == area["id"] and body["errors"][0]["field"] == "address"

    r = await partner.get(
        "/api/v1/serviceability", params={"lng": zone.lng, "lat": zone.lat, "datum": "wgs84"}
    )
    assert r.json()["serviceable"] is False and r.json()["code"] == "stop_ship_area", r.text
    assert r.json()["stop_ship"]["reason"] == "暴雪封路，暂停揽收"

    async with SSEStream(admin, path="/console/events") as events:  # every change is an event
        r = await admin.post(f"/api/v1/stop-ship-areas/{area['id']}/end")
        assert r.status_code == 200 and r.json()["active"] is False, r.text
        event = await events.next_event("stop_ship.changed")
        assert event.data["pickup_id"] is None, event.data
    r = await partner.post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text


async def test_a_batch_item_and_a_change_of_address_into_an_area_are_refused(people: Personas) -> None:
    inside, outside = await make_zone(people, couriers=1), await make_zone(people, couriers=1)
    admin, partner = await people.user("admin"), people.partner()
    area = await new_area(admin, geometry=around(inside), station=inside.station)
    items = [pickup_body(outside), pickup_body(inside), pickup_body(outside)]
    r = await partner.post("/api/v1/pickups/batch", json={"items": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["created", "invalid", "created"], results
    assert results[1]["code"] == "stop_ship_area" and "暴雪封路" in results[1]["message"], results[1]
    assert results[1]["errors"][0]["field"] == "items[1].address", results[1]

    # A pickup outside may not be moved in either: 422 with the reason, the address left as it was.
    pickup_id = results[0]["id"]
    moved = pickup_body(inside)["address"]
    r = await partner.post(f"/api/v1/pickups/{pickup_id}/address", json={"address": moved})
    assert r.status_code == 422 and r.json()["code"] == "stop_ship_area", r.text
    assert r.json()["reason"] == "暴雪封路，暂停揽收"
    r = await partner.get(f"/api/v1/pickups/{pickup_id}")
    assert r.json()["zone"]["code"] == outside.code, r.text
    assert not [e for e in r.json()["events"] if e["type"] == "pickup.address_changed"]
    await admin.post(f"/api/v1/stop-ship-areas/{area['id']}/end")


async def test_an_area_named_by_street_refuses_an_address_without_a_point(people: Personas) -> None:
    # A real street (addresses are checked against GB/T 2260) of the test district 望城区 that no other
    # test's address names; the area is ended at the end.
    street = "金山桥街道"
    admin, partner = await people.user("admin"), people.partner()
    area = await new_area(admin, admin_areas=[street])
    body = pickup_body()
    body["address"]["street"] = street
    r = await partner.post("/api/v1/pickups", json=body)
    assert r.status_code == 422 and r.json()["code"] == "stop_ship_area", r.text
    await admin.post(f"/api/v1/stop-ship-areas/{area['id']}/end")


async def test_only_an_area_in_its_validity_period_refuses(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    admin, partner = await people.user("admin"), people.partner()
    future = await new_area(admin, geometry=around(zone), starts_at=iso(timedelta(hours=1)))
    expired = await new_area(
        admin, geometry=around(zone), starts_at=iso(timedelta(hours=-2)), ends_at=iso(timedelta(hours=-1))
    )
    assert future["active"] is False and expired["active"] is False
    r = await partner.post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text

    active = {a["id"] for a in (await partner.get("/api/v1/stop-ship-areas/active")).json()}
    assert future["id"] not in active and expired["id"] not in active
    current = await new_area(admin, geometry=around(zone), ends_at=iso(timedelta(hours=1)))
    r = await partner.get("/api/v1/stop-ship-areas/active")
    assert r.status_code == 200, r.text
    listed = {a["id"]: a for a in r.json()}
    assert listed[current["id"]]["reason"] == "暴雪封路，暂停揽收"
    assert listed[current["id"]]["geometry"]["type"] == "Polygon"
    for area in (future, current):
        await admin.post(f"/api/v1/stop-ship-areas/{area['id']}/end")


async def test_a_dispatcher_manages_areas_only_in_their_subtree(people: Personas) -> None:
    ours = await make_zone(people)
    theirs = await make_zone(people)
    dispatcher, admin = await station_dispatcher(people, ours.station), await people.user("admin")

    body = {"name": "施工", "reason": "道路施工", "geometry": around(theirs), "station": theirs.station}
    r = await dispatcher.post("/api/v1/stop-ship-areas", json=body)
    assert r.status_code == 403 and r.json()["code"] == "out_of_scope", r.text
    r = await dispatcher.post("/api/v1/stop-ship-areas", json={**body, "station": None})
    assert r.status_code == 201 and r.json()["station"] == ours.station, r.text  # their own by default
    mine = r.json()

    foreign = await new_area(admin, geometry=around(theirs), station=theirs.station)
    listed = {a["id"] for a in (await dispatcher.get("/api/v1/stop-ship-areas")).json()}
    assert mine["id"] in listed and foreign["id"] not in listed
    for method, path in (("PUT", ""), ("POST", "/end")):
        r = await dispatcher.request(method, f"/api/v1/stop-ship-areas/{foreign['id']}{path}", json=body)
        assert r.status_code == 404, r.text

    r = await dispatcher.put(
        f"/api/v1/stop-ship-areas/{mine['id']}", json={**body, "station": None, "reason": "施工延期"}
    )
    assert r.status_code == 200 and r.json()["reason"] == "施工延期", r.text
    for area in (mine, foreign):
        r = await admin.post(f"/api/v1/stop-ship-areas/{area['id']}/end")
        assert r.status_code == 200, r.text
    ended = {a["id"]: a for a in (await admin.get("/api/v1/stop-ship-areas?include_ended=true")).json()}
    assert ended[mine["id"]]["active"] is False


async def test_a_bad_area_is_refused_field_by_field(people: Personas) -> None:
    admin = await people.user("admin")
    bow_tie = {"type": "Polygon", "coordinates": [[[113, 28], [114, 29], [114, 28], [113, 29], [113, 28]]]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "geometry"),  # neither a shape nor names
        ({"geometry": bow_tie}, "geometry.coordinates"),
        (
            {
                "admin_areas": ["某街道"],
                "starts_at": iso(timedelta(hours=2)),
                "ends_at": iso(timedelta(hours=1)),
            },
            "ends_at",
        ),
        ({"admin_areas": ["某街道"], "station": "NO-SUCH"}, "station"),
    ]
    for extra, field in cases:
        r = await admin.post("/api/v1/stop-ship-areas", json={"name": "坏", "reason": "坏", **extra})
        assert r.status_code == 422, (extra, r.text)
        assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.text
    r = await admin.get("/api/v1/stop-ship-areas")
    assert all(a["name"] != "坏" for a in r.json())
