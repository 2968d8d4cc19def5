"""The customer's booking page, /book, over HTTP: booking, each kind of wrong input shown beside its
field with what was typed kept, the pickers with and without htmx, serviceability and stop-ship, the
throttle per client address and the refusal of cross-site posts."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Api, Personas, ServerProcess, SSEStream, demo_server

HX = {"HX-Request": "true"}
BEIJING = ZoneInfo("Asia/Shanghai")
# 湖南省 / 长沙市 / 开福区: demo zone CS-KF-02 lists 开福区, so the district alone finds it.
KAIFU = {"province": "43", "city": "4301", "district": "430105"}
# 湖南省 / 长沙市 / 望城区: a real district no demo zone covers.
WANGCHENG = {"province": "43", "city": "4301", "district": "430112"}


def csrf_token(page: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def options(page: str, select: str) -> list[tuple[str, str]]:
    """(value, label) of a select's options, the empty placeholder left out."""
    body = page.split(f'<select id="{select}"', 1)[1].split("</select>", 1)[0]
    return [
        (html.unescape(v), html.unescape(label.strip()))
        for v, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', body)
        if v
    ]


def field(page: str, name: str) -> str:
    """The markup of one form field (its label, control and error)."""
    start = page.index(f'<label for="{name}">')
    return page[start : page.index("</div>", start)]


def field_error(page: str, name: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="{name}-error">([^<]*)</p>', page)
    if match:
        assert f'aria-describedby="{name}-error"' in field(page, name)  # next to its field
    return html.unescape(match.group(1)) if match else None


def input_value(page: str, name: str) -> str:
    match = re.search(rf'<input id="{name}" name="{name}" value="([^"]*)"', page)
    assert match, name
    return html.unescape(match.group(1))


async def open_form(api: Api, lang: str = "") -> str:
    r = await api.get("/book" + (f"?lang={lang}" if lang else ""))
    assert r.status_code == 200, r.text
    return csrf_token(r.text)


async def first_slot(api: Api, place: dict[str, str] = KAIFU) -> str:
    r = await api.get("/book/areas", params=place, headers=HX)
    assert r.status_code == 200, r.text
    slots = options(r.text, "slot")
    assert slots, r.text
    return slots[0][0]


def booking(token: str, slot: str, **over: str) -> dict[str, str]:
    form = {
        "_csrf_token": token,
        "name": "王小明",
        "phone": "139 0731 2345",
        **KAIFU,
        "street": "",
        "detail": "湘江世纪城 3 栋 1201",
        "slot": slot,
        "parcel_count": "2",
        "weight_kg": "1.5",
        "note": "下午在家",
        "order_no": f"PDD{uuid.uuid4().hex[:10]}",
    }
    form.update(over)
    return form


async def post(api: Api, form: dict[str, str], lang: str = "", **kw: Any) -> httpx.Response:
    return await api.post("/book" + (f"?lang={lang}" if lang else ""), data=form, **kw)


async def dispatcher(people: Personas) -> Api:
    api = await people.user("dispatch")
    assert (await api.get("/console")).status_code == 200
    return api


# -- booking ------------------------------------------------------------------------------------------


async def test_a_customer_books_and_is_sent_to_the_tracking_page(people: Personas) -> None:
    customer = people.anonymous()
    token = await open_form(customer)
    slot = await first_slot(customer)
    console = await dispatcher(people)
    async with SSEStream(console, path="/console/events") as stream:
        r = await post(customer, booking(token, slot))
        assert r.status_code == 303, r.text
        match = re.fullmatch(r"/t/([A-Za-z0-9_-]+)", r.headers["location"])
        assert match, r.headers["location"]
        event = await stream.next_event("pickup.created")
    row = (await console.get(f"/console/pickups/{event.data['pickup_id']}/row", headers=HX)).text
    assert match.group(1) in row and "开福区" in row and 'data-zone="CS-KF-02"' in row


async def test_an_english_booking_lands_on_the_english_tracking_page(people: Personas) -> None:
    customer = people.anonymous()
    token = await open_form(customer, "en")
    r = await post(customer, booking(token, await first_slot(customer)), lang="en")
    assert r.status_code == 303 and r.headers["location"].endswith("?lang=en"), r.text


async def test_a_booking_htmx_posted_is_sent_on_with_hx_redirect(people: Personas) -> None:
    """htmx would follow a 303 itself and swap the tracking page into the form: it gets HX-Redirect."""
    customer = people.anonymous()
    token = await open_form(customer, "en")
    r = await post(customer, booking(token, await first_slot(customer)), lang="en", headers=HX)
    assert r.status_code == 200 and r.content == b"", r.text
    assert re.fullmatch(r"/t/[A-Za-z0-9_-]+\?lang=en", r.headers["hx-redirect"]), r.headers


async def test_the_page_has_the_customer_header_bar_and_the_failure_strings(people: Personas) -> None:
    r = await people.anonymous().get("/book?lang=en")
    assert '<header class="bar">' in r.text and 'href="/book?lang=zh-CN"' in r.text
    assert "Cannot reach the server" in r.text and "/static/customer.js" in r.text


async def test_the_page_speaks_chinese_by_default_and_english_when_asked(people: Personas) -> None:
    anon = people.anonymous()
    assert "预约上门取件" in (await anon.get("/book")).text
    assert "Book a doorstep pickup" in (await anon.get("/book?lang=en")).text
    r = await anon.get("/book", headers={"accept-language": "en-GB,en;q=0.9"})
    assert "Book a doorstep pickup" in r.text and '<html lang="en">' in r.text


# -- the pickers --------------------------------------------------------------------------------------


async def test_the_pickers_offer_the_divisions_under_each_choice(people: Personas) -> None:
    anon = people.anonymous()
    page = (await anon.get("/book")).text
    assert ("43", "湖南省") in options(page, "province") and len(options(page, "province")) == 31
    assert options(page, "city") == []  # nothing to offer until a province is chosen
    r = await anon.get("/book/areas", params={"province": "43"}, headers=HX)
    assert r.text.lstrip().startswith('<fieldset id="place">')  # the block alone, for htmx to swap
    assert ("4301", "长沙市") in options(r.text, "city")
    r = await anon.get("/book/areas", params={**KAIFU}, headers=HX)
    assert ("430105006", "伍家岭街道") in options(r.text, "street")
    # No no-JavaScript "update" button in a swapped block: it would be the form's first submit button,
    # and Enter in any field would press it instead of booking.
    assert 'name="step"' not in r.text and 'name="step"' in page
    assert "可以上门取件" in r.text and options(r.text, "slot")
    # A city picked before the province changed is dropped, with everything under it.
    r = await anon.get("/book/areas", params={**KAIFU, "province": "11"}, headers=HX)
    assert ("1101", "市辖区") in options(r.text, "city") and options(r.text, "district") == []
    assert "selected" not in r.text.split('<select id="city"')[1].split("</select>")[0]


async def test_without_javascript_the_pickers_work_by_round_trips(people: Personas) -> None:
    customer = people.anonymous()
    token = await open_form(customer)
    form = booking(token, "", province="43", city="", district="", name="赵六")
    r = await post(customer, {**form, "step": "place"})
    assert r.status_code == 200
    assert ("4301", "长沙市") in options(r.text, "city")
    assert input_value(r.text, "name") == "赵六" and field_error(r.text, "name") is None
    assert "<noscript>" in r.text
    page = (await customer.get("/book/areas", params=KAIFU)).text  # a plain GET: the whole page
    assert "<form" in page and options(page, "slot")


async def test_the_page_says_when_an_address_is_not_served(people: Personas) -> None:
    r = await people.anonymous().get("/book/areas", params=WANGCHENG, headers=HX)
    assert "这个地址暂时不能上门取件" in r.text and options(r.text, "slot") == []


# -- wrong input, each beside its field, nothing typed lost ---------------------------------------------


async def refused(people: Personas, lang: str = "", **over: str) -> str:
    customer = people.anonymous()
    token = await open_form(customer, lang)
    form = {**booking(token, await first_slot(customer)), **over}
    r = await post(customer, form, lang)
    assert r.status_code == 422, r.text[:300]
    assert input_value(r.text, "detail") == form["detail"]  # what was typed is still there
    assert input_value(r.text, "order_no") == form["order_no"]
    return r.text


async def test_a_missing_name_is_shown_beside_the_name(people: Personas) -> None:
    page = await refused(people, name="  ")
    assert field_error(page, "name") == "请填写姓名（不超过 64 个字）。"
    assert input_value(page, "phone") == "139 0731 2345"
    assert field_error(page, "phone") is None


async def test_a_bad_phone_is_shown_beside_the_phone_in_the_page_language(people: Personas) -> None:
    page = await refused(people, lang="en", phone="12345", parcel_count="0")
    assert field_error(page, "phone") == "Enter an 11-digit mainland-China mobile number."
    assert field_error(page, "parcel_count") == "Parcels must be between 1 and 50."  # all at once
    assert input_value(page, "phone") == "12345"


async def test_a_district_that_is_not_in_the_city_is_refused(people: Personas) -> None:
    page = await refused(people, district="110105")  # Beijing's 朝阳区 under Changsha
    assert field_error(page, "district") == "请选择区县。"
    page = await refused(people, street="430103002")  # 坡子街街道 is in 天心区, not 开福区
    assert field_error(page, "street") == "这个街道不在所选区县。"


async def test_a_slot_that_is_over_or_not_offered_is_refused(people: Personas) -> None:
    page = await refused(people, slot="2026-01-01T00:00:00+00:00/2026-01-01T02:00:00+00:00")
    assert field_error(page, "slot") == "这个时段已不可选，请另选一个。"
    night = (datetime.now(UTC) + timedelta(days=1)).astimezone(BEIJING).replace(hour=3, minute=0, second=0)
    page = await refused(people, slot=f"{night.isoformat()}/{(night + timedelta(hours=2)).isoformat()}")
    assert field_error(page, "slot") == "这个时段已不可选，请另选一个。"  # the zone opens at 08:00
    page = await refused(people, slot="")
    assert field_error(page, "slot") == "请选择上门时段。"
    page = await refused(people, slot="9999-12-31T23:59:59-23:59/9999-12-31T23:59:59-23:59")  # no overflow
    assert field_error(page, "slot") == "请选择上门时段。"
    page = await refused(people, slot="tomorrow please")
    assert field_error(page, "slot") == "请选择上门时段。"


async def test_parcel_count_and_weight_keep_the_api_limits(people: Personas) -> None:
    for count in ("0", "51", "two"):
        page = await refused(people, parcel_count=count)
        assert field_error(page, "parcel_count") == "件数须在 1 到 50 之间。"
        assert input_value(page, "parcel_count") == count
    page = await refused(people, weight_kg="1001")
    assert field_error(page, "weight_kg") == "重量须大于 0、不超过 1000 公斤。"


async def test_an_unserved_address_cannot_be_booked(people: Personas) -> None:
    page = await refused(people, **WANGCHENG)
    assert field_error(page, "district") == "这个地址暂时不能上门取件。"


async def test_a_refused_booking_writes_nothing(people: Personas) -> None:
    console = await dispatcher(people)
    async with SSEStream(console, path="/console/events") as stream:
        await refused(people, phone="555")
        await stream.expect_none("pickup.created")


# -- throttle and cross-site posts -------------------------------------------------------------------


@pytest.fixture
def strict_server() -> Iterator[ServerProcess]:
    """A server of its own (its own counters) that allows two bookings per client address."""
    with demo_server("lanshou-book-", LANSHOU_BOOKING_PER_ADDRESS="2") as (_, server, _key):
        yield server


async def test_bookings_are_throttled_per_client_address(strict_server: ServerProcess) -> None:
    customer = Api(strict_server.url)
    try:
        token = await open_form(customer)
        slot = await first_slot(customer)
        for _ in range(2):
            r = await post(customer, booking(token, slot, phone="abc"))  # refused bookings count too
            assert r.status_code == 422
        r = await post(customer, booking(token, slot))
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert "从您的网络提交的预约太多了" in r.text and input_value(r.text, "name") == "王小明"
        r = await post(customer, booking(token, slot), lang="en")
        assert r.status_code == 429 and "Too many bookings from your network" in r.text
        # The pickers still work: only booking is limited.
        assert (await customer.get("/book/areas", params=KAIFU, headers=HX)).status_code == 200
    finally:
        await customer.close()


async def test_a_post_without_the_form_s_token_is_refused(people: Personas) -> None:
    customer = people.anonymous()
    token = await open_form(customer)
    form = booking(token, await first_slot(customer))
    del form["_csrf_token"]
    assert (await post(customer, form)).status_code == 403
    stranger = people.anonymous()  # another browser's token is no good either
    assert (await post(stranger, booking(token, form["slot"]))).status_code == 403


async def test_a_post_the_browser_says_is_cross_site_is_refused(people: Personas) -> None:
    customer = people.anonymous()
    token = await open_form(customer)
    form = booking(token, await first_slot(customer))
    r = await post(customer, form, headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403 and "这个表单只能从本站提交" in r.text
    r = await post(customer, form, headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    r = await post(
        customer, form, headers={"origin": "https://evil.example", "sec-fetch-site": "same-origin"}
    )
    assert r.status_code == 303, r.text  # the browser's own verdict wins over a Host a proxy rewrote
    r = await post(customer, form, headers={"origin": str(customer.base_url).rstrip("/")})
    assert r.status_code == 303, r.text


async def test_a_stop_ship_area_is_refused_on_the_form_with_its_reason(people: Personas) -> None:
    admin = await people.user("admin")
    # Named by one street of 开福区 (捞刀河街道), so that no other test's address falls inside it.
    r = await admin.post(
        "/api/v1/stop-ship-areas",
        json={
            "name": "捞刀河封路",
            "reason": "道路施工，暂停揽收",
            "admin_areas": ["捞刀河街道"],
            "station": "ST-KF",
        },
    )
    assert r.status_code == 201, r.text
    area = r.json()
    try:
        customer = people.anonymous()
        r = await customer.get("/book/areas", params={**KAIFU, "street": "430105020"}, headers=HX)
        assert "这个地区暂停收寄：道路施工，暂停揽收" in r.text and options(r.text, "slot") == []
        page = await refused(people, street="430105020")
        assert field_error(page, "district") == "这个地区暂停收寄：道路施工，暂停揽收"
        page = await refused(people, lang="en", street="430105020")
        assert field_error(page, "district") == "Pickups are suspended in this area: 道路施工，暂停揽收"
    finally:
        r = await admin.post(f"/api/v1/stop-ship-areas/{area['id']}/end")
        assert r.status_code == 200, r.text
