"""Batch create: up to 500 pickups, one result per item in order, partial success, nothing half written."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.conftest import Personas, ServerProcess, demo_server, login_couriers, make_zone, pickup_body


@pytest.fixture(scope="module")
def own_server() -> Iterator[tuple[ServerProcess, str]]:
    """A server and database of this module's own: its batches leave hundreds of pickups waiting for a
    dispatcher, which would push other tests' pickups off the first page of the console's queue."""
    with demo_server("lanshou-batch-") as (_, server, api_key):
        yield server, api_key


@pytest.fixture
async def people(own_server: tuple[ServerProcess, str]) -> AsyncIterator[Personas]:
    personas = Personas(*own_server)
    yield personas
    await personas.close()


async def pickups_with_note(partner: Any, note: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await partner.get("/api/v1/pickups", params=params)).json()
        found += [p for p in page["items"] if p["note"] == note]
        cursor = page["next_cursor"]
        if not cursor or len(page["items"]) < 200 or all(p["note"] != note for p in page["items"]):
            return found


async def test_a_batch_of_500_with_mixed_items_creates_the_good_ones_and_reports_each(
    people: Personas,
) -> None:
    partner = people.partner()
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    note = f"batch-{uuid.uuid4().hex}"
    taken = f"ORD-{uuid.uuid4().hex[:10]}"
    made = await partner.post("/api/v1/pickups", json=pickup_body(note="before", partner_order_no=taken))
    assert made.status_code == 201
    items: list[dict[str, Any]] = []
    expected: list[str] = []
    for i in range(500):
        if i % 50 == 3:
            items.append(pickup_body(note=note, sender={"name": "王五", "phone": "12345"}))  # bad phone
            expected.append("invalid")
        elif i % 50 == 7:
            body = pickup_body(note=note)
            del body["address"]["city"]  # missing field
            body["parcel_count"] = "two"  # wrong type
            items.append(body)
            expected.append("invalid")
        elif i % 50 == 11:
            items.append(pickup_body(note=note, partner_order_no=taken))  # taken before the batch
            expected.append("duplicate")
        else:
            items.append(pickup_body(zone if i % 5 == 0 else None, note=note, partner_order_no=f"{note}-{i}"))
            expected.append("created")
    items[499] = pickup_body(note=note, partner_order_no=f"{note}-0")  # the same as item 0
    expected[499] = "duplicate"

    started = time.perf_counter()
    r = await partner.post("/api/v1/pickups/batch", json={"items": items})
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    out = r.json()
    results = out["results"]
    assert [x["index"] for x in results] == list(range(500))
    assert [x["status"] for x in results] == expected
    assert (out["created"], out["duplicates"], out["invalid"]) == (
        expected.count("created"),
        expected.count("duplicate"),
        expected.count("invalid"),
    )
    assert {e["field"] for e in results[3]["errors"]} == {"items[3].sender.phone"}
    assert {e["field"] for e in results[7]["errors"]} == {"items[7].address.city", "items[7].parcel_count"}
    assert results[11]["id"] == made.json()["id"] and results[11]["code"] == "duplicate_partner_order_no"
    assert results[499]["id"] == results[0]["id"]
    created = {x["id"]: x["tracking_code"] for x in results if x["status"] == "created"}
    stored = await pickups_with_note(partner, note)
    assert {p["id"]: p["tracking_code"] for p in stored} == created  # nothing else written
    # Each created pickup is what a single create makes: its event, and an offer where a zone has couriers.
    one = (await partner.get(f"/api/v1/pickups/{results[0]['id']}")).json()
    assert one["status"] == "offered" and one["zone"]["code"] == zone.code
    assert [e["type"] for e in one["events"]][:2] == ["pickup.created", "pickup.offered"]
    assert (await partner.get(f"/api/v1/pickups/{results[1]['id']}")).json()["events"][0]["type"] == (
        "pickup.created"
    )
    assert elapsed < 10  # the benchmark measures; this only catches a pathological path


async def test_a_batch_item_gets_the_same_checks_as_a_single_create(people: Personas) -> None:
    partner = people.partner()
    past = {"start": "2020-01-01T10:00:00+08:00", "end": "2020-01-01T12:00:00+08:00"}
    body = pickup_body(window=past)
    single = await partner.post("/api/v1/pickups", json=body)
    batch = await partner.post("/api/v1/pickups/batch", json={"items": [body]})
    assert single.status_code == 422
    result = batch.json()["results"][0]
    assert result["status"] == "invalid" and result["code"] == single.json()["code"]
    assert [e["field"] for e in result["errors"]] == [
        f"items[0].{e['field']}" for e in single.json()["errors"]
    ]


async def test_a_batch_that_is_not_a_list_of_1_to_500_writes_nothing(people: Personas) -> None:
    partner = people.partner()
    note = f"batch-{uuid.uuid4().hex}"
    too_many = await partner.post("/api/v1/pickups/batch", json={"items": [pickup_body(note=note)] * 501})
    assert too_many.status_code == 422 and too_many.json()["code"] == "batch_too_large"
    assert too_many.json()["errors"][0]["field"] == "items"
    for bad in ({"items": {"a": 1}}, [pickup_body(note=note)], {"items": []}, {"items": [], "more": 1}):
        r = await partner.post("/api/v1/pickups/batch", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"][0]["field"] == "items"
    not_json = await partner.post(
        "/api/v1/pickups/batch", content=b'{"items": [', headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["code"] == "malformed_body"
    as_text = await partner.post(
        "/api/v1/pickups/batch", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert as_text.status_code == 415
    assert await pickups_with_note(partner, note) == []


async def test_a_replayed_batch_creates_nothing_more(people: Personas) -> None:
    partner = people.partner()
    note = f"batch-{uuid.uuid4().hex}"
    body = {"items": [pickup_body(note=note) for _ in range(20)]}
    headers = {"idempotency-key": str(uuid.uuid4())}
    first = await partner.post("/api/v1/pickups/batch", json=body, headers=headers)
    again = await partner.post("/api/v1/pickups/batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert len(await pickups_with_note(partner, note)) == 20
