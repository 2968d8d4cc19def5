"""A dispatcher answers for the stations under their own: they see and act on those pickups only."""

from __future__ import annotations

import uuid

from tests.conftest import Api, Personas, login_couriers, make_station, make_zone, pickup_body


async def station_dispatcher(people: Personas, station: str) -> Api:
    admin = await people.user("admin")
    username = f"disp-{uuid.uuid4().hex[:8]}"
    r = await admin.post(
        "/api/v1/users",
        json={"username": username, "password": "pw-scope", "role": "dispatcher", "station": station},
    )
    assert r.status_code == 201, r.text
    return await people.user(username, "pw-scope")


async def test_a_station_dispatcher_sees_and_moves_only_their_stations_pickups(people: Personas) -> None:
    ours = await make_zone(people, couriers=1)
    theirs = await make_zone(people, couriers=1)
    await login_couriers(people, ours)
    await login_couriers(people, theirs)
    partner = people.partner()
    mine = (await partner.post("/api/v1/pickups", json=pickup_body(ours))).json()
    other = (await partner.post("/api/v1/pickups", json=pickup_body(theirs))).json()
    dispatcher = await station_dispatcher(people, ours.station)

    board = (await dispatcher.get("/console/board")).text
    assert mine["tracking_code"] in board
    assert other["tracking_code"] not in board
    assert (await dispatcher.get(f"/console/pickups/{other['id']}/row")).status_code == 404
    couriers = (await dispatcher.get("/console/couriers")).text
    assert ours.couriers[0] in couriers and theirs.couriers[0] not in couriers

    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [other["id"]], "courier_id": ours.courier_ids[0]}
    )
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "pickup_ids[0]"
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [mine["id"]], "courier_id": theirs.courier_ids[0]}
    )
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "courier_id"
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [mine["id"]], "courier_id": ours.courier_ids[0]}
    )
    assert r.status_code == 200, r.text

    stations = (await dispatcher.get("/api/v1/dispatch/stations")).json()
    assert [s["code"] for s in stations] == [ours.station]


async def test_a_city_dispatcher_sees_every_station_below(people: Personas) -> None:
    a = await make_zone(people)
    b = await make_zone(people)
    partner = people.partner()
    pa = (await partner.post("/api/v1/pickups", json=pickup_body(a))).json()
    pb = (await partner.post("/api/v1/pickups", json=pickup_body(b))).json()
    city = await people.user("dispatch")  # the demo dispatcher sits at Changsha (HN-CS)
    board = (await city.get("/console/board")).text
    assert pa["tracking_code"] in board and pb["tracking_code"] in board
    stations = (await city.get("/api/v1/dispatch/stations")).json()
    assert [s["code"] for s in stations] == ["HN-CS"]


async def test_a_zone_added_to_a_station_shows_on_its_dispatchers_board_at_once(people: Personas) -> None:
    station = await make_station(people)
    dispatcher = await station_dispatcher(people, station)
    await dispatcher.get("/console/board")  # the scope is worked out (and cached) before the zone exists
    zone = await make_zone(people, station=station)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    assert pickup["tracking_code"] in (await dispatcher.get("/console/board")).text
