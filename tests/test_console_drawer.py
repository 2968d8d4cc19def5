"""The console's pickup drawer over HTTP: what it shows of one pickup (its facts, offers and history, the
customer's contact as a dispatcher may see it), the actions it offers (assign, take back, cancel for the
customer, note), each written as an event with the dispatcher as actor, and what it refuses."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.conftest import (
    Api,
    Database,
    Personas,
    SSEStream,
    login_couriers,
    make_zone,
    new_waybill,
    pickup_body,
)
from tests.test_console import HX, csrf, dispatcher
from tests.test_scope import station_dispatcher
from tests.test_webhooks import Receiver, new_partner, wait_for


async def drawer(api: Api, pickup_id: int, lang: str = "") -> str:
    r = await api.get(f"/console/pickups/{pickup_id}" + (f"?lang={lang}" if lang else ""), headers=HX)
    assert r.status_code == 200, r.text
    return r.text


async def post(api: Api, pickup_id: int, action: str, lang: str = "", **form: str) -> Any:
    query = f"?lang={lang}" if lang else ""
    return await api.post(f"/console/pickups/{pickup_id}/{action}{query}", data=form, headers=csrf(api))


async def partner_events(people: Personas, pickup_id: int) -> list[dict[str, Any]]:
    r = await people.partner().get(f"/api/v1/pickups/{pickup_id}")
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def history(html: str) -> list[str]:
    """The history's entries as text, in order."""
    items = re.findall(r"<li data-event-id=\"\d+\" data-type=\"[^\"]+\"[^>]*>(.*?)</li>", html, re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", item)).strip() for item in items]


async def new_pickup(people: Personas, zone: Any, **over: Any) -> dict[str, Any]:
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, **over))
    assert r.status_code == 201, r.text
    return dict(r.json())


# -- what it shows --------------------------------------------------------------------------------------


async def test_the_drawer_shows_the_pickup_its_offers_and_its_history_in_order(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    first, second = await login_couriers(people, zone)
    order_no = f"PO-{uuid.uuid4().hex[:8]}"
    pickup = await new_pickup(people, zone, partner_order_no=order_no, note="放在门口鞋柜上", weight_kg=2.5)
    pickup_id = pickup["id"]
    r = await first.post(f"/api/v1/courier/pickups/{pickup_id}/decline", json={"reason": "too_far"})
    assert r.status_code == 200, r.text
    r = await second.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    api = await dispatcher(people)

    html = await drawer(api, pickup_id)
    assert pickup["tracking_code"] in html and order_no in html
    assert "李四" in html and "放在门口鞋柜上" in html and "2.5 kg" in html
    # A dispatcher sees the phone masked and the exact address (server/domain/visibility.py).
    assert "139****5678" in html and "13912345678" not in html
    assert "1号楼2单元" in html and "门牌仅揽投员可见" not in html
    assert "望城区白箬铺镇" in html
    # The status says the courier took it themselves.
    assert f"{zone.couriers[1]}自行接单" in html
    # Both offers: to whom, and how each ended.
    offers = html.split('<table class="offers">')[1].split("</table>")[0]
    assert zone.couriers[0] in offers and zone.couriers[1] in offers
    assert "已拒绝" in offers and "已接单" in offers
    # The history, in order, with who did what.
    steps = history(html)
    assert steps[0].endswith("下单") and "平台" in steps[0]
    offered = next(i for i, s in enumerate(steps) if "派给 2 名揽投员（第 1 轮）" in s)
    declined = next(i for i, s in enumerate(steps) if f"{zone.couriers[0]} 拒绝了派单 · 太远" in s)
    accepted = next(
        i for i, s in enumerate(steps) if f"揽投员 {zone.couriers[1]} {zone.couriers[1]} 接单" in s
    )
    assert offered < declined < accepted
    # The system's own reason codes are not shown as if someone had typed them.
    assert '<q class="said">new</q>' not in html and "too_far" not in html
    # Times in the station's time zone (Asia/Shanghai): HH:MM:SS after the MM-DD.
    assert re.search(
        r"<time datetime=\"[^\"]+\" title=\"Asia/Shanghai\">\d\d-\d\d \d\d:\d\d:\d\d</time>", html
    )

    en = await drawer(api, pickup_id, "en")
    assert f"accepted by {zone.couriers[1]} themselves" in en and "Offers" in en and "History" in en
    assert "派单记录" not in en


async def test_opened_on_its_own_the_drawer_is_a_whole_page(people: Personas) -> None:
    zone = await make_zone(people)
    pickup = await new_pickup(people, zone)
    api = await dispatcher(people)
    r = await api.get(f"/console/pickups/{pickup['id']}")
    assert r.status_code == 200
    assert r.text.lstrip().startswith("<!doctype html>")
    assert 'class="topbar"' in r.text and pickup["tracking_code"] in r.text
    assert "/static/console-drawer.js" in r.text and "csrf" in r.text.lower()
    # As a partial it is the drawer alone.
    partial = await drawer(api, pickup["id"])
    assert "<html" not in partial and 'class="topbar"' not in partial and 'id="drawer-live"' in partial


async def test_an_assignment_by_the_dispatcher_reads_differently_from_a_courier_accepting(
    people: Personas,
) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    pickup_id = (await new_pickup(people, zone))["id"]
    api = await dispatcher(people)
    r = await post(api, pickup_id, "assign", courier_id=str(zone.courier_ids[0]), reason="客户指定此人")
    assert r.status_code == 200, r.text
    assert f"已指派给 {zone.couriers[0]}" in r.text
    assert f"由调度员指派给{zone.couriers[0]}" in r.text and "自行接单" not in r.text
    assert any(f"调度 调度员 指派给 {zone.couriers[0]}" in s and "客户指定此人" in s for s in history(r.text))


# -- actions, each an event with the dispatcher as actor --------------------------------------------------


async def test_assign_reassign_and_take_back_are_events_by_the_dispatcher(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    await login_couriers(people, zone)
    pickup_id = (await new_pickup(people, zone))["id"]
    api = await dispatcher(people)
    first, second = zone.courier_ids
    async with SSEStream(api, path="/console/events") as stream:
        r = await post(api, pickup_id, "assign", courier_id=str(first), reason="就近")
        assert r.status_code == 200, r.text
        await stream.next_event("pickup.assigned", pickup_id=pickup_id)
        # The outside-zone box is not kept checked for the next assignment.
        assert re.search(r'<input type="checkbox" name="allow_outside_zone">', r.text)
        r = await post(api, pickup_id, "assign", courier_id=str(second), reason="原揽投员请假")
        assert r.status_code == 200, r.text
        await stream.next_event("pickup.reassigned", pickup_id=pickup_id)
        # Taking back a pickup a courier holds asks first (the browser's confirm).
        assert "hx-confirm=" in r.text.split('data-form="unassign"')[1].split(">")[0]
        r = await post(api, pickup_id, "unassign", reason="重新派发")
        assert r.status_code == 200, r.text
        assert "已收回，正在重新派单" in r.text
        await stream.next_event("pickup.unassigned", pickup_id=pickup_id)

    events = {e["type"]: e for e in await partner_events(people, pickup_id)}
    for kind in ("pickup.assigned", "pickup.reassigned", "pickup.unassigned"):
        assert events[kind]["actor"] == "dispatcher", events[kind]
    assert events["pickup.reassigned"]["data"]["reason"] == "原揽投员请假"
    assert events["pickup.unassigned"]["data"]["reason"] == "重新派发"


async def test_the_dispatcher_cancels_on_the_customers_behalf(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    pickup_id = pickup["id"]
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    api = await dispatcher(people)
    r = await post(api, pickup_id, "cancel", reason="客户来电取消")
    assert r.status_code == 200, r.text
    assert "已代寄件人取消" in r.text and 'data-status="cancelled"' in r.text
    # Nothing more to do to it but a note.
    assert 'data-form="assign"' not in r.text and 'data-form="cancel"' not in r.text
    assert 'data-form="note"' in r.text

    (cancelled,) = [e for e in await partner_events(people, pickup_id) if e["type"] == "pickup.cancelled"]
    assert cancelled["actor"] == "dispatcher"
    assert cancelled["data"] == {"reason": "客户来电取消", "on_behalf_of": "customer"}


async def test_a_collected_pickup_cannot_be_cancelled_and_the_drawer_says_why(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup_id = (await new_pickup(people, zone))["id"]
    assert (await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})).status_code == 200
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/collect", json={"waybill_no": new_waybill()})
    assert r.status_code == 200, r.text
    api = await dispatcher(people)
    html = await drawer(api, pickup_id)
    assert 'data-form="cancel"' not in html  # not offered …
    r = await post(api, pickup_id, "cancel", reason="客户反悔")  # … and refused when sent anyway
    assert r.status_code == 409
    assert "这单已是“已揽收”，不能再取消" in r.text and 'role="alert"' in r.text
    r = await post(api, pickup_id, "cancel", lang="en", reason="changed mind")
    assert "This pickup is Collected and can no longer be cancelled" in r.text
    assert [e for e in await partner_events(people, pickup_id) if e["type"] == "pickup.cancelled"] == []


async def test_a_note_is_kept_for_staff_only(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    pickup = await new_pickup(people, zone)
    pickup_id = pickup["id"]
    api = await dispatcher(people)
    text = "客户说下午三点后才在家 <b>别早去</b>"
    async with SSEStream(api, path="/console/events") as stream:
        r = await post(api, pickup_id, "note", text=text)
        assert r.status_code == 200, r.text
        await stream.next_event("pickup.noted", pickup_id=pickup_id)
    assert "备注已添加" in r.text
    # Shown as text, in the history, as the dispatcher's.
    assert "&lt;b&gt;别早去&lt;/b&gt;" in r.text and "<b>别早去" not in r.text
    assert any(
        s.startswith(tuple("0123456789")) and "调度 调度员 备注" in s and "三点后" in s
        for s in history(r.text)
    )
    # Not for the partner (history), nor for the customer's tracking page.
    assert "pickup.noted" not in [e["type"] for e in await partner_events(people, pickup_id)]
    page = await people.anonymous().get(f"/t/{pickup['tracking_code']}")
    assert page.status_code == 200 and "三点后" not in page.text


async def test_the_partners_webhook_hears_of_the_cancel_but_not_of_the_note(
    people: Personas, db: Database
) -> None:
    receiver = Receiver()
    try:
        partner = people.partner(new_partner(db))
        r = await partner.put("/api/v1/partner/webhook", json={"url": receiver.url})
        assert r.status_code == 200, r.text
        zone = await make_zone(people)
        pickup_id = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()["id"]
        api = await dispatcher(people)
        assert (await post(api, pickup_id, "note", text="内部：客户脾气急")).status_code == 200
        assert (await post(api, pickup_id, "cancel", reason="客户来电取消")).status_code == 200
        await wait_for(lambda: any(e["type"] == "pickup.cancelled" for e in receiver.delivered()))
        delivered = receiver.delivered()
        assert "pickup.noted" not in [e["type"] for e in delivered]
        assert "脾气急" not in str(delivered)
        (cancelled,) = [e for e in delivered if e["type"] == "pickup.cancelled"]
        assert cancelled["data"]["on_behalf_of"] == "customer"
    finally:
        receiver.close()


# -- refusals ---------------------------------------------------------------------------------------------


async def test_another_stations_pickup_does_not_exist_for_the_drawer(people: Personas) -> None:
    ours, theirs = await make_zone(people, couriers=1), await make_zone(people, couriers=1)
    await login_couriers(people, theirs)
    pickup_id = (await new_pickup(people, theirs))["id"]
    api = await station_dispatcher(people, ours.station)
    await api.get("/console")  # the CSRF cookie
    r = await api.get(f"/console/pickups/{pickup_id}", headers=HX)
    assert r.status_code == 404 and "不在你负责的站点" in r.text
    assert pickup_id and theirs.code not in r.text
    before = await partner_events(people, pickup_id)
    for action, form in (
        ("assign", {"courier_id": str(theirs.courier_ids[0]), "reason": "x", "allow_outside_zone": "on"}),
        ("unassign", {"reason": "x"}),
        ("cancel", {"reason": "x"}),
        ("note", {"text": "x"}),
    ):
        r = await post(api, pickup_id, action, **form)
        assert r.status_code == 404, (action, r.status_code, r.text)
    assert await partner_events(people, pickup_id) == before


async def test_bad_input_gets_a_form_error_not_a_server_error(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    pickup_id = (await new_pickup(people, zone))["id"]
    api = await dispatcher(people)
    cases = [
        ("assign", {"reason": "x"}, "请选择揽投员"),
        ("assign", {"courier_id": "abc", "reason": "x"}, "请选择揽投员"),
        ("assign", {"courier_id": "99999999999999999999", "reason": "x"}, "请选择揽投员"),
        ("assign", {"courier_id": str(zone.courier_ids[0]), "reason": "  "}, "请填写原因"),
        ("assign", {"courier_id": str(zone.courier_ids[0]), "reason": "长" * 201}, "最多 200 字"),
        ("unassign", {}, "请填写原因"),
        ("cancel", {"reason": ""}, "请填写原因"),
        ("note", {"text": "   "}, "请写下备注内容"),
        ("note", {"text": "字" * 501}, "最多 500 字"),
        ("note", {"text": "bell\x07"}, ""),
    ]
    before = await partner_events(people, pickup_id)
    for action, form, message in cases:
        r = await post(api, pickup_id, action, **form)
        assert r.status_code == 422, (action, form, r.status_code, r.text[:300])
        assert 'role="alert"' in r.text and message in r.text, (action, form)
    # A courier that does not exist (or is outside the dispatcher's reach): not found, nothing changed.
    r = await post(api, pickup_id, "assign", courier_id="987654321", reason="x")
    assert r.status_code == 404 and 'role="alert"' in r.text
    assert await partner_events(people, pickup_id) == before
    # A note of exactly 500 characters (line breaks counted once, as the textarea counts them) is fine.
    r = await post(api, pickup_id, "note", text="字" * 498 + "\r\n字")
    assert r.status_code == 200, r.text[:300]
    # A pickup that does not exist.
    r = await api.get("/console/pickups/987654321", headers=HX)
    assert r.status_code == 404


async def test_without_htmx_an_action_answers_with_the_whole_page(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    pickup_id = (await new_pickup(people, zone))["id"]
    api = await dispatcher(people)
    token = api.client.cookies["lanshou_csrf"]
    r = await api.post(
        f"/console/pickups/{pickup_id}/note", data={"text": "无脚本也能用", "_csrf_token": token}
    )
    assert r.status_code == 200, r.text[:300]
    assert (
        r.text.lstrip().startswith("<!doctype html>") and "备注已添加" in r.text and "无脚本也能用" in r.text
    )


async def test_actions_need_the_csrf_token(people: Personas) -> None:
    zone = await make_zone(people)
    pickup_id = (await new_pickup(people, zone))["id"]
    api = await dispatcher(people)
    r = await api.post(f"/console/pickups/{pickup_id}/note", data={"text": "x"}, headers=HX)
    assert r.status_code == 403
