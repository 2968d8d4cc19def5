"""Collecting at the door: pieces, weight, re-packed and a photo travel with the waybill to the partner;
the photo is an image the courier uploads first, and only the pickup's partner and staff can see it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from tests.conftest import Api, Personas, login_couriers, make_station, make_zone, new_waybill, pickup_body
from tests.conftest import TestZone as Zone  # aliased: pytest would collect a Test* class
from tests.test_scope import station_dispatcher

# The server reads an upload's type from its first bytes; the rest need not be a whole image here.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
PNG = b"\x89PNG\r\n\x1a\n" + bytes(500)
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(500)


async def held_pickup(people: Personas, courier: Api, zone: Zone, **over: Any) -> int:
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, **over))
    assert r.status_code == 201, r.text
    pickup_id = int(r.json()["id"])
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    return pickup_id


async def upload(courier: Api, pickup_id: int, body: bytes, content_type: str = "image/jpeg") -> Any:
    return await courier.post(
        f"/api/v1/courier/pickups/{pickup_id}/photos", content=body, headers={"content-type": content_type}
    )


async def courier_with_pickup(people: Personas, **over: Any) -> tuple[Zone, Api, int]:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    return zone, courier, await held_pickup(people, courier, zone, **over)


def assert_error(r: Any, status: int, code: str, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code, body
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field], body


async def test_the_partner_sees_pieces_weight_repacked_and_the_photo_with_the_waybill(
    people: Personas,
) -> None:
    _, courier, pickup_id = await courier_with_pickup(people, parcel_count=2)
    r = await upload(courier, pickup_id, JPEG)
    assert r.status_code == 201, r.text
    photo_id = r.json()["photo_id"]
    waybill = new_waybill()
    body = {"waybill_no": waybill, "pieces": 3, "weight_kg": 2.5, "repacked": True, "photo_id": photo_id}
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/collect", json=body)
    assert r.status_code == 200, r.text

    partner = people.partner()
    seen = (await partner.get(f"/api/v1/pickups/{pickup_id}")).json()
    assert seen["waybill_no"] == waybill and seen["parcel_count"] == 2  # declared stays as declared
    url = f"/api/v1/pickups/{pickup_id}/photos/{photo_id}"
    assert seen["collection"] == {
        "pieces": 3,
        "weight_kg": 2.5,
        "repacked": True,
        "photo_id": photo_id,
        "photo_url": url,
    }
    # The event the partner's webhook carries says the same (webhooks send these events' data).
    events = {e["type"]: e for e in seen["events"]}
    assert events["pickup.collected"]["data"] == {
        "waybill_no": waybill,
        "pieces": 3,
        "weight_kg": 2.5,
        "repacked": True,
        "photo_id": photo_id,
    }
    assert events["pickup.photo_added"]["data"] == {
        "photo_id": photo_id,
        "content_type": "image/jpeg",
        "size": len(JPEG),
    }
    r = await partner.get(url)
    assert r.status_code == 200 and r.content == JPEG
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_the_photo_is_a_file_under_the_photo_dir_named_by_the_server(people: Personas) -> None:
    _, courier, pickup_id = await courier_with_pickup(people)
    r = await upload(courier, pickup_id, PNG, "image/png")
    assert r.status_code == 201, r.text
    photos = Path(people.server.db.tmp) / "photos"  # LANSHOU_DATA_DIR/photos by default
    stored = [p for p in photos.rglob("*.png") if p.read_bytes() == PNG]
    assert len(stored) == 1 and re.fullmatch(r"[0-9a-f]{32}\.png", stored[0].name), stored
    assert hashlib.sha256(stored[0].read_bytes()).hexdigest() == hashlib.sha256(PNG).hexdigest()


async def test_pieces_default_to_the_parcel_count_and_a_pickup_is_not_repacked_by_default(
    people: Personas,
) -> None:
    _, courier, pickup_id = await courier_with_pickup(people, parcel_count=4)
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/collect", json={"waybill_no": new_waybill()})
    assert r.status_code == 200, r.text
    assert r.json()["collection"] == {
        "pieces": 4,
        "weight_kg": None,
        "repacked": False,
        "photo_id": None,
        "photo_url": None,
    }


async def test_a_pickup_not_collected_has_no_collection(people: Personas) -> None:
    _, _, pickup_id = await courier_with_pickup(people)
    assert (await people.partner().get(f"/api/v1/pickups/{pickup_id}")).json()["collection"] is None


async def test_another_partner_and_other_stations_staff_get_not_found(people: Personas) -> None:
    zone, courier, pickup_id = await courier_with_pickup(people)
    photo_id = (await upload(courier, pickup_id, WEBP, "image/webp")).json()["photo_id"]
    url = f"/api/v1/pickups/{pickup_id}/photos/{photo_id}"
    key = re.search(
        r"lsk_[A-Za-z0-9_\-]+", people.server.db.cli("partner", "create", "--code", f"p{pickup_id}")
    )
    assert key
    assert_error(await people.partner(key.group(0)).get(url), 404, "not_found")
    assert_error(
        await (await station_dispatcher(people, await make_station(people))).get(url), 404, "not_found"
    )
    # The pickup's own station's dispatcher and the admin see it; the courier who took it does not.
    for staff in (await station_dispatcher(people, zone.station), await people.user("admin")):
        r = await staff.get(url)
        assert r.status_code == 200 and r.content == WEBP and r.headers["content-type"] == "image/webp"
    assert (await courier.get(url)).status_code == 403
    # A photo id of another pickup is not found under this one.
    _, _, other = await courier_with_pickup(people)
    assert_error(await people.partner().get(f"/api/v1/pickups/{other}/photos/{photo_id}"), 404, "not_found")


async def test_a_body_that_is_not_an_image_of_ours_is_refused(people: Personas) -> None:
    _, courier, pickup_id = await courier_with_pickup(people)
    # The header is not trusted: HTML or a GIF labelled JPEG is no JPEG.
    for body in (b"<html><script>alert(1)</script></html>", b"GIF89a" + bytes(100), b""):
        assert_error(await upload(courier, pickup_id, body), 422, "validation_error", "body")
    for content_type in ("image/gif", "text/html", "application/octet-stream"):
        assert_error(await upload(courier, pickup_id, JPEG, content_type), 415, "unsupported_media_type")
    # A form post is what a cross-site page could send with the courier's cookie: refused before anything.
    assert (await upload(courier, pickup_id, JPEG, "multipart/form-data; boundary=x")).status_code == 403
    assert (await people.partner().get(f"/api/v1/pickups/{pickup_id}")).json()["events"][-1]["type"] == (
        "pickup.accepted"
    )


async def test_a_photo_over_one_megabyte_is_refused(people: Personas) -> None:
    _, courier, pickup_id = await courier_with_pickup(people)
    r = await upload(courier, pickup_id, b"\xff\xd8\xff" + bytes(1_048_576))
    assert_error(r, 413, "body_too_large", "body")
    assert (await upload(courier, pickup_id, b"\xff\xd8\xff" + bytes(1_048_573))).status_code == 201


async def test_only_the_courier_holding_the_pickup_uploads_while_it_is_open(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    alice, bob = await login_couriers(people, zone)
    pickup_id = await held_pickup(people, alice, zone)
    assert_error(await upload(bob, pickup_id, JPEG), 404, "not_found")
    assert_error(await upload(alice, 9_000_000_000, JPEG), 404, "not_found")
    r = await alice.post(f"/api/v1/courier/pickups/{pickup_id}/collect", json={"waybill_no": new_waybill()})
    assert r.status_code == 200, r.text
    assert_error(await upload(alice, pickup_id, JPEG), 409, "illegal_transition")


async def test_collect_refuses_a_photo_of_another_pickup_or_courier(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    alice, bob = await login_couriers(people, zone)
    mine, other = await held_pickup(people, alice, zone), await held_pickup(people, alice, zone)
    bobs = await held_pickup(people, bob, zone)
    other_photo = (await upload(alice, other, JPEG)).json()["photo_id"]
    bobs_photo = (await upload(bob, bobs, JPEG)).json()["photo_id"]
    for photo_id in (other_photo, bobs_photo, 9_000_000_000):
        r = await alice.post(
            f"/api/v1/courier/pickups/{mine}/collect",
            json={"waybill_no": new_waybill(), "photo_id": photo_id},
        )
        assert_error(r, 422, "validation_error", "photo_id")
    seen = (await people.partner().get(f"/api/v1/pickups/{mine}")).json()
    assert seen["status"] == "accepted" and seen["waybill_no"] is None


async def test_pieces_and_weight_out_of_range_are_refused_with_their_field(people: Personas) -> None:
    _, courier, pickup_id = await courier_with_pickup(people)
    url = f"/api/v1/courier/pickups/{pickup_id}/collect"
    for field, value in (
        ("pieces", 0),
        ("pieces", 1000),
        ("pieces", 1.5),
        ("weight_kg", 0),
        ("weight_kg", 1000.5),
        ("weight_kg", -1),
        ("repacked", "yes"),
        ("photo_id", 0),
    ):
        r = await courier.post(url, json={"waybill_no": new_waybill(), field: value})
        assert_error(r, 422, "validation_error", field)
    r = await courier.post(url, json={"waybill_no": new_waybill(), "pieces": 999, "weight_kg": 1000})
    assert r.status_code == 200, r.text


async def test_a_waybill_of_no_known_shape_is_refused_and_other_carriers_pass(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    first, second = await held_pickup(people, courier, zone), await held_pickup(people, courier, zone)
    for bad in ("ORDER20261125", "13912345678", "AB12345678"):
        r = await courier.post(f"/api/v1/courier/pickups/{first}/collect", json={"waybill_no": bad})
        assert_error(r, 422, "validation_error", "waybill_no")
        assert "S10" in r.json()["errors"][0]["message"]
    serial = new_waybill()[2:10]
    for pickup_id, good in ((first, f"SF{serial}12345"), (second, f"JT{serial}12345")):
        r = await courier.post(
            f"/api/v1/courier/pickups/{pickup_id}/collect", json={"waybill_no": good.lower()}
        )
        assert r.status_code == 200 and r.json()["waybill_no"] == good, r.text
