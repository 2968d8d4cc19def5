"""Bad input gets a 4xx with a JSON body naming the field and the problem, never a 500, and leaves
nothing half-written: each test sends one kind of bad request and then checks that nothing changed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import Api, Personas, make_zone, pickup_body


def order_no() -> str:
    return f"BAD-{uuid.uuid4().hex[:10]}"


async def newest_pickup_id(shop: Api) -> int | None:
    r = await shop.get("/api/v1/pickups", params={"limit": 1})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    return items[0]["id"] if items else None


async def create_refused(shop: Api, **request: Any) -> httpx.Response:
    """POST /api/v1/pickups, checking that the partner's newest pickup is the same before and after."""
    before = await newest_pickup_id(shop)
    r = await shop.post("/api/v1/pickups", **request)
    assert await newest_pickup_id(shop) == before, f"a pickup was written: {r.status_code} {r.text}"
    return r


def assert_error(r: httpx.Response, status: int, code: str, *fields: str) -> dict[str, Any]:
    """The response is our JSON error with this status and code, naming exactly these fields."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["code"] == code, body
    assert body["message"], body
    assert [e["field"] for e in body["errors"]] == list(fields), body
    assert all(e["message"] for e in body["errors"]), body
    return body


# -- POST /api/v1/pickups --------------------------------------------------------------------------------


async def test_malformed_json_is_a_400_about_the_body(people: Personas) -> None:
    shop = people.partner()
    r = await create_refused(
        shop,
        content=b'{"sender": {"name": "\xe6\x9d\x8e\xe5\x9b\x9b", "phone": "139',
        headers={"content-type": "application/json"},
    )
    body = assert_error(r, 400, "malformed_body", "body")
    assert "JSON" in body["message"]


async def test_a_string_where_a_number_belongs_names_the_field(people: Personas) -> None:
    r = await create_refused(
        people.partner(), json=pickup_body(parcel_count="two", partner_order_no=order_no())
    )
    body = assert_error(r, 422, "validation_error", "parcel_count")
    assert "int" in body["errors"][0]["message"]


async def test_a_nested_wrong_type_names_the_dotted_path(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no())
    body["address"].update(lat=[28.1], lng=112.9)
    r = await create_refused(people.partner(), json=body)
    assert_error(r, 422, "validation_error", "address.lat")


async def test_a_landline_is_not_a_mainland_mobile_number(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no())
    body["sender"]["phone"] = "0731-84561234"
    r = await create_refused(people.partner(), json=body)
    body = assert_error(r, 422, "validation_error", "sender.phone")
    assert "mobile" in body["errors"][0]["message"]


async def test_a_missing_field_is_named_by_its_full_path(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no())
    del body["address"]["city"]
    r = await create_refused(people.partner(), json=body)
    body = assert_error(r, 422, "validation_error", "address.city")
    assert "required" in body["errors"][0]["message"]


async def test_a_missing_top_level_field_is_named(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no())
    del body["sender"]
    r = await create_refused(people.partner(), json=body)
    assert_error(r, 422, "validation_error", "sender")


async def test_an_unknown_datum_is_refused(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no())
    body["address"].update(lat=28.19, lng=112.97, datum="baidu")
    r = await create_refused(people.partner(), json=body)
    assert_error(r, 422, "validation_error", "address.datum")


async def test_lat_without_lng_is_refused(people: Personas) -> None:
    body = pickup_body(partner_order_no=order_no())
    body["address"]["lat"] = 28.19
    r = await create_refused(people.partner(), json=body)
    body = assert_error(r, 422, "validation_error", "address.lng")  # the one that is missing
    assert "lng" in body["errors"][0]["message"]


async def test_a_window_that_ends_before_it_starts_is_refused(people: Personas) -> None:
    window = {"start": "2030-05-01T14:00:00+08:00", "end": "2030-05-01T13:00:00+08:00"}
    r = await create_refused(people.partner(), json=pickup_body(window=window, partner_order_no=order_no()))
    assert_error(r, 422, "validation_error", "window.end")


async def test_a_window_without_a_utc_offset_is_refused(people: Personas) -> None:
    # "14:00" in which city? A naive time would be read as UTC and send the courier 8 hours early.
    window = {"start": "2030-05-01T14:00:00", "end": "2030-05-01T16:00:00"}
    r = await create_refused(people.partner(), json=pickup_body(window=window, partner_order_no=order_no()))
    body = assert_error(r, 422, "validation_error", "window.start", "window.end")
    assert all("offset" in e["message"] for e in body["errors"])


async def test_zero_parcels_is_refused(people: Personas) -> None:
    r = await create_refused(people.partner(), json=pickup_body(parcel_count=0, partner_order_no=order_no()))
    body = assert_error(r, 422, "validation_error", "parcel_count")
    assert ">= 1" in body["errors"][0]["message"]


async def test_an_unknown_field_is_refused_and_named(people: Personas) -> None:
    # A typo like "parcels" for "parcel_count" must not be silently dropped.
    r = await create_refused(people.partner(), json=pickup_body(parcels=3, partner_order_no=order_no()))
    body = assert_error(r, 422, "validation_error", "parcels")
    assert body["errors"][0]["message"] == "unknown field"

    nested = pickup_body(partner_order_no=order_no())
    nested["address"]["floor"] = 3
    r = await create_refused(people.partner(), json=nested)
    assert_error(r, 422, "validation_error", "address.floor")


async def test_a_json_array_body_is_refused(people: Personas) -> None:
    r = await create_refused(people.partner(), json=[pickup_body(partner_order_no=order_no())])
    body = assert_error(r, 422, "validation_error", "body")
    assert "object" in body["errors"][0]["message"]


async def test_an_empty_body_is_a_400_about_the_body(people: Personas) -> None:
    r = await create_refused(people.partner(), content=b"", headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed_body", "body")


async def test_a_text_plain_body_is_415_even_when_it_is_json(people: Personas) -> None:
    # text/plain is a "simple" cross-site request a browser sends without asking: never take it as JSON.
    raw = httpx.Request("POST", "/", json=pickup_body(partner_order_no=order_no())).content
    r = await create_refused(people.partner(), content=raw, headers={"content-type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


async def test_a_form_body_from_a_partner_is_415(people: Personas) -> None:
    r = await create_refused(people.partner(), data={"sender": "李四", "partner_order_no": order_no()})
    assert_error(r, 415, "unsupported_media_type")


async def test_a_body_over_one_mebibyte_is_413(people: Personas) -> None:
    big = pickup_body(partner_order_no=order_no(), note="字" * 400_000)  # 1.2 MB in UTF-8
    r = await create_refused(people.partner(), json=big)
    body = assert_error(r, 413, "body_too_large", "body")
    assert "1048576" in body["message"]

    async def chunks() -> Any:
        # No Content-Length: the server must count what arrives, not trust a header.
        raw = httpx.Request("POST", "/", json=big).content
        for i in range(0, len(raw), 64 * 1024):
            yield raw[i : i + 64 * 1024]

    r = await create_refused(people.partner(), content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "body_too_large", "body")


# -- duplicates --------------------------------------------------------------------------------------------


async def test_a_repeated_partner_order_no_is_409_with_the_existing_pickup(people: Personas) -> None:
    shop = people.partner()
    number = order_no()
    r = await shop.post("/api/v1/pickups", json=pickup_body(partner_order_no=number))
    assert r.status_code == 201, r.text
    first = r.json()

    r = await create_refused(shop, json=pickup_body(partner_order_no=number, parcel_count=2))
    body = assert_error(r, 409, "duplicate_partner_order_no", "partner_order_no")
    assert body["pickup_id"] == first["id"]


async def test_ten_simultaneous_creates_with_one_order_no_make_one_pickup(people: Personas) -> None:
    shops = [people.partner() for _ in range(10)]  # ten connections, as a retrying partner would open
    number = order_no()
    results = await asyncio.gather(
        *(s.post("/api/v1/pickups", json=pickup_body(partner_order_no=number)) for s in shops)
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 9, [r.text for r in results]
    created = next(r.json() for r in results if r.status_code == 201)
    for r in results:
        if r.status_code == 409:
            assert_error(r, 409, "duplicate_partner_order_no", "partner_order_no")
            assert r.json()["pickup_id"] == created["id"]
    r = await shops[0].get("/api/v1/pickups", params={"limit": 20})
    assert [p["id"] for p in r.json()["items"] if p["partner_order_no"] == number] == [created["id"]]


# -- GET /api/v1/pickups -----------------------------------------------------------------------------------


async def test_a_cursor_this_api_never_gave_out_is_400(people: Personas) -> None:
    r = await people.partner().get("/api/v1/pickups", params={"cursor": "not-a-cursor"})
    assert_error(r, 400, "bad_cursor", "cursor")


async def test_an_unknown_status_filter_is_400(people: Personas) -> None:
    r = await people.partner().get("/api/v1/pickups", params={"status": "lost_in_space"})
    body = assert_error(r, 400, "bad_parameter", "status")
    assert "lost_in_space" in body["errors"][0]["message"]


async def test_a_limit_out_of_range_is_400(people: Personas) -> None:
    r = await people.partner().get("/api/v1/pickups", params={"limit": 0})
    assert_error(r, 400, "bad_parameter", "limit")


# -- the courier's actions ---------------------------------------------------------------------------------


@asynccontextmanager
async def held_pickup(people: Personas) -> AsyncIterator[tuple[Api, Api, int]]:
    """A partner (the shop) and a courier (Wang) holding one of its pickups, accepted."""
    zone = await make_zone(people, couriers=1)
    wang = await people.user(zone.couriers[0], "pw-" + zone.couriers[0].split("-")[-1])
    r = await wang.post("/api/v1/courier/duty", json={"on_duty": True})
    assert r.status_code == 200, r.text
    shop = people.partner()
    r = await shop.post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    pickup_id = r.json()["id"]
    r = await wang.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    try:
        yield shop, wang, pickup_id
    finally:
        # Off duty again: a courier left on duty would be offered other tests' pickups in the station.
        await wang.post("/api/v1/courier/duty", json={"on_duty": False})


async def test_a_waybill_with_a_wrong_s10_check_digit_is_refused_at_collect(people: Personas) -> None:
    async with held_pickup(people) as (shop, wang, pickup_id):
        before = (await shop.get(f"/api/v1/pickups/{pickup_id}")).json()

        r = await wang.post(
            f"/api/v1/courier/pickups/{pickup_id}/collect", json={"waybill_no": "EA123456784CN"}
        )
        body = assert_error(r, 422, "validation_error", "waybill_no")
        assert "check digit" in body["errors"][0]["message"]

        after = (await shop.get(f"/api/v1/pickups/{pickup_id}")).json()
        assert after["status"] == "accepted"
        assert after["waybill_no"] is None
        assert after["events"] == before["events"]


async def test_an_unknown_failure_reason_is_refused(people: Personas) -> None:
    async with held_pickup(people) as (shop, wang, pickup_id):
        before = (await shop.get(f"/api/v1/pickups/{pickup_id}")).json()

        r = await wang.post(f"/api/v1/courier/pickups/{pickup_id}/fail", json={"reason": "too_tired"})
        body = assert_error(r, 422, "validation_error", "reason")
        assert "customer_absent" in body["errors"][0]["message"]  # tells the app what it may send

        after = (await shop.get(f"/api/v1/pickups/{pickup_id}")).json()
        assert after["status"] == "accepted"
        assert after["failure_reason"] is None
        assert after["events"] == before["events"]


# -- unknown zones and couriers in set-up --------------------------------------------------------------------


async def test_setting_an_unknown_zone_on_a_courier_changes_nothing(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    dispatcher = await people.user("dispatch")
    r = await dispatcher.put(
        f"/api/v1/couriers/{zone.courier_ids[0]}/zones",
        json={"zones": [{"zone": zone.code}, {"zone": "NO-SUCH-ZONE"}]},
    )
    body = assert_error(r, 422, "validation_error", "zones[1].zone")
    assert "NO-SUCH-ZONE" in body["errors"][0]["message"]

    wang = await people.user(zone.couriers[0], "pw-" + zone.couriers[0].split("-")[-1])
    r = await wang.post("/api/v1/courier/duty", json={"on_duty": False})  # answers with Wang's zones
    assert r.json()["zones"] == [zone.code]


async def test_setting_zones_on_an_unknown_courier_is_404(people: Personas) -> None:
    zone = await make_zone(people)
    dispatcher = await people.user("dispatch")
    r = await dispatcher.put("/api/v1/couriers/987654321/zones", json={"zones": [{"zone": zone.code}]})
    assert_error(r, 404, "not_found", "courier_id")


async def test_creating_a_courier_in_an_unknown_zone_creates_no_user(people: Personas) -> None:
    admin = await people.user("admin")
    username = f"zhao-{uuid.uuid4().hex[:6]}"
    user = {"username": username, "password": "pw-zhao", "role": "courier"}
    r = await admin.post("/api/v1/users", json={**user, "zones": [{"zone": "NO-SUCH-ZONE"}]})
    assert_error(r, 422, "validation_error", "zones[0].zone")

    r = await people.anonymous().post("/auth/login", json={"username": username, "password": "pw-zhao"})
    assert r.status_code == 401
    r = await admin.post("/api/v1/users", json=user)  # the name was not taken by a half-made user
    assert r.status_code == 201, r.text


async def test_set_up_bodies_get_the_same_field_paths(people: Personas) -> None:
    admin = await people.user("admin")
    r = await admin.post("/api/v1/users", json={"username": "qian", "role": "courier"})
    assert_error(r, 422, "validation_error", "password")
    r = await admin.post("/api/v1/users", content=b"", headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed_body", "body")
