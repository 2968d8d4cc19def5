"""The API checks a pickup's address against GB/T 2260 (server/domain/divisions.py): an unknown name or
a district that is not in the city is a 422 naming the field, and nothing is written."""

from __future__ import annotations

import pytest

from tests.conftest import Personas, SSEStream, pickup_body


@pytest.mark.parametrize(
    ("address", "fields"),
    [
        ({"province": "湖南", "city": "长沙市", "district": "开福区"}, ["address.province"]),
        ({"province": "湖南省", "city": "武汉市", "district": "江岸区"}, ["address.city"]),
        ({"province": "湖南省", "city": "长沙市", "district": "朝阳区"}, ["address.district"]),
        (
            {"province": "湖南省", "city": "长沙市", "district": "开福区", "street": "坡子街街道"},
            ["address.street"],
        ),
    ],
)
async def test_an_unknown_combination_is_refused_naming_the_field(
    people: Personas, address: dict[str, str], fields: list[str]
) -> None:
    body = pickup_body()
    body["address"].update({"street": "", **address})
    r = await people.partner().post("/api/v1/pickups", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    assert [e["field"] for e in r.json()["errors"]] == fields


async def test_the_address_is_reported_with_the_other_problems_at_once(people: Personas) -> None:
    body = pickup_body(window={"start": "2026-01-01T08:00:00+08:00", "end": "2026-01-01T10:00:00+08:00"})
    body["address"].update(district="朝阳区")
    r = await people.partner().post("/api/v1/pickups", json=body)
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} == {"address.district", "window.end"}


async def test_a_refused_address_writes_nothing(people: Personas) -> None:
    body = pickup_body()
    body["address"].update(district="测试区")
    console = await people.user("dispatch")
    async with SSEStream(console, path="/console/events") as stream:
        r = await people.partner().post("/api/v1/pickups", json=body)
        assert r.status_code == 422
        await stream.expect_none("pickup.created")


async def test_a_municipality_may_be_written_as_its_own_city(people: Personas) -> None:
    body = pickup_body()
    body["address"].update(province="北京市", city="北京市", district="朝阳区", street="")
    r = await people.partner().post("/api/v1/pickups", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["address"]["city"] == "北京市"
