"""The courier app in a real browser on a 360 × 640 touch screen: it rings for a new offer within a
second and stops at once when the offer is answered or taken by someone else; accept, contacted, a
waybill refused and one collected; and Chromium finds it installable and opens it with no network."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from playwright.async_api import expect

from tests import conftest
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import Personas, ServerProcess, login_couriers, make_zone, new_waybill, pickup_body

pytestmark = pytest.mark.browser

SHOTS = "/tmp/shots"
RINGING = "document.body.dataset.ringing === 'true'"
# Resolves as soon as the page's ringing turns to `state` ("true"/"false"), watched by a MutationObserver in the
# page. (wait_for_function polls by evaluating a string, which the page's CSP refuses once it has to wait.)
RINGING_BECOMES = """([state, ms]) => new Promise((resolve, reject) => {
  if (document.body.dataset.ringing === state) return resolve(true);
  const observer = new MutationObserver(() => {
    if (document.body.dataset.ringing !== state) return;
    observer.disconnect();
    resolve(true);
  });
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-ringing"] });
  setTimeout(() => { observer.disconnect(); reject(new Error(`ringing is not ${state} after ${ms} ms`)); }, ms);
})"""


async def ringing_becomes(page: Any, state: str, timeout_ms: int = 5000) -> None:
    await page.evaluate(RINGING_BECOMES, [state, timeout_ms])


async def until(page: Any, expression: str, seconds: float = 5) -> None:
    """Waits until the expression (maybe a promise) is true in the page."""
    for _ in range(int(seconds * 10)):
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still not true after {seconds} s: {expression}")


SMALL_TARGETS = """[...document.querySelectorAll('button, a, input, select')]
  .filter((el) => el.offsetParent !== null)
  .map((el) => [el.textContent.trim() || el.name || el.id, el.getBoundingClientRect()])
  .filter(([, box]) => box.width < 48 || box.height < 48)
  .map(([name, box]) => `${name}: ${Math.round(box.width)}x${Math.round(box.height)}`)"""


async def sign_in_and_go_on_duty(page: Any, zone: conftest.TestZone, index: int = 0) -> None:
    name = zone.couriers[index]
    await page.goto("/app")
    await expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", "pw-" + name.split("-")[-1])
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/app$"))
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    duty = page.locator("#duty")
    await expect(duty).to_have_attribute("aria-pressed", "false")
    await duty.tap()
    await expect(duty).to_have_attribute("aria-pressed", "true")


async def ring_time(page: Any, people: Personas, zone: conftest.TestZone) -> tuple[int, float]:
    """Creates a pickup through the partner API; returns its id and the seconds until the page rang."""
    assert await page.evaluate("document.body.dataset.ringing") == "false"
    started = time.perf_counter()
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, parcel_count=2))
    assert r.status_code == 201, r.text
    await ringing_becomes(page, "true")
    return r.json()["id"], time.perf_counter() - started


async def test_an_offer_rings_until_accepted_then_is_contacted_and_collected(
    phone: Any, people: Personas
) -> None:
    zone = await make_zone(people, couriers=1)
    await sign_in_and_go_on_duty(phone, zone)
    await phone.screenshot(path=f"{SHOTS}/courier-on-duty-360.png")

    pickup_id, seconds = await ring_time(phone, people, zone)
    print(f"\ncreate → ring: {seconds * 1000:.0f} ms")
    assert seconds < 1.0
    offer = phone.locator(f"#offer-{pickup_id}")
    await expect(offer).to_contain_text("望城区 白箬铺镇")
    await expect(offer).to_contain_text("2 件")
    await expect(offer).to_contain_text("139****5678")
    await expect(offer.locator("[data-left]")).to_contain_text(re.compile(r"剩 \d+ 秒"))
    # It keeps ringing: the siren repeats while nobody answers.
    await phone.wait_for_timeout(1500)
    assert await phone.evaluate(RINGING)
    assert await phone.evaluate("document.body.dataset.audio") == "running"
    assert await phone.evaluate(SMALL_TARGETS) == []  # one-handed: every control at least 48 px
    await phone.screenshot(path=f"{SHOTS}/courier-offer-360.png")
    await phone.set_viewport_size({"width": 1024, "height": 768})
    await phone.screenshot(path=f"{SHOTS}/courier-offer-1024.png")
    await phone.set_viewport_size({"width": 360, "height": 640})

    await offer.locator("button[data-action=accept]").tap()
    assert await phone.evaluate("document.body.dataset.ringing") == "false"  # at once, before the answer
    held = phone.locator(f"#held-{pickup_id}")
    await expect(held).to_have_attribute("data-status", "accepted")
    await expect(held.locator("a.call")).to_have_attribute("href", "tel:13912345678")
    await expect(held).to_contain_text("1号楼2单元")
    assert await phone.evaluate(SMALL_TARGETS) == []

    await held.locator("button[data-action=contacted]").tap()
    await expect(held).to_have_attribute("data-status", "contacted")

    waybill = held.locator("input[name=waybill_no]")
    await waybill.fill("EA123456784CN")  # the check digit of 12345678 is 5
    await held.locator("form.collect button[type=submit]").tap()
    error = held.locator("form.collect [data-error]")
    await expect(error).to_have_text("运单号不正确（校验位不符），请重新扫描或输入")
    await phone.screenshot(path=f"{SHOTS}/courier-held-360.png", full_page=True)
    await phone.set_viewport_size({"width": 1024, "height": 768})
    await phone.screenshot(path=f"{SHOTS}/courier-held-1024.png", full_page=True)
    await phone.set_viewport_size({"width": 360, "height": 640})

    good = new_waybill()
    await waybill.fill(good)
    await held.locator("form.collect button[type=submit]").tap()
    await expect(held).to_have_count(0)
    r = await people.partner().get(f"/api/v1/pickups/{pickup_id}")
    assert r.json()["status"] == "collected" and r.json()["waybill_no"] == good


async def test_an_offer_taken_by_another_courier_or_cancelled_stops_ringing(
    phone: Any, people: Personas
) -> None:
    zone = await make_zone(people, couriers=2)
    await sign_in_and_go_on_duty(phone, zone, index=0)
    (_, other) = await login_couriers(people, zone, on_duty=False)
    r = await other.post("/api/v1/courier/duty", json={"on_duty": True})
    assert r.status_code == 200, r.text

    pickup_id, _ = await ring_time(phone, people, zone)
    await expect(phone.locator(f"#offer-{pickup_id}")).to_be_visible()
    r = await other.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    await ringing_becomes(phone, "false")
    await expect(phone.locator(f"#offer-{pickup_id}")).to_have_count(0)

    # The customer cancels through the partner before anyone answers.
    pickup_id, _ = await ring_time(phone, people, zone)
    r = await people.partner().post(f"/api/v1/pickups/{pickup_id}/cancel", json={"reason": "changed my mind"})
    assert r.status_code == 200, r.text
    await ringing_becomes(phone, "false")
    await expect(phone.locator(f"#offer-{pickup_id}")).to_have_count(0)


async def test_chromium_finds_the_app_installable_and_opens_it_offline(
    browser: Any, server: ServerProcess, people: Personas, tmp_path: Any
) -> None:
    # A profile on disk: Chromium never offers to install from an off-the-record context, which is what
    # new_context() gives ("in-incognito").
    context = await browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        base_url=server.url,
        locale="zh-CN",
        viewport={"width": 360, "height": 640},
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(8000)
    try:
        page = context.pages[0] if context.pages else await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        zone = await make_zone(people, couriers=1)
        await sign_in_and_go_on_duty(page, zone)
        await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        cdp = await context.new_cdp_session(page)
        answer = await cdp.send("Page.getInstallabilityErrors")
        assert answer["installabilityErrors"] == []
        manifest = await cdp.send("Page.getAppManifest")
        assert not manifest.get("errors"), manifest

        # The service worker controls the page once it is reloaded; then the shell opens with no network.
        await page.reload()
        await until(page, "navigator.serviceWorker.controller !== null")
        await context.set_offline(True)
        await page.reload()
        await expect(page.locator("#duty")).to_be_visible()
        await expect(page.locator("#live")).to_have_attribute("data-state", "connecting")
        await page.screenshot(path=f"{SHOTS}/courier-offline-360.png")
        await context.set_offline(False)
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        await context.close()


async def holding_one_pickup(phone: Any, people: Personas) -> tuple[conftest.TestZone, Any]:
    """A courier on duty who has accepted one pickup: the zone and the held card's locator."""
    zone = await make_zone(people, couriers=1)
    await sign_in_and_go_on_duty(phone, zone)
    pickup_id, _ = await ring_time(phone, people, zone)
    await phone.locator(f"#offer-{pickup_id} button[data-action=accept]").tap()
    held = phone.locator(f"#held-{pickup_id}")
    await expect(held).to_have_attribute("data-status", "accepted")
    return zone, held


async def test_a_waybill_typed_while_the_list_refreshes_is_kept(phone: Any, people: Personas) -> None:
    _, held = await holding_one_pickup(phone, people)

    # The list's next answer is held back; meanwhile the courier types the waybill number.
    release = asyncio.Event()

    async def slow_list(route: Any) -> None:
        await release.wait()
        await route.continue_()

    await phone.route("**/app/pickups*", slow_list)
    await held.locator("button[data-action=contacted]").tap()  # sends, then refreshes the list
    waybill = new_waybill()
    await held.locator("input[name=waybill_no]").fill(waybill)
    release.set()
    await expect(held).to_have_attribute("data-status", "contacted")  # the new list is in
    await expect(held.locator("input[name=waybill_no]")).to_have_value(waybill)
    await phone.unroute("**/app/pickups*")


async def test_a_refusal_answered_after_the_list_refreshed_is_shown(phone: Any, people: Personas) -> None:
    # A wrong waybill is sent; before the server's refusal comes back, a new offer arrives and the list is
    # swapped for a new one. The refusal must show on the card that is on screen now, not on the old one.
    zone, held = await holding_one_pickup(phone, people)

    release = asyncio.Event()
    sent = asyncio.Event()

    async def slow_collect(route: Any) -> None:
        sent.set()
        await release.wait()
        await route.continue_()

    await phone.route("**/api/v1/courier/pickups/*/collect", slow_collect)
    await held.locator("input[name=waybill_no]").fill("EA123456784CN")  # the check digit should be 5
    await held.locator("form.collect button[type=submit]").tap()
    await asyncio.wait_for(sent.wait(), 10)
    old_card = await held.element_handle()
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    await expect(phone.locator(f"#offer-{r.json()['id']}")).to_be_visible()
    assert await old_card.evaluate("(card) => !card.isConnected")  # the card was swapped meanwhile
    release.set()
    await expect(held.locator("form.collect [data-error]")).to_have_text(
        "运单号不正确（校验位不符），请重新扫描或输入"
    )
    await phone.unroute("**/api/v1/courier/pickups/*/collect")


async def test_going_on_duty_shares_the_position_and_offers_say_how_far(phone: Any, people: Personas) -> None:
    # The phone lets the app know where it is (granted at the on-duty tap); the courier is ~1.1 km south.
    zone = await make_zone(people, couriers=1)
    await phone.context.grant_permissions(["geolocation"])
    await phone.context.set_geolocation({"latitude": zone.lat - 0.01, "longitude": zone.lng})
    heartbeats: list[Any] = []
    phone.on(
        "request",
        lambda r: (
            heartbeats.append(r.post_data_json) if r.url.endswith("/api/v1/courier/heartbeat") else None
        ),
    )
    await sign_in_and_go_on_duty(phone, zone)
    await until(phone, "document.body.dataset.ringing === 'false'")
    pickup_id, _ = await ring_time(phone, people, zone)
    await expect(phone.locator(f"#offer-{pickup_id} .distance")).to_have_text(re.compile(r"距离 1\.1 公里"))
    assert heartbeats and heartbeats[0]["datum"] == "wgs84"
    assert (
        abs(heartbeats[0]["lat"] - (zone.lat - 0.01)) < 1e-6 and abs(heartbeats[0]["lng"] - zone.lng) < 1e-6
    )
