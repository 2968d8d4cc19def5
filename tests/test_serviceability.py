"""GET /api/v1/serviceability: whether Lanshou picks up at an address or a point, who would, how soon,
in which slots — or why not; and zones' opening hours, which the slots come from."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import Personas, make_zone, square

HOURS = {"opens": "09:00", "closes": "17:00", "slot_minutes": 60}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Shanghai"))


async def test_an_address_in_a_zone_is_served_with_its_station_time_limit_and_slots(people: Personas) -> None:
    street = f"服务街道{uuid.uuid4().hex[:6]}"
    zone = await make_zone(people, admin_areas=[street], sla_minutes=90, **HOURS)
    partner = people.partner()
    r = await partner.get(
        "/api/v1/serviceability",
        params={"province": "湖南省", "city": "长沙市", "district": "某区", "street": street},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["serviceable"] is True and body["code"] is None
    assert body["zone"]["code"] == zone.code and body["station"]["code"] == zone.station
    assert body["time_limit_minutes"] == 90
    slots = [(local(s["start"]), local(s["end"])) for s in body["slots"]]
    assert len(slots) == 6 and slots == sorted(slots)
    assert all(s.minute == 0 and 9 <= s.hour < 17 and e - s == timedelta(hours=1) for s, e in slots)
    assert local(body["slots"][0]["start"]) >= datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(seconds=5)


async def test_a_point_is_matched_in_the_datum_it_is_sent_in(people: Personas) -> None:
    zone = await make_zone(people)
    partner = people.partner()
    r = await partner.get(
        "/api/v1/serviceability", params={"lng": zone.lng, "lat": zone.lat, "datum": "wgs84"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["serviceable"] is True and r.json()["zone"]["code"] == zone.code
    # The same numbers read as GCJ-02 lie a few hundred metres away, outside the 400 m test zone.
    r = await partner.get("/api/v1/serviceability", params={"lng": zone.lng, "lat": zone.lat})
    assert r.status_code == 200, r.text
    assert r.json()["zone"] is None or r.json()["zone"]["code"] != zone.code


async def test_an_address_no_zone_covers_is_not_served_and_says_why(people: Personas) -> None:
    r = await people.partner().get(
        "/api/v1/serviceability",
        params={
            "province": "新疆维吾尔自治区",
            "city": "乌鲁木齐市",
            "district": f"无区{uuid.uuid4().hex[:6]}",
            "lng": 87.6,
            "lat": 43.8,
            "datum": "wgs84",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["serviceable"] is False and body["code"] == "no_zone" and body["message"]
    assert body["zone"] is None and body["slots"] == []


async def test_bad_questions_are_refused_with_the_field_at_fault(people: Personas) -> None:
    partner = people.partner()
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "district"),  # nothing to go on
        ({"lat": 28.2}, "lng"),  # half a point
        ({"lng": 2.35, "lat": 48.85, "datum": "wgs84"}, "lng"),  # Paris
    ]
    for params, field in cases:
        r = await partner.get("/api/v1/serviceability", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["code"] == "bad_parameter"
        assert field in [e["field"] for e in r.json()["errors"]], r.text
    r = await partner.get("/api/v1/serviceability", params={"lng": 113, "lat": 95})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "lat", r.text


async def test_zone_hours_are_checked_and_exported(people: Personas) -> None:
    admin = await people.user("admin")
    code = f"H-{uuid.uuid4().hex[:6]}"
    feature = {
        "type": "Feature",
        "geometry": square(113.9, 28.9),
        "properties": {
            "code": code,
            "name": "营业时间",
            "station": "ST-TX",
            "opens": "18:00",
            "closes": "08:00",
            "slot_minutes": 5,
        },
    }
    r = await admin.put("/api/v1/zones", json={"type": "FeatureCollection", "features": [feature]})
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} == {
        "features[0].properties.closes",
        "features[0].properties.slot_minutes",
    }
    feature["properties"].update(opens="07:30", closes="21:00", slot_minutes=90)
    r = await admin.put("/api/v1/zones", json={"type": "FeatureCollection", "features": [feature]})
    assert r.status_code == 200, r.text
    exported = {
        f["properties"]["code"]: f["properties"]
        for f in (await admin.get("/api/v1/zones")).json()["features"]
    }
    assert exported[code]["opens"] == "07:30" and exported[code]["slot_minutes"] == 90
