"""A dispatcher answers for the stations under their own: they see and act on those pickups only."""

from __future__ import annotations

import asyncio
import time
import uuid

from tests.conftest import Api, Personas, SSEStream, login_couriers, make_station, make_zone, pickup_body


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
    couriers = (await dispatcher.get("/console/couriers/panel")).text
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
    # The board is paged (and the test run's pickups fill more than a page): each is looked up by its code.
    for code in (pa["tracking_code"], pb["tracking_code"]):
        assert f">{code}</a>" in (await city.get(f"/console/board?q={code}")).text
    stations = (await city.get("/api/v1/dispatch/stations")).json()
    assert [s["code"] for s in stations] == ["HN-CS"]


async def test_a_zone_added_to_a_station_shows_on_its_dispatchers_board_at_once(people: Personas) -> None:
    station = await make_station(people)
    dispatcher = await station_dispatcher(people, station)
    await dispatcher.get("/console/board")  # the scope is worked out (and cached) before the zone exists
    zone = await make_zone(people, station=station)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    assert pickup["tracking_code"] in (await dispatcher.get("/console/board")).text


# -- the console stream: the board's scope, live and replayed ------------------------------------------

CONSOLE = "/console/events"


def pickups_seen(stream: SSEStream) -> set[int]:
    return {e.data["pickup_id"] for e in stream.seen if isinstance(e.data, dict) and e.data.get("pickup_id")}


async def until_seen(stream: SSEStream, pickup_id: int, event_type: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(e.event == event_type and e.data["pickup_id"] == pickup_id for e in stream.seen):
        assert time.monotonic() < deadline, (
            f"no {event_type} of {pickup_id}: {[e.event for e in stream.seen]}"
        )
        await asyncio.sleep(0.05)


async def test_the_console_stream_carries_only_the_dispatchers_stations_pickups(people: Personas) -> None:
    ours = await make_zone(people, couriers=1)
    theirs = await make_zone(people, couriers=1)
    await login_couriers(people, ours)
    (their_courier,) = await login_couriers(people, theirs)
    viewers = {
        "own": await station_dispatcher(people, ours.station),
        "other": await station_dispatcher(people, theirs.station),
        "admin": await people.user("admin"),
    }
    live = {name: SSEStream(api, path=CONSOLE) for name, api in viewers.items()}
    await asyncio.gather(*(s.__aenter__() for s in live.values()))
    try:
        starts = {name: s.seen[-1].id for name, s in live.items()}
        partner = people.partner()
        mine = (await partner.post("/api/v1/pickups", json=pickup_body(ours))).json()["id"]
        foreign = (await partner.post("/api/v1/pickups", json=pickup_body(theirs))).json()["id"]
        r = await their_courier.post(f"/api/v1/courier/pickups/{foreign}/accept", json={})
        assert r.status_code == 200, r.text
        nowhere_body = pickup_body()  # no zone matches: every dispatcher's, so that someone places it
        r = await partner.post("/api/v1/pickups", json=nowhere_body)
        assert r.status_code == 201 and r.json()["zone"] is None, r.text
        nowhere = r.json()["id"]
        # Streams deliver in id order: once the last pickup's event is in, everything before it is.
        for stream in live.values():
            await until_seen(stream, nowhere, "pickup.created")
    finally:
        await asyncio.gather(*(s.close() for s in live.values()))

    seen = {name: pickups_seen(s) for name, s in live.items()}
    assert {mine, nowhere} <= seen["own"] and foreign not in seen["own"]
    assert {foreign, nowhere} <= seen["other"] and mine not in seen["other"]
    assert {mine, foreign, nowhere} <= seen["admin"]
    # Which pickup changed, and nothing of the customer's: the console re-reads the row (scoped) itself.
    for stream in live.values():
        for event in stream.seen:
            if event.event != "ready":
                assert set(event.data) == {"id", "type", "pickup_id"}, event

    # Replayed from the log after the same points: the same events, none of the other station's.
    for name, api in viewers.items():
        async with SSEStream(api, path=CONSOLE, last_event_id=starts[name]) as replay:
            ready = next(i for i, e in enumerate(replay.seen) if e.event == "ready")
            replayed = replay.seen[:ready]
        ours_only = lambda events: [  # noqa: E731
            (e.id, e.event) for e in events if e.data["pickup_id"] in (mine, foreign, nowhere)
        ]
        assert ours_only(replayed) == ours_only(live[name].seen[1:]), name
        assert all(set(e.data) == {"id", "type", "pickup_id"} for e in replayed)
