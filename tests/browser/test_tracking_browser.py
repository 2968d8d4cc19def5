"""The customer's tracking page in a real browser on a 360 × 640 touch screen: booked through the form
(/book), it goes live from offered
to accepted, contacted and collected as the courier acts (through the courier API), the customer chases
and changes the slot on the way, and rates the pickup once it is collected."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import Personas, login_couriers, make_zone, new_waybill, pickup_body

pytestmark = pytest.mark.browser

SHOTS = "/tmp/shots"
# Chooses a province in the change of address right after the next swap of the actions, before htmx
# settles it (what a quick thumb does): the argument is the province's code. Notes on <body> the city's
# refusal as it stood at that moment.
CHOOSE_ON_SWAP = """(code) => document.body.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id !== "actions") return;
  const refusal = document.querySelector('[data-error="address.city"]');
  document.body.dataset.refused = refusal ? refusal.textContent : "";
  const province = document.getElementById("addr-province");
  province.value = code;
  province.dispatchEvent(new Event("change", { bubbles: true }));
}, { once: true })"""
# Counts the actions' re-reads (GET …/actions, made by .actions-feed) that have been swapped in.
COUNT_REREADS = r"""() => document.body.addEventListener("htmx:afterSettle", (event) => {
  const request = event.detail.requestConfig;
  if (request && request.verb === "get" && /\/actions(\?|$)/.test(request.path)) {
    document.body.dataset.rereads = String(Number(document.body.dataset.rereads || 0) + 1);
  }
})"""
UNREACHABLE = "无法连接服务器，请检查网络后重试"


async def test_the_page_goes_live_to_collected_and_takes_a_rating(phone: Any, people: Personas) -> None:
    # A zone of its own for one real street (the booking form checks addresses against GB/T 2260).
    zone = await make_zone(people, couriers=1, admin_areas=["麓谷街道"])
    (courier,) = await login_couriers(people, zone)
    await phone.goto("/book")
    await phone.select_option("#province", label="湖南省")
    await expect(phone.locator("#city option", has_text="长沙市")).to_have_count(1)
    await phone.select_option("#city", label="长沙市")
    await expect(phone.locator("#district option", has_text="岳麓区")).to_have_count(1)
    await phone.select_option("#district", label="岳麓区")
    await expect(phone.locator("#street option", has_text="麓谷街道")).to_have_count(1)
    await phone.select_option("#street", label="麓谷街道")
    # Our zone's station, not just "served": the district alone may be served by another test's zone,
    # and a slot picked from its list before the street's answer swaps in is not one of ours (422).
    await expect(phone.locator("#served")).to_contain_text(f"可以上门取件（测试站 {zone.station}）")
    await expect(phone.locator("#slot")).to_be_enabled()
    await phone.select_option("#slot", index=1)
    await phone.fill("#name", "王小明")
    await phone.fill("#phone", "13907312345")
    await phone.fill("#detail", "麓谷小镇 3 栋 1201")
    await phone.get_by_role("button", name="预约取件").tap()
    await phone.wait_for_url(re.compile(r"/t/LS[A-Z0-9]{20}$"), timeout=30_000)
    code = phone.url.rsplit("/", 1)[-1]
    # The courier's screen has it on offer (the customer's page never shows the pickup's id).
    offers = (await courier.get("/api/v1/courier/pickups")).json()["offers"]
    (pickup,) = [o for o in offers if o["tracking_code"] == code]
    status = phone.locator("#status")
    await expect(status).to_have_attribute("data-status", "offered")
    await expect(phone.locator("h1.now")).to_have_text("正在为您寻找揽收员")
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    await expect(status).to_have_attribute("data-status", "accepted")
    await expect(status.locator(".courier")).to_contain_text("师傅")

    # 催件: done once, then the button waits out the ten minutes.
    await phone.locator("form.chase button").tap()
    await expect(phone.locator("#done .msg.ok")).to_have_text("已催件，揽收员会尽快处理")
    await expect(phone.locator("form.chase button")).to_be_disabled()
    await expect(status.locator('[data-step="chased"]')).to_have_count(1)

    # Another slot of the zone's.
    await phone.locator("details.reschedule summary").tap()
    slot = phone.locator("details.reschedule input[name=slot]").nth(1)
    await slot.check()
    await phone.locator("details.reschedule button[type=submit]").tap()
    await expect(phone.locator("#done .msg.ok")).to_have_text("预约时间已修改")
    await expect(status.locator('[data-step="rescheduled"]')).to_have_count(1)
    await phone.screenshot(path=f"{SHOTS}/tracking-accepted-360.png", full_page=True)

    await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/contacted", json={})
    await expect(status).to_have_attribute("data-status", "contacted")
    waybill = new_waybill()
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": waybill})
    assert r.status_code == 200, r.text
    await expect(status).to_have_attribute("data-status", "collected")
    await expect(status.locator(".waybill")).to_contain_text(waybill)
    await expect(phone.locator("form.chase")).to_have_count(0)
    await expect(phone.locator("details.cancel")).to_have_count(0)

    # Rate: no stars is refused next to the stars, the comment typed is kept.
    rate = phone.locator("form.rate")
    await rate.locator("textarea[name=comment]").fill("师傅很准时")
    await rate.locator("button[type=submit]").tap()
    await expect(rate.locator('[data-error="stars"]')).to_have_text("请选择 1 到 5 星")
    await expect(phone.locator("form.rate textarea[name=comment]")).to_have_value("师傅很准时")
    await phone.locator("form.rate .stars label").nth(4).tap()
    await phone.locator("form.rate button[type=submit]").tap()
    await expect(phone.locator("#done .msg.ok")).to_have_text("感谢您的评价")
    await expect(phone.locator("form.rate")).to_have_count(0)
    await expect(status.locator('[data-step="rated"]')).to_contain_text("★★★★★")
    await phone.screenshot(path=f"{SHOTS}/tracking-collected-360.png", full_page=True)
    await phone.set_viewport_size({"width": 1024, "height": 768})
    await phone.screenshot(path=f"{SHOTS}/tracking-collected-1024.png", full_page=True)


async def test_the_customer_changes_the_address_with_the_pickers(phone: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))  # 长沙市 望城区 白箬铺镇
    assert r.status_code == 201, r.text
    await phone.goto(f"/t/{r.json()['tracking_code']}")
    await phone.locator("details.address-change summary").tap()
    # The current address is chosen, each picker offering what is under the one above.
    await expect(phone.locator("#addr-district")).to_have_value("430112")
    await expect(phone.locator("#addr-street")).to_have_value("430112115")
    # Another district of the same city brings its streets (the error beside an empty picker is
    # checked over HTTP in tests/test_tracking.py).
    await phone.fill("#addr-detail", "新地址 8 栋")
    submit = phone.get_by_role("button", name="确认修改地址")
    await expect(phone.locator("#addr-district option", has_text="岳麓区")).to_have_count(1)
    await phone.select_option("#addr-district", label="岳麓区")
    await expect(phone.locator("#addr-street option", has_text="麓谷街道")).to_have_count(1)
    await phone.select_option("#addr-street", label="麓谷街道")
    await phone.screenshot(path=f"{SHOTS}/tracking-address-360.png", full_page=True)
    await phone.set_viewport_size({"width": 1024, "height": 768})
    await phone.screenshot(path=f"{SHOTS}/tracking-address-1024.png", full_page=True)
    await phone.evaluate(COUNT_REREADS)
    await submit.tap()
    await expect(phone.locator('#status [data-step="address_changed"]')).to_have_count(1)
    await expect(phone.locator("#status .address")).to_contain_text("湖南省长沙市岳麓区麓谷街道")
    # A new zone: the pickup is offered afresh there, and that status change re-reads the actions; the
    # "changed" line is outside them and stays.
    await phone.wait_for_function("() => Number(document.body.dataset.rereads || 0) > 0", timeout=20000)
    await expect(phone.locator("#done .msg.ok")).to_have_text("取件地址已修改")


async def test_after_a_refused_change_another_province_brings_its_cities(
    phone: Any, people: Personas
) -> None:
    """The form's answer to a refused change swaps in new pickers; a province chosen right after that
    must still fetch its cities (it once reached the pickers before htmx had wired them)."""
    zone = await make_zone(people, couriers=1)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    await phone.goto(f"/t/{r.json()['tracking_code']}")
    await phone.locator("details.address-change summary").tap()
    await phone.select_option("#addr-province", label="北京市")
    await expect(phone.locator("#addr-city option", has_text="市辖区")).to_have_count(1)
    await expect(phone.locator("#addr-district")).to_be_disabled()
    await phone.fill("#addr-detail", "新地址 8 栋")
    # Another province is chosen the moment the refusal is on the screen: htmx swaps the answer in and
    # wires what it brought only when the swap settles (20 ms later), and a quick thumb or a busy test
    # driver once chose in between, which fetched nothing. Chosen from the swap's own event, the test
    # lands in that gap every time.
    await phone.evaluate(CHOOSE_ON_SWAP, "43")  # 湖南省
    await phone.get_by_role("button", name="确认修改地址").tap()  # no city: refused beside the city
    # The refusal was on the screen when the province was chosen, and the choice fetches its cities
    # (which replace the pickers and the refusal beside them).
    await expect(phone.locator("body")).to_have_attribute("data-refused", "请填写此项")
    await expect(phone.locator("#addr-city option", has_text="长沙市")).to_have_count(1)
    await expect(phone.locator("#addr-detail")).to_have_value("新地址 8 栋")
    await expect(phone.locator("#addr-city")).to_be_enabled()


async def test_a_chase_the_server_does_not_take_is_said_beside_it_until_one_goes_through(
    phone: Any, people: Personas
) -> None:
    zone = await make_zone(people, couriers=1)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    await phone.goto(f"/t/{r.json()['tracking_code']}")
    chase = phone.locator("form.chase")
    failure = chase.locator("[data-failure]")
    # The server cannot be reached: the page says so beside the button, which can be tapped again.
    await phone.route("**/chase", lambda route: route.abort())
    await chase.locator("button").tap()
    await expect(failure).to_have_text(UNREACHABLE)
    await expect(chase.locator("button")).to_be_enabled()
    await phone.screenshot(path=f"{SHOTS}/tracking-unreachable-360.png", full_page=True)
    # The server fails.
    await phone.unroute("**/chase")
    await phone.route("**/chase", lambda route: route.fulfill(status=500, body="boom"))
    await chase.locator("button").tap()
    await expect(failure).to_have_text("服务器出错（500），请稍后重试")
    # It answers again: the chase is done and the note is gone.
    await phone.unroute("**/chase")
    await chase.locator("button").tap()
    await expect(phone.locator("#done .msg.ok")).to_have_text("已催件，揽收员会尽快处理")
    await expect(phone.locator("[data-failure]")).to_have_count(0)


async def test_the_live_status_says_it_is_reconnecting_while_its_stream_is_down(
    phone: Any, people: Personas
) -> None:
    zone = await make_zone(people, couriers=1)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    code = r.json()["tracking_code"]
    live = phone.locator("#live")
    await phone.route("**/events*", lambda route: route.abort())
    await phone.goto(f"/t/{code}?lang=en")
    await expect(live).to_have_text("Live updates interrupted, reconnecting…")
    await expect(live).to_be_visible()
    await phone.screenshot(path=f"{SHOTS}/tracking-reconnecting-en-360.png", full_page=True)
    # htmx-ext-sse tries again (0.5 s, 1 s, 2 s, … apart): once the stream is back, so is the page.
    await phone.unroute("**/events*")
    await expect(live).to_be_hidden(timeout=30000)


async def test_an_empty_detail_is_refused_by_the_server_in_the_page_language(
    phone: Any, people: Personas
) -> None:
    """Not the browser's own "Please fill out this field" bubble (in the browser's language): the form
    is novalidate and the server's message stands beside the field."""
    zone = await make_zone(people, couriers=1)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    await phone.goto(f"/t/{r.json()['tracking_code']}")
    await phone.locator("details.address-change summary").tap()
    await expect(phone.locator("#addr-street")).to_have_value("430112115")
    await phone.get_by_role("button", name="确认修改地址").tap()
    await expect(phone.locator('[data-error="address.detail"]')).to_have_text("请填写此项")
    await expect(phone.locator("#addr-detail")).to_have_attribute("aria-invalid", "true")
