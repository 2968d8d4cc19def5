"""The customer's tracking page over HTTP: /t/<code>, its 404, its partials, its public event stream
(only customer-visible events, resumable) and its forms' refusals."""

from __future__ import annotations

import asyncio
import re
import time

from tests.conftest import Personas, SSEStream, login_couriers, make_zone, new_waybill, pickup_body

HX = {"HX-Request": "true"}
EN = {"accept-language": "en-US,en;q=0.9"}


async def new_pickup(people: Personas, couriers: int = 1) -> tuple[dict, list]:
    zone = await make_zone(people, couriers=couriers)
    staff = await login_couriers(people, zone)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    return r.json(), staff


async def test_the_page_shows_the_pickup_in_chinese_then_english(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon = people.anonymous()
    r = await anon.get(f"/t/{pickup['tracking_code']}")
    assert r.status_code == 200, r.text
    assert "正在为您寻找揽收员" in r.text and "取件地址" in r.text
    assert pickup["tracking_code"] in r.text
    # The public page hides the door (1号楼2单元 → *号楼*单元) and the customer's name (李四 → 李*).
    assert "1号楼2单元" not in r.text and "*号楼*单元" in r.text
    assert "李四" not in r.text and "李*" in r.text and "13912345678" not in r.text
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in r.headers["x-robots-tag"] and 'name="robots" content="noindex' in r.text
    assert "no-store" in r.headers["cache-control"]
    assert f'sse-connect="/t/{pickup["tracking_code"]}/events?last_event_id=' in r.text

    r = await anon.get(f"/t/{pickup['tracking_code']}?lang=en")
    assert "Looking for a courier" in r.text and "正在为您寻找揽收员" not in r.text
    r = await anon.get(f"/t/{pickup['tracking_code']}", headers=EN)
    assert "Looking for a courier" in r.text


async def test_an_unknown_or_malformed_code_is_the_same_404_page_in_the_page_language(
    people: Personas,
) -> None:
    pickup, _ = await new_pickup(people)
    anon = people.anonymous()
    code = pickup["tracking_code"]
    wrong = code[:-1] + ("2" if code[-1] != "2" else "3")
    for path in (f"/t/{wrong}", "/t/LS23456789AB", "/t/nonsense", f"/t/{code.lower()}"):
        r = await anon.get(path)
        assert r.status_code == 404, path
        assert "找不到这个取件" in r.text and code not in r.text
        assert r.headers["referrer-policy"] == "no-referrer" and "noindex" in r.headers["x-robots-tag"]
    r = await anon.get(f"/t/{wrong}?lang=en")
    assert r.status_code == 404 and "Pickup not found" in r.text
    for suffix in ("/status", "/actions", "/events"):
        assert (await anon.get(f"/t/{wrong}{suffix}")).status_code == 404
    # Nothing public grew under /t without the slash.
    assert (await anon.get("/tracking")).status_code in (401, 404)


async def test_known_and_unknown_codes_take_about_as_long(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon = people.anonymous()
    code = pickup["tracking_code"]
    wrong = "LS" + "2" * 20

    async def median(path: str) -> float:
        times = []
        for _ in range(15):
            start = time.perf_counter()
            await anon.get(path + "/status")
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    known, unknown = await median(f"/t/{code}"), await median(f"/t/{wrong}")
    # The unknown code runs the same indexed lookup: it answers no slower than the known one and not
    # by orders of magnitude faster (the page for a known code reads more, which is not a secret).
    assert unknown < known * 3 + 0.05, (known, unknown)


async def test_the_status_follows_the_courier_with_first_name_masked_phone_and_waybill(
    people: Personas,
) -> None:
    pickup, (courier,) = await new_pickup(people)
    anon = people.anonymous()
    status = f"/t/{pickup['tracking_code']}/status"
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    html = (await anon.get(status, headers=HX)).text
    assert 'data-status="accepted"' in html and "师傅" in html and "<html" not in html
    assert 'data-step="accepted"' in html and 'data-step="offered"' in html
    await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/contacted", json={})
    waybill = new_waybill()
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": waybill})
    assert r.status_code == 200, r.text
    html = (await anon.get(status + "?lang=en", headers=HX)).text
    assert 'data-status="collected"' in html and waybill in html and "Collected" in html
    assert 'data-step="contacted"' in html


async def test_the_stream_sends_only_customer_events_and_resumes(people: Personas) -> None:
    pickup, (courier,) = await new_pickup(people)
    other, _ = await new_pickup(people)
    anon = people.anonymous()
    path = f"/t/{pickup['tracking_code']}/events"
    async with SSEStream(anon, path) as stream:
        ready = stream.seen[0]
        # Courier-side events (seen, arrived) and another pickup's never come down this stream.
        await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/seen", json={})
        r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
        assert r.status_code == 200, r.text
        accepted = await stream.next_event("state")
        assert accepted.data == {"type": "accepted"}
        await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/arrived", json={})
        await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/contacted", json={})
        contacted = await stream.next_event("state")
        assert contacted.data == {"type": "contacted"}
        assert [e.data for e in stream.seen if e.event in ("changed", "state")] == [
            {"type": "accepted"},
            {"type": "contacted"},
        ]
    # Resuming after the ready id replays the same two, from the log, and nothing else.
    async with SSEStream(anon, path, last_event_id=ready.id) as resumed:
        replayed = [e for e in resumed.seen if e.event in ("changed", "state")]
    assert [e.id for e in replayed] == [accepted.id, contacted.id]
    assert other["id"] != pickup["id"]


async def test_open_streams_are_bounded_per_pickup(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon = people.anonymous()
    path = f"/t/{pickup['tracking_code']}/events"
    streams = [SSEStream(anon, path) for _ in range(5)]
    for s in streams:
        await s.__aenter__()
    try:
        r = await anon.get(path)
        assert r.status_code == 429 and r.headers["retry-after"]
    finally:
        for s in streams:
            await s.close()
    # Closed streams free their places.
    for _ in range(50):
        async with anon.client.stream("GET", path) as r:
            if r.status_code == 200:
                break
        await asyncio.sleep(0.05)
    assert r.status_code == 200


async def test_a_form_post_without_the_pages_token_is_refused(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon = people.anonymous()
    r = await anon.post(f"/t/{pickup['tracking_code']}/cancel", data={"reason": "x"})
    assert r.status_code == 403
    r = await anon.get(f"/t/{pickup['tracking_code']}")
    token = anon.client.cookies["lanshou_csrf"]
    r = await anon.post(
        f"/t/{pickup['tracking_code']}/rate", data={"stars": "9"}, headers={"x-csrftoken": token, **HX}
    )
    # Not collected yet: the form still answers with the field's error in the page's language.
    assert r.status_code in (422, 503), r.text
    assert re.search(r'data-error="(stars|form)"', r.text)


# -- the page's forms ----------------------------------------------------------------------------------


async def page_client(people: Personas, code: str) -> tuple[object, dict[str, str]]:
    """An anonymous browser that has loaded the page (and so holds its CSRF cookie)."""
    anon = people.anonymous()
    r = await anon.get(f"/t/{code}")
    assert r.status_code == 200, r.text
    return anon, {"x-csrftoken": anon.client.cookies["lanshou_csrf"], **HX}


async def history(people: Personas, pickup_id: int) -> list[str]:
    r = await people.partner().get(f"/api/v1/pickups/{pickup_id}")
    return [e["type"] for e in r.json()["events"]]


async def test_the_customer_cancels_from_the_page_until_collected(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon, headers = await page_client(people, pickup["tracking_code"])
    base = f"/t/{pickup['tracking_code']}"
    r = await anon.post(base + "/cancel", data={"reason": "x" * 201}, headers=headers)
    assert r.status_code == 422 and 'data-error="reason"' in r.text and "最多 200 个字" in r.text
    assert "x" * 201 in r.text  # what was typed is kept
    r = await anon.post(base + "/cancel", data={"reason": "不寄了"}, headers=headers)
    assert r.status_code == 200, r.text
    assert "已取消取件" in r.text and 'details class="cancel"' not in r.text
    # The "done" line goes out of band, above the actions (an actions re-read does not take it away).
    assert re.search(r'<div id="done" hx-swap-oob="innerHTML"><p class="msg ok">已取消取件', r.text), r.text
    assert "pickup.cancelled" in await history(people, pickup["id"])
    r = await anon.get(base + "/status")
    assert 'data-status="cancelled"' in r.text
    # Once cancelled the form is gone, and a post anyway is refused in the page's language.
    r = await anon.post(base + "/cancel?lang=en", data={"reason": ""}, headers=headers)
    assert r.status_code == 409 and "current state" in r.text


async def test_a_collected_pickup_cannot_be_cancelled(people: Personas) -> None:
    pickup, (courier,) = await new_pickup(people)
    await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    r = await courier.post(
        f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": new_waybill()}
    )
    assert r.status_code == 200, r.text
    anon, headers = await page_client(people, pickup["tracking_code"])
    r = await anon.post(f"/t/{pickup['tracking_code']}/cancel", data={"reason": ""}, headers=headers)
    assert r.status_code == 409 and "当前状态下不能这样操作" in r.text
    assert "pickup.cancelled" not in await history(people, pickup["id"])


async def test_a_second_chase_within_ten_minutes_says_when(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon, headers = await page_client(people, pickup["tracking_code"])
    base = f"/t/{pickup['tracking_code']}"
    r = await anon.post(base + "/chase", headers=headers)
    assert r.status_code == 200 and "已催件" in r.text
    assert "后可再次催件" in r.text and "disabled" in r.text
    r = await anon.post(base + "/chase", headers=headers)
    assert r.status_code == 429 and 'data-error="chase"' in r.text and "分钟后再试" in r.text
    assert (await history(people, pickup["id"])).count("pickup.chased") == 1


async def test_the_slot_must_be_one_the_zone_offers(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon, headers = await page_client(people, pickup["tracking_code"])
    base = f"/t/{pickup['tracking_code']}"
    r = await anon.post(base + "/reschedule", data={}, headers=headers)
    assert r.status_code == 422 and "请选择一个时段" in r.text
    bogus = "2030-01-01T00:00:00+00:00/2030-01-01T01:00:00+00:00"
    r = await anon.post(base + "/reschedule?lang=en", data={"slot": bogus}, headers=headers)
    assert r.status_code == 422 and "no longer offered" in r.text
    page = (await anon.get(base + "/actions")).text
    slot = re.search(r'name="slot" value="([^"]+)"', page)
    assert slot, page
    r = await anon.post(base + "/reschedule", data={"slot": slot.group(1)}, headers=headers)
    assert r.status_code == 200 and "预约时间已修改" in r.text, r.text
    assert "pickup.rescheduled" in await history(people, pickup["id"])


def selected(html: str, select_id: str) -> str | None:
    """The code chosen in the page's <select id=…>, None if none is."""
    select = re.search(rf'<select id="{select_id}".*?</select>', html, re.S)
    assert select, html
    chosen = re.search(r'<option value="(\w*)" selected>', select.group(0))
    return chosen.group(1) if chosen else None


async def test_the_address_pickers_start_at_the_current_address_and_fill_from_the_one_above(
    people: Personas,
) -> None:
    pickup, _ = await new_pickup(people)  # 湖南省 长沙市 望城区 白箬铺镇
    anon, _ = await page_client(people, pickup["tracking_code"])
    base = f"/t/{pickup['tracking_code']}"
    page = (await anon.get(base)).text
    assert [selected(page, f"addr-{n}") for n in ("province", "city", "district", "street")] == [
        "43",
        "4301",
        "430112",
        "430112115",
    ]
    # A changed city (htmx): its block alone, the districts under it and nothing below chosen.
    r = await anon.get(
        base + "/areas", params={"province": "43", "city": "4301"}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200 and r.text.lstrip().startswith('<fieldset id="addr-place"'), r.text
    assert ">岳麓区</option>" in r.text and selected(r.text, "addr-district") is None
    assert re.search(r'<select id="addr-street"[^>]*disabled>', r.text)
    # A plain GET (or an unknown code) is the whole page, the form open on those choices.
    r = await anon.get(base + "/areas", params={"province": "43", "city": "4301", "detail": "8 栋"})
    assert '<details class="address-change" open>' in r.text and 'value="8 栋"' in r.text
    assert (await anon.get("/t/LS00000000000000000000/areas")).status_code == 404


async def test_the_address_is_changed_with_the_pickers_and_errors_next_to_each_one(people: Personas) -> None:
    pickup, _ = await new_pickup(people)
    anon, headers = await page_client(people, pickup["tracking_code"])
    base = f"/t/{pickup['tracking_code']}"
    form = {"province": "43", "city": "", "district": "", "street": "", "detail": "新地址 8 栋"}
    r = await anon.post(base + "/address", data=form, headers=headers)
    assert r.status_code == 422 and 'data-error="address.city"' in r.text and "请填写此项" in r.text
    assert 'value="新地址 8 栋"' in r.text and selected(r.text, "addr-province") == "43"  # kept as chosen
    # A district that is not under the city (a stale or forged form), in English when the page is.
    form.update(city="4301", district="110105")
    r = await anon.post(base + "/address?lang=en", data=form, headers=headers)
    assert r.status_code == 422 and 'data-error="address.district"' in r.text
    assert "combination does not exist" in r.text
    # Without JavaScript the update button shows the districts under the city and changes nothing.
    r = await anon.post(base + "/address", data={**form, "district": "", "step": "place"}, headers=headers)
    assert r.status_code == 200 and ">岳麓区</option>" in r.text and "取件地址已修改" not in r.text
    assert "pickup.address_changed" not in await history(people, pickup["id"])
    form.update(district="430104", street="430104011")
    r = await anon.post(base + "/address", data=form, headers=headers)
    assert r.status_code == 200, r.text
    assert "取件地址已修改" in r.text
    assert "pickup.address_changed" in await history(people, pickup["id"])
    status = (await anon.get(base + "/status")).text
    assert "湖南省长沙市岳麓区麓谷街道" in status and "新地址 * 栋" in status and "8 栋" not in status
