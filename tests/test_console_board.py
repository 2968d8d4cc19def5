"""The console's board over HTTP: search by every key, each filter, paging with exact totals, failed
pickups with their reason, a dispatcher's assignment told apart from a courier's accept, scope, and
query parameters that make no sense (never a 500)."""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

from tests.conftest import Api, Personas, login_couriers, make_zone, new_waybill, pickup_body
from tests.test_console import HX, csrf, dispatcher
from tests.test_scope import station_dispatcher


def new_phone() -> str:
    return f"139{random.randrange(10**8):08d}"


async def board(api: Api, **params: Any) -> str:
    r = await api.get("/console/board", params=params, headers=HX)
    assert r.status_code == 200, r.text
    return r.text


def section(html: str, key: str) -> str:
    """One section of a board partial."""
    match = re.search(rf'<section class="section sec-{key}".*?</section>', html, re.S)
    assert match, html
    return match.group(0)


def total(html: str, key: str) -> int:
    match = re.search(r'data-total="(\d+)"', section(html, key))
    assert match
    return int(match.group(1))


def row_ids(html: str, key: str | None = None) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="pickup-(\d+)"', section(html, key) if key else html)]


async def create(people: Personas, zone: Any = None, **over: Any) -> dict[str, Any]:
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, **over))
    assert r.status_code == 201, r.text
    return r.json()


# -- search ------------------------------------------------------------------------------------------------


async def test_search_finds_a_pickup_by_each_of_its_keys(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    phone = new_phone()
    order_no = f"PO-{uuid.uuid4().hex[:10]}"
    wanted = await create(people, zone, partner_order_no=order_no, sender={"name": "王五", "phone": phone})
    other = await create(people, zone, sender={"name": "赵六", "phone": new_phone()})
    # A second pickup, collected with a waybill, to find by its waybill number.
    collected = await create(people, zone, sender={"name": "钱七", "phone": new_phone()})
    waybill = new_waybill()
    r = await courier.post(f"/api/v1/courier/pickups/{collected['id']}/accept", json={})
    assert r.status_code == 200, r.text
    r = await courier.post(f"/api/v1/courier/pickups/{collected['id']}/collect", json={"waybill_no": waybill})
    assert r.status_code == 200, r.text

    api = await dispatcher(people)
    for q in (
        wanted["tracking_code"],
        wanted["tracking_code"].lower(),
        phone,
        f"{phone[:3]} {phone[3:7]} {phone[7:]}",
        phone[-4:],
        order_no,
    ):
        html = await board(api, q=q)
        assert wanted["id"] in row_ids(html), q
        assert other["id"] not in row_ids(html), q
    html = await board(api, q=waybill.lower())
    assert row_ids(html) == [collected["id"]]
    assert collected["id"] in row_ids(html, "closed")
    # Nothing matches: the board says so rather than showing everything.
    html = await board(api, q="LSNOSUCHCODE")
    assert row_ids(html) == [] and "没有符合条件的揽收单" in html


# -- filters -----------------------------------------------------------------------------------------------


async def test_each_filter_narrows_the_board(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    other_zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    await login_couriers(people, other_zone)
    held = await create(people, zone)
    offered = await create(people, zone)
    elsewhere = await create(people, other_zone)
    r = await courier.post(f"/api/v1/courier/pickups/{held['id']}/accept", json={})
    assert r.status_code == 200, r.text
    api = await dispatcher(people)

    html = await board(api, zone=zone.code)
    assert set(row_ids(html)) == {held["id"], offered["id"]}
    html = await board(api, station=other_zone.station)
    assert row_ids(html) == [elsewhere["id"]]
    html = await board(api, courier=zone.courier_ids[0])
    assert row_ids(html) == [held["id"]] and zone.couriers[0] in html
    html = await board(api, zone=zone.code, status="offered")
    assert row_ids(html) == [offered["id"]]
    html = await board(api, zone=zone.code, partner="demo-shop")
    assert set(row_ids(html)) == {held["id"], offered["id"]}
    html = await board(api, zone=zone.code, partner="no-such-partner")
    assert row_ids(html) == [] and "找不到" in html

    # Needs attention: chased (催件) pickups, pending ones (no zone matched), failed ones.
    r = await people.partner().post(f"/api/v1/pickups/{offered['id']}/chase", json={})
    assert r.status_code == 200, r.text
    html = await board(api, zone=zone.code, attention="chased")
    assert row_ids(html) == [offered["id"]]
    nowhere = pickup_body()
    nowhere["address"].update(
        lat=30.5, lng=114.3, province="湖北省", city="武汉市", district="江岸区", street=""
    )
    pending = (await people.partner().post("/api/v1/pickups", json=nowhere)).json()
    html = await board(api, attention="pending", q=pending["tracking_code"])
    assert row_ids(html, "queue") == [pending["id"]]
    html = await board(api, attention="pending", zone=zone.code)
    assert row_ids(html) == []
    # The filter in force is shown above the sections, with a way back to the whole board.
    html = await board(api, zone=zone.code, attention="chased")
    assert "需关注：被催件" in html and zone.code in html and "清除筛选" in html


async def test_a_failed_pickup_waits_in_its_own_queue_with_its_reason(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup = await create(people, zone)
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/fail", json={"reason": "customer_absent"})
    assert r.status_code == 200, r.text
    api = await dispatcher(people)
    html = await board(api, zone=zone.code)
    assert row_ids(html, "failed") == [pickup["id"]]
    assert row_ids(html, "closed") == []
    assert total(html, "failed") == 1
    failed = section(html, "failed")
    assert "揽收失败" in failed and "客户不在" in failed
    assert 'name="pickup_ids"' in failed  # to be re-dispatched from the board
    html = await board(api, zone=zone.code, attention="failed", lang="en")
    assert row_ids(html) == [pickup["id"]]
    assert "Failed pickups" in html
    assert re.search(r'class="reason">[^<]*\S', section(html, "failed"))


async def test_a_dispatchers_assignment_is_not_shown_as_the_couriers_accept(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    first, _ = await login_couriers(people, zone)
    accepted = await create(people, zone)
    assigned = await create(people, zone)
    r = await first.post(f"/api/v1/courier/pickups/{accepted['id']}/accept", json={})
    assert r.status_code == 200, r.text
    api = await dispatcher(people)
    r = await api.post(
        "/console/pickups/assign",
        data={"pickup_ids": str(assigned["id"]), "courier_id": str(zone.courier_ids[1]), "reason": "就近"},
        headers=csrf(api),
    )
    assert r.status_code == 200, r.text
    held = section(await board(api, zone=zone.code), "held")
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r'<tr id="pickup-(\d+)".*?</tr>', held, re.S)}
    assert set(rows) == {accepted["id"], assigned["id"]}
    assert "已接单" in rows[accepted["id"]] and "已指派" not in rows[accepted["id"]]
    assert "已指派，待确认" in rows[assigned["id"]] and "已接单" not in rows[assigned["id"]]


# -- paging ------------------------------------------------------------------------------------------------


async def test_every_pickup_is_reachable_through_the_pages_with_exact_totals(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    items = [pickup_body(zone, partner_order_no=f"PG-{uuid.uuid4().hex[:12]}") for _ in range(120)]
    r = await people.partner().post("/api/v1/pickups/batch", json={"items": items})
    assert r.status_code == 200 and r.json()["created"] == 120, r.text
    created = {item["id"] for item in r.json()["results"]}
    api = await dispatcher(people)

    seen: list[int] = []
    for page in (1, 2, 3):
        html = await board(api, zone=zone.code, offered_page=page)
        assert total(html, "offered") == 120
        first, last = (page - 1) * 50 + 1, min(page * 50, 120)
        assert f"显示 {first}–{last} / 共 120" in section(html, "offered")
        seen.extend(row_ids(html, "offered"))
    assert len(seen) == len(set(seen)) == 120 and set(seen) == created
    # A page past the end shows the last one.
    html = await board(api, zone=zone.code, offered_page=9)
    assert row_ids(html, "offered") == seen[100:]
    # Sorted newest first, the first page starts with the last created.
    html = await board(api, zone=zone.code, sort="newest")
    assert row_ids(html, "offered")[0] == max(created)
    # The whole page (not only the partial) honours the filter and the page.
    page = (await api.get(f"/console?zone={zone.code}&offered_page=3")).text
    assert "显示 101–120 / 共 120" in page


async def test_a_live_row_is_the_same_html_as_the_boards_row(people: Personas) -> None:
    """console.js swaps in /console/pickups/{id}/row when the stream says a pickup changed: it must be
    the row the board itself shows (both come from board_rows.py), in either language."""
    zone = await make_zone(people, couriers=1)
    pickup = await create(people, zone)
    api = await dispatcher(people)
    for lang in ("zh-CN", "en"):
        params = {"zone": zone.code} | ({"lang": "en"} if lang == "en" else {})
        html = await board(api, **params)
        match = re.search(rf'<tr id="pickup-{pickup["id"]}".*?</tr>', html, re.S)
        assert match, html
        r = await api.get(f"/console/pickups/{pickup['id']}/row", params=params, headers=HX)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
        assert r.text.strip() == match.group(0), lang
        assert "?lang=en" in r.text if lang == "en" else "?lang=" not in r.text


# -- scope and bad parameters ------------------------------------------------------------------------------


async def test_search_stays_inside_the_dispatchers_stations(people: Personas) -> None:
    ours, theirs = await make_zone(people), await make_zone(people)
    mine = await create(people, ours)
    not_mine = await create(people, theirs)
    api = await station_dispatcher(people, ours.station)
    assert row_ids(await board(api, q=mine["tracking_code"])) == [mine["id"]]
    assert row_ids(await board(api, q=not_mine["tracking_code"])) == []
    assert row_ids(await board(api, zone=theirs.code)) == []
    assert row_ids(await board(api, station=theirs.station)) == []


async def test_parameters_that_make_no_sense_are_ignored_never_a_server_error(people: Personas) -> None:
    api = await dispatcher(people)
    for params in (
        {"status": "bogus"},
        {"attention": "everything"},
        {"sort": "'; DROP TABLE pickups; --"},
        {"courier": "abc"},
        {"courier": "99999999999999999999"},
        {"queue_page": "-3"},
        {"held_page": "x"},
        {"closed_page": "99999999999999999999999"},
        {"q": "%"},
        {"q": "x" * 5000},
        {"zone": "NO-SUCH-ZONE"},
        {"station": "\u202e"},
    ):
        r = await api.get("/console/board", params=params, headers=HX)
        assert r.status_code == 200, (params, r.text)
        r = await api.get("/console", params=params)
        assert r.status_code == 200, (params, r.text)
    # Control characters are refused before the console sees them (the app's own guard): a 400.
    r = await api.get("/console/board", params={"q": "\x00"}, headers=HX)
    assert r.status_code == 400
    html = await board(api, zone="NO-SUCH-ZONE")
    assert row_ids(html) == [] and "找不到" in html
