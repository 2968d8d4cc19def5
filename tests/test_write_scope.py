"""A station dispatcher writes, as they read, only within their station subtree: zones and couriers'
zones of other stations are not theirs to create, edit, move, deactivate or staff. Admins act anywhere."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Api, Personas, make_zone, square
from tests.conftest import TestZone as Zone  # aliased: pytest would collect a Test* class
from tests.test_scope import station_dispatcher


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def zone_feature(
    code: str, station: str, name: str = "片区", lng: float = 113.5, lat: float = 28.5
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": square(lng, lat),
        "properties": {"code": code, "name": name, "station": station},
    }


async def zones_by_code(api: Api) -> dict[str, dict[str, Any]]:
    r = await api.get("/api/v1/zones")
    assert r.status_code == 200, r.text
    return {f["properties"]["code"]: f for f in r.json()["features"]}


async def two_stations(people: Personas) -> tuple[Zone, Zone, Api, Api]:
    ours = await make_zone(people, couriers=1)
    theirs = await make_zone(people, couriers=1)
    return ours, theirs, await station_dispatcher(people, ours.station), await people.user("admin")


async def test_a_dispatcher_cannot_edit_or_move_another_stations_zone(people: Personas) -> None:
    ours, theirs, dispatcher, admin = await two_stations(people)
    before = (await zones_by_code(admin))[theirs.code]

    # Rename it in place, and "move" it into our station: both refused, nothing changed.
    for station in (theirs.station, ours.station):
        r = await dispatcher.put("/api/v1/zones", json=collection(zone_feature(theirs.code, station, "改名")))
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "out_of_scope"
    assert (await zones_by_code(admin))[theirs.code] == before

    # Creating a zone in another station is refused too; in our own it works.
    new_code = f"W-{uuid.uuid4().hex[:6]}"
    r = await dispatcher.put("/api/v1/zones", json=collection(zone_feature(new_code, theirs.station)))
    assert r.status_code == 403, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["features[0].properties.station"]
    r = await dispatcher.put("/api/v1/zones", json=collection(zone_feature(new_code, ours.station)))
    assert r.status_code == 200, r.text
    assert new_code in await zones_by_code(admin)


async def test_replace_never_deactivates_another_stations_zones(people: Personas) -> None:
    ours, theirs, dispatcher, admin = await two_stations(people)
    kept = f"K-{uuid.uuid4().hex[:6]}"
    r = await dispatcher.put(
        "/api/v1/zones", params={"replace": "true"}, json=collection(zone_feature(kept, ours.station))
    )
    assert r.status_code == 200, r.text
    assert r.json()["deactivated"] == 1  # our old zone, and only it
    zones = await zones_by_code(admin)
    assert kept in zones and theirs.code in zones and ours.code not in zones


async def test_a_dispatcher_sees_only_their_stations_zones(people: Personas) -> None:
    ours, theirs, dispatcher, admin = await two_stations(people)
    mine = await zones_by_code(dispatcher)
    assert ours.code in mine and theirs.code not in mine
    everything = await zones_by_code(admin)
    assert ours.code in everything and theirs.code in everything


async def test_a_dispatcher_staffs_only_their_couriers_on_their_zones(people: Personas) -> None:
    ours, theirs, dispatcher, admin = await two_stations(people)
    their_courier, our_courier = theirs.courier_ids[0], ours.courier_ids[0]

    r = await dispatcher.put(f"/api/v1/couriers/{their_courier}/zones", json={"zones": [{"zone": ours.code}]})
    assert r.status_code == 404, r.text  # another station's courier is unknown to this dispatcher

    r = await dispatcher.put(
        f"/api/v1/couriers/{our_courier}/zones",
        json={"zones": [{"zone": ours.code}, {"zone": theirs.code, "role": "backup"}]},
    )
    assert r.status_code == 403, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["zones[1].zone"]

    r = await dispatcher.put(
        f"/api/v1/couriers/{our_courier}/zones", json={"zones": [{"zone": ours.code, "role": "backup"}]}
    )
    assert r.status_code == 200, r.text

    # The admin answers for everything.
    r = await admin.put(f"/api/v1/couriers/{their_courier}/zones", json={"zones": [{"zone": theirs.code}]})
    assert r.status_code == 200, r.text


async def test_the_console_upload_is_scoped_too_and_says_so_in_chinese(people: Personas) -> None:
    ours, theirs, dispatcher, admin = await two_stations(people)
    before = (await zones_by_code(admin))[theirs.code]
    import json

    r = await dispatcher.post(
        "/console/zones",
        data={
            "geojson": json.dumps(collection(zone_feature(theirs.code, ours.station, "抢过来"))),
            "datum": "wgs84",
        },
        headers={"HX-Request": "true", "x-csrftoken": await csrf_token(dispatcher)},
    )
    assert r.status_code == 422, r.text
    assert "您负责范围以外" in r.text
    assert (await zones_by_code(admin))[theirs.code] == before


async def csrf_token(api: Api) -> str:
    page = await api.get("/console")
    assert page.status_code == 200, page.text
    token = api.client.cookies.get("lanshou_csrf")
    assert token, "the console sets a CSRF cookie"
    return str(token)
