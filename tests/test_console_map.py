"""The console map's data over HTTP: pickups and couriers where they are, in the tiles' datum, only the
dispatcher's own stations'; a zone drawn on the map; the tile datum setting checked at start."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.domain.geo import from_wgs84, to_wgs84
from server.settings import SettingsError, load_settings
from tests.conftest import (
    Api,
    Database,
    Personas,
    ServerProcess,
    demo_server,
    free_port,
    login_couriers,
    make_station,
    make_zone,
    pickup_body,
    square,
)


async def csrf(api: Api) -> dict[str, str]:
    await api.get("/health")  # sets the CSRF cookie the console's writes need
    return {"x-csrftoken": api.client.cookies.get("lanshou_csrf") or ""}


async def dispatcher_of(people: Personas, station: str) -> Api:
    admin = await people.admin()
    username = f"d-{uuid.uuid4().hex[:8]}"
    body = {"username": username, "password": "pw-map-123", "role": "dispatcher", "station": station}
    r = await admin.post("/api/v1/users", json=body)
    assert r.status_code == 201, r.text
    return await people.user(username, "pw-map-123")


async def test_the_map_shows_a_located_pickup_and_an_on_duty_courier_where_they_are(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    r = await courier.post("/api/v1/courier/heartbeat", json={"lng": zone.lng, "lat": zone.lat - 0.001})
    assert r.status_code == 200, r.text
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    created = r.json()
    dispatcher = await people.user("dispatch")

    r = await dispatcher.get("/console/map/pickups")
    assert r.status_code == 200, r.text
    assert r.json()["datum"] == "wgs84"
    (pickup,) = [p for p in r.json()["pickups"] if p["id"] == created["id"]]
    assert pickup == {
        "id": created["id"],
        "tracking_code": created["tracking_code"],
        "status": "offered",
        "section": "offered",
        "zone_code": zone.code,
        "lat": pytest.approx(zone.lat),
        "lng": pytest.approx(zone.lng),
    }

    r = await dispatcher.get("/console/map/couriers")
    assert r.status_code == 200, r.text
    (mine,) = [c for c in r.json()["couriers"] if c["id"] == zone.courier_ids[0]]
    assert mine["on_duty"] is True and mine["stale"] is False
    assert (mine["lat"], mine["lng"]) == (pytest.approx(zone.lat - 0.001), pytest.approx(zone.lng))
    assert mine["name"] == zone.couriers[0]  # no display name given: the username


async def test_a_cancelled_pickup_leaves_the_map_and_a_courier_without_a_position_is_not_on_it(
    people: Personas,
) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)  # on duty, but no heartbeat with a position yet
    partner = people.partner()
    created = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
    no_position = pickup_body()  # matched to no zone by coordinates: none given
    unplaced = (await partner.post("/api/v1/pickups", json=no_position)).json()
    dispatcher = await people.user("dispatch")

    asked = f"{created['id']},{unplaced['id']}"
    r = await dispatcher.get("/console/map/pickups", params={"ids": asked})
    assert [p["id"] for p in r.json()["pickups"]] == [created["id"]]
    r = await partner.post(f"/api/v1/pickups/{created['id']}/cancel", json={"reason": "map test"})
    assert r.status_code == 200, r.text
    r = await dispatcher.get("/console/map/pickups", params={"ids": asked})
    assert r.json()["pickups"] == []
    r = await dispatcher.get("/console/map/couriers")
    assert zone.courier_ids[0] not in {c["id"] for c in r.json()["couriers"]}


async def test_a_station_dispatcher_sees_only_their_stations_on_the_map(people: Personas) -> None:
    mine, theirs = await make_zone(people, couriers=1), await make_zone(people, couriers=1)
    for zone in (mine, theirs):
        (courier,) = await login_couriers(people, zone)
        await courier.post("/api/v1/courier/heartbeat", json={"lng": zone.lng, "lat": zone.lat})
    partner = people.partner()
    ids = {
        z.code: (await partner.post("/api/v1/pickups", json=pickup_body(z))).json()["id"]
        for z in (mine, theirs)
    }
    dispatcher = await dispatcher_of(people, mine.station)

    pickups = {p["id"] for p in (await dispatcher.get("/console/map/pickups")).json()["pickups"]}
    assert ids[mine.code] in pickups and ids[theirs.code] not in pickups
    asked = await dispatcher.get(
        "/console/map/pickups", params={"ids": f"{ids[mine.code]},{ids[theirs.code]}"}
    )
    assert [p["id"] for p in asked.json()["pickups"]] == [ids[mine.code]]
    couriers = {c["id"] for c in (await dispatcher.get("/console/map/couriers")).json()["couriers"]}
    assert mine.courier_ids[0] in couriers and theirs.courier_ids[0] not in couriers
    zones = {f["properties"]["code"] for f in (await dispatcher.get("/console/map/zones")).json()["features"]}
    assert mine.code in zones and theirs.code not in zones


async def test_a_zone_drawn_on_the_map_is_created_and_a_taken_code_is_refused(people: Personas) -> None:
    station = await make_station(people)
    dispatcher = await people.user("dispatch")
    headers = await csrf(dispatcher)
    code = f"DRAW-{uuid.uuid4().hex[:6]}"
    body: dict[str, Any] = {
        "code": code,
        "name": "画出的区",
        "station": station,
        "dispatch_mode": "assign",
        "geometry": square(113.30, 28.30, 0.01),
    }
    r = await dispatcher.post("/console/map/zones", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json() == {"code": code, "summary": {"created": 1, "updated": 0, "deactivated": 0}}
    zones = (await dispatcher.get("/api/v1/zones")).json()["features"]
    (stored,) = [f for f in zones if f["properties"]["code"] == code]
    assert stored["properties"]["station"] == station and stored["properties"]["dispatch_mode"] == "assign"
    assert stored["geometry"]["coordinates"][0][0] == [113.30, 28.30]

    # The same code again: refused, in Chinese, and the first zone keeps its shape.
    again = body | {"geometry": square(113.35, 28.35, 0.01)}
    r = await dispatcher.post("/console/map/zones", json=again, headers=headers)
    assert r.status_code == 409, r.text
    assert r.json()["errors"] == [{"field": "code", "message": f"区域编码 {code} 已被使用，请换一个"}]
    r = await dispatcher.post("/console/map/zones?lang=en", json=again, headers=headers)
    assert "already taken" in r.json()["errors"][0]["message"]

    # A bow tie: the geometry check's reason, in the page language.
    bow = {
        "type": "Polygon",
        "coordinates": [[[113.4, 28.4], [113.41, 28.41], [113.41, 28.4], [113.4, 28.41], [113.4, 28.4]]],
    }
    r = await dispatcher.post(
        "/console/map/zones", json=body | {"code": code + "-b", "geometry": bow}, headers=headers
    )
    assert r.status_code == 422, r.text
    assert "自相交" in r.json()["errors"][0]["message"]
    r = await dispatcher.post(
        "/console/map/zones", json=body | {"code": code + "-c", "station": ""}, headers=headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"].endswith("station")
    # Without the CSRF token the console's write is refused.
    r = await dispatcher.post("/console/map/zones", json=body | {"code": code + "-d"})
    assert r.status_code == 403, r.text


def test_the_tile_datum_setting_takes_wgs84_or_gcj02_only(tmp_path: Path) -> None:
    env = {"LANSHOU_DATA_DIR": str(tmp_path), "LANSHOU_SECRET_KEY": "k" * 40}
    assert load_settings(env).map_tile_datum == "wgs84"
    assert load_settings(env | {"LANSHOU_MAP_TILE_DATUM": " GCJ02 "}).map_tile_datum == "gcj02"
    with pytest.raises(SettingsError, match="LANSHOU_MAP_TILE_DATUM"):
        load_settings(env | {"LANSHOU_MAP_TILE_DATUM": "bd09"})


def test_the_server_refuses_to_start_with_an_unknown_tile_datum(db: Database) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", str(free_port())],
        env=db.env(LANSHOU_MAP_TILE_DATUM="baidu"),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert b"LANSHOU_MAP_TILE_DATUM" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def gcj02_server() -> Iterator[tuple[ServerProcess, str]]:
    """A server of its own whose map tiles are GCJ-02 (made outside the event loop: on PostgreSQL the
    database is created with asyncio.run)."""
    with demo_server("lanshou-map-", LANSHOU_MAP_TILE_DATUM="gcj02") as (_, server, api_key):
        yield server, api_key


async def test_with_gcj02_tiles_the_map_speaks_gcj02_both_ways(
    gcj02_server: tuple[ServerProcess, str],
) -> None:
    server, api_key = gcj02_server
    people = Personas(server, api_key)
    try:
        zone = await make_zone(people, couriers=1)
        (courier,) = await login_couriers(people, zone)
        await courier.post("/api/v1/courier/heartbeat", json={"lng": zone.lng, "lat": zone.lat})
        created = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
        dispatcher = await people.user("dispatch")
        shifted = from_wgs84(zone.lng, zone.lat, "gcj02")
        assert abs(shifted[0] - zone.lng) > 0.003  # a few hundred metres in Changsha

        data = (await dispatcher.get("/console/map/pickups", params={"ids": str(created["id"])})).json()
        assert data["datum"] == "gcj02"
        (pickup,) = data["pickups"]
        assert (pickup["lng"], pickup["lat"]) == (pytest.approx(shifted[0]), pytest.approx(shifted[1]))
        couriers = (await dispatcher.get("/console/map/couriers")).json()["couriers"]
        (mine,) = [c for c in couriers if c["id"] == zone.courier_ids[0]]
        assert (mine["lng"], mine["lat"]) == (pytest.approx(shifted[0]), pytest.approx(shifted[1]))
        features = (await dispatcher.get("/console/map/zones")).json()["features"]
        (drawn_zone,) = [f for f in features if f["properties"]["code"] == zone.code]
        corner = drawn_zone["geometry"]["coordinates"][0][0]
        expected = from_wgs84(zone.lng - 0.002, zone.lat - 0.002, "gcj02")  # make_zone's south-west corner
        assert corner == [pytest.approx(expected[0], abs=1e-6), pytest.approx(expected[1], abs=1e-6)]

        # A shape drawn on GCJ-02 tiles is stored in WGS-84.
        code = f"GCJ-{uuid.uuid4().hex[:6]}"
        body = {
            "code": code,
            "name": "火星区",
            "station": zone.station,
            "geometry": square(113.5, 28.5, 0.01),
        }
        r = await dispatcher.post("/console/map/zones", json=body, headers=await csrf(dispatcher))
        assert r.status_code == 201, r.text
        zones = (await dispatcher.get("/api/v1/zones")).json()["features"]
        (stored,) = [f for f in zones if f["properties"]["code"] == code]
        wgs = to_wgs84(113.5, 28.5, "gcj02")
        first = stored["geometry"]["coordinates"][0][0]
        assert first == [pytest.approx(wgs[0], abs=1e-6), pytest.approx(wgs[1], abs=1e-6)]
    finally:
        await people.close()
