"""The courier app is accessible on a 360 × 640 phone: axe-core (vendored, pwa/vendor/axe-core) finds no
serious or critical violation in any of its states (off duty, an offer ringing, a pickup held, My day,
the English page), and every control of the page's main actions is a target of at least 48 × 48 px.

axe is evaluated into the page under test from its source text: the page keeps its strict CSP (no
bypass), and the app never loads axe itself. Screenshots of each state at 360 × 640 and 1024 × 768 go to
/tmp/shots_a11y/ for a person to look at (NAME-360.png, NAME-1024.png, and NAME-360-end.png where the
list scrolls further).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests import conftest
from tests.browser.test_courier_app_browser import sign_in_and_go_on_duty
from tests.conftest import Personas, login_couriers, make_zone, new_waybill, pickup_body

pytestmark = pytest.mark.browser

AXE = (Path(__file__).resolve().parents[2] / "pwa" / "vendor" / "axe-core" / "axe.min.js").read_text()
SHOTS = Path("/tmp/shots_a11y")
PHONE = {"width": 360, "height": 640}
DESKTOP = {"width": 1024, "height": 768}

# The controls of the main actions: the duty button, the tab bar, and everything inside the cards and
# My day. Each must be 48 px each way, or 48 px tall and as wide as its card (a full-width row).
SMALL_TARGETS = """(() => {
  const controls = document.querySelectorAll(
    '#duty, .tabs a, #pickups button, #pickups a, #pickups input, #pickups select, #pickups summary');
  const small = [];
  for (const el of controls) {
    if (el.offsetParent === null) continue;  // not shown in this view
    const box = el.getBoundingClientRect();
    const card = el.closest('.card, #day, #app').getBoundingClientRect();
    const wide = box.width >= 48 || box.width >= card.width - 40;
    if (box.height < 48 || !wide) {
      const name = (el.textContent || el.name || el.id).trim().slice(0, 30);
      small.push(`${el.tagName.toLowerCase()} "${name}": ${Math.round(box.width)}x${Math.round(box.height)}`);
    }
  }
  return small;
})()"""


async def ring(page: Any, people: Personas, zone: conftest.TestZone) -> int:
    """Creates a pickup through the partner API; returns its id once the page rings. The wait is a
    function, not a string: Playwright evaluates a string with eval() on later polls, which the page's
    CSP refuses (no 'unsafe-eval')."""
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, parcel_count=2))
    assert r.status_code == 201, r.text
    await page.wait_for_function(
        "() => document.body.dataset.ringing === 'true'", polling="raf", timeout=5000
    )
    return int(r.json()["id"])


async def serious_violations(page: Any) -> list[str]:
    """Runs axe on the page as it is; returns its serious and critical violations, one readable line
    per element."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE)
    result = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations'], runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"
    )
    lines = []
    for violation in result["violations"]:
        if violation["impact"] not in ("serious", "critical"):
            continue
        for node in violation["nodes"]:
            lines.append(
                f"[{violation['impact']}] {violation['id']}: {violation['help']}\n"
                f"    at {' '.join(node['target'])}: {node['failureSummary']}\n    {node['html'][:200]}"
            )
    return lines


async def check_state(page: Any, name: str) -> None:
    """axe and the target sizes at 360 × 640, and screenshots at both sizes."""
    await page.set_viewport_size(PHONE)
    problems = await serious_violations(page)
    assert not problems, f"axe in state {name!r}:\n" + "\n".join(problems)
    small = await page.evaluate(SMALL_TARGETS)
    assert small == [], f"targets under 48 px in state {name!r}: {small}"
    for size, viewport in (("360", PHONE), ("1024", DESKTOP)):
        await page.set_viewport_size(viewport)
        await page.screenshot(path=str(SHOTS / f"{name}-{size}.png"))
        # Only the list between the bars scrolls: its end is a second picture when it is longer.
        if await page.evaluate(
            "(m => (m.scrollTop = m.scrollHeight) > 0 && m.scrollTop > 0)(document.getElementById('main'))"
        ):
            await page.screenshot(path=str(SHOTS / f"{name}-{size}-end.png"))
        await page.evaluate("document.getElementById('main').scrollTop = 0")
    await page.set_viewport_size(PHONE)


async def test_every_state_of_the_courier_app_passes_axe_with_large_targets(
    phone: Any, people: Personas
) -> None:
    zone = await make_zone(people, couriers=1)
    name = zone.couriers[0]
    await phone.goto("/app")
    await phone.fill("input[name=username]", name)
    await phone.fill("input[name=password]", "pw-" + name.split("-")[-1])
    await phone.click("button[type=submit]")
    await expect(phone.locator("#duty")).to_have_attribute("aria-pressed", "false")
    # The check can fail: a button with no name and grey on grey text are reported.
    await phone.evaluate(
        "document.getElementById('notice').insertAdjacentHTML('afterend', "
        "'<div id=probe><button></button><p class=grey>too pale to read</p></div>');"
        "document.querySelector('#probe .grey').style.color = '#aaa';"
    )
    found = "\n".join(await serious_violations(phone))
    assert "button-name" in found and "color-contrast" in found, found
    await phone.evaluate("document.getElementById('probe').remove()")
    await check_state(phone, "off-duty")

    await phone.locator("#duty").tap()
    await expect(phone.locator("#duty")).to_have_attribute("aria-pressed", "true")
    # A position known from the heartbeat: the offer says how far it is.
    (courier,) = await login_couriers(people, zone, on_duty=False)
    r = await courier.post(
        "/api/v1/courier/heartbeat", json={"lat": zone.lat - 0.01, "lng": zone.lng, "datum": "wgs84"}
    )
    assert r.status_code == 200, r.text
    pickup_id = await ring(phone, people, zone)
    offer = phone.locator(f"#offer-{pickup_id}")
    await expect(offer.locator(".distance")).to_have_text(re.compile(r"距离 1\.1 公里"))
    await check_state(phone, "offer-ringing")
    await offer.locator("button[data-action=decline]").tap()  # decline opens its reasons
    await expect(offer.locator("button[data-decline-reason=too_far]")).to_be_visible()
    await check_state(phone, "offer-decline-reasons")
    await offer.locator("button[data-decline-back]").tap()  # not after all: accept and decline come back

    await offer.locator("button[data-action=accept]").tap()
    held = phone.locator(f"#held-{pickup_id}")
    await expect(held).to_have_attribute("data-status", "accepted")
    await expect(held.locator("[data-due-at]")).to_contain_text(re.compile(r"时限还剩 \d+:\d\d:\d\d"))
    await check_state(phone, "held")

    # A second pickup collected and a third failed, so My day has closed rows and counts.
    for outcome in ("collect", "fail"):
        other = await ring(phone, people, zone)
        await phone.locator(f"#offer-{other} button[data-action=accept]").tap()
        await expect(phone.locator(f"#held-{other}")).to_be_visible()
        body = {"waybill_no": new_waybill()} if outcome == "collect" else {"reason": "customer_absent"}
        r = await courier.post(f"/api/v1/courier/pickups/{other}/{outcome}", json=body)
        assert r.status_code == 200, r.text
        await expect(phone.locator(f"#held-{other}")).to_have_count(0)

    await phone.locator(".tabs a[data-view=day]").tap()
    day = phone.locator("#day")
    await expect(day).to_be_visible()
    await expect(phone.locator(".tabs a[data-view=day]")).to_have_attribute("aria-current", "page")
    await expect(phone.locator("#duty")).to_be_hidden()
    await expect(day.locator("[data-count=collected] dd")).to_have_text("1")
    await expect(day.locator("[data-count=failed] dd")).to_have_text("1")
    await expect(day.locator("[data-count=held] dd")).to_have_text("1")
    await expect(day.locator("[data-outcome=failed]")).to_contain_text("客户不在")
    await check_state(phone, "my-day")

    # A tap on an open row of My day goes back to its card.
    await day.locator(f"a[href='#held-{pickup_id}']").tap()
    await expect(held).to_be_in_viewport()
    await expect(phone.locator(".tabs a[data-view=now]")).to_have_attribute("aria-current", "page")

    await phone.goto("/app?lang=en")
    await expect(phone.locator("html")).to_have_attribute("lang", "en")
    await expect(held).to_contain_text("Due in")
    await check_state(phone, "held-en")
    await phone.locator(".tabs a[data-view=day]").tap()
    await check_state(phone, "my-day-en")


async def test_a_new_offer_brings_my_day_back_to_the_ringing_card(phone: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await sign_in_and_go_on_duty(phone, zone)
    await phone.locator(".tabs a[data-view=day]").tap()
    await expect(phone.locator("#day")).to_be_visible()
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    await expect(phone.locator(f"#offer-{r.json()['id']}")).to_be_visible()
    await expect(phone.locator("#day")).to_be_hidden()
    await expect(phone.locator(".tabs a[data-view=now]")).to_have_attribute("aria-current", "page")
