"""The console calls for attention, and its forms say what happened, in a real browser at the two desktop
sizes dispatchers use: a breach plays the attention sound and counts in the title bar (each kind can be
switched off), a pickup nobody can take counts as new in the queue, taking back pickups couriers hold
asks first, and a failed or unreachable server is said inside the form."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import open_page
from tests.conftest import Personas, ServerProcess, login_couriers, make_zone, pickup_body

pytestmark = pytest.mark.browser

VIEWPORTS = [(1280, 800), (1024, 768)]


@pytest.fixture(params=VIEWPORTS, ids=lambda v: f"{v[0]}x{v[1]}")
async def desk(request: Any, browser: Any, server: ServerProcess) -> AsyncIterator[Any]:
    """A fresh browser profile in Chinese at a dispatcher's screen size."""
    width, height = request.param
    async with open_page(
        browser, server, locale="zh-CN", viewport={"width": width, "height": height}
    ) as page:
        yield page


async def sign_in(page: Any, lang: str = "") -> None:
    await page.goto("/auth/login" + ("?lang=en" if lang == "en" else ""))
    await page.fill("input[name=username]", "dispatch")
    await page.fill("input[name=password]", "demo")
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/console"))
    if lang == "en":
        await page.goto("/console?lang=en")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")


async def attention(page: Any) -> dict[str, Any]:
    return await page.evaluate(
        """() => { const a = document.getElementById('attention');
                   const d = a.dataset;
                   return {count: +d.count, played: +d.played, kind: d.lastKind || '', title: document.title,
                           breaches: +(d.alertsBreach || 0), chases: +(d.alertsChase || 0),
                           breachSounds: +(d.playedBreach || 0)}; }"""
    )


async def wait_for_attention(page: Any, condition: str) -> None:
    """Waits until `condition` (JavaScript, over `a`, the #attention element's dataset) holds."""
    await page.wait_for_function(
        f"() => {{ const a = document.getElementById('attention').dataset; return {condition}; }}",
        timeout=30_000,
    )


async def test_a_breach_plays_the_sound_and_counts_in_the_title_until_switched_off(
    desk: Any, people: Personas
) -> None:
    zone = await make_zone(people, couriers=1, sla_minutes=0.1)  # breached 6 s after booking
    (courier,) = await login_couriers(people, zone)
    await sign_in(desk)
    # Opened afresh (as from a bookmark, no click since): the browser allows no sound before the
    # dispatcher has touched the page, and the panel says so.
    await desk.goto("/console")
    await expect(desk.locator("#live")).to_have_attribute("data-state", "live")
    sound = desk.locator("#attention-sound")
    await expect(sound).to_have_attribute("data-state", "locked")
    await expect(sound).to_contain_text("点击页面任意处开启声音")
    await desk.locator("#attention h2").click()
    await expect(sound).to_have_attribute("data-state", "on")
    # Only breaches for now: other tests' pickups on this server may still land in the queue, and their
    # chime would hold back the breach's (one chime per 3 s).
    for kind in ("queue", "chase"):
        await desk.locator(f'#attention input[data-attention="{kind}"]').uncheck()
    before = await attention(desk)

    partner = people.partner()

    async def book_and_accept() -> dict[str, Any]:
        # Accepted at once, so that no offer expires into the queue (another alert) during the test.
        created = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
        r = await courier.post(f"/api/v1/courier/pickups/{created['id']}/accept", json={})
        assert r.status_code == 200, r.text
        return created

    first = await book_and_accept()
    await expect(desk.locator(f"#pickup-{first['id']}")).to_have_class(
        re.compile(r"sla-breached"), timeout=30_000
    )
    # Other tests' pickups may call for attention meanwhile: the breach is told by its own counters.
    await wait_for_attention(desk, "+a.playedBreach > 0")
    after = await attention(desk)
    assert after["breaches"] >= 1 and after["count"] > before["count"]
    assert after["title"].startswith(f"({after['count']}) ") and "调度台" in after["title"]
    await expect(desk.locator("#attention-count")).to_be_visible()

    # Seen: the count goes, the title is the page's own again.
    await desk.click("#attention-ack")
    await expect(desk.locator("#attention")).to_have_attribute("data-count", "0")
    assert not (await desk.title()).startswith("(")

    # Breaches off, chases on; the switches hold after a reload.
    await desk.locator('#attention input[data-attention="breach"]').uncheck()
    await desk.locator('#attention input[data-attention="chase"]').check()
    await desk.reload()
    await expect(desk.locator("#live")).to_have_attribute("data-state", "live")
    await expect(desk.locator('#attention input[data-attention="breach"]')).not_to_be_checked()
    await desk.locator("#attention h2").click()  # sound allowed again on the new page
    second = await book_and_accept()
    await expect(desk.locator(f"#pickup-{second['id']}")).to_have_class(
        re.compile(r"sla-breached"), timeout=30_000
    )
    # The stream keeps its order: once the chase after the breach has counted, the breach was heard.
    r = await partner.post(f"/api/v1/pickups/{second['id']}/chase", json={})
    assert r.status_code == 200, r.text
    await wait_for_attention(desk, "+a.alertsChase > 0")
    state = await attention(desk)
    assert state["breaches"] == 0 and state["breachSounds"] == 0
    assert state["count"] >= 1 and state["title"].startswith(f"({state['count']}) ")
    assert (
        json.loads(await desk.evaluate("localStorage.getItem('lanshou.console.attention')"))["breach"]
        is False
    )


async def test_a_pickup_nobody_can_take_counts_as_new_in_the_queue(desk: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)  # nobody on duty: a new pickup goes straight to the queue
    await sign_in(desk)
    await desk.locator("#attention h2").click()
    before = await attention(desk)
    created = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    await expect(desk.locator(f"#rows-queue #pickup-{created['id']}")).to_be_visible()
    await wait_for_attention(desk, "+a.alertsQueue > 0")
    assert (await attention(desk))["count"] > before["count"]
    assert (await desk.title()).startswith("(")

    # The title count switched off: the alert still counts on the panel, the title stays plain.
    await desk.locator('#attention input[data-attention="title"]').uncheck()
    assert not (await desk.title()).startswith("(")


async def test_assign_then_take_back_asks_first(desk: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    other = await make_zone(people)
    await login_couriers(people, zone)
    created = (await people.partner().post("/api/v1/pickups", json=pickup_body(other))).json()
    await sign_in(desk)
    row = desk.locator(f"#pickup-{created['id']}")
    box = row.locator("input[name=pickup_ids]")
    form = desk.locator("#dispatch-form")

    # Assign it to a courier of another zone, which needs "allow outside the zone".
    await box.check()
    await form.locator("select[name=courier_id]").select_option(str(zone.courier_ids[0]))
    await form.locator("input[name=reason]").fill("顺路")
    await form.locator("input[name=allow_outside_zone]").check()
    await form.locator("button.primary").click()
    await expect(form.locator(".msg.ok")).to_contain_text(zone.couriers[0])
    await expect(desk.locator(f"#rows-held #pickup-{created['id']}")).to_be_visible()
    # The form starts afresh: the box that skips the zone check and the selection are cleared.
    await expect(form.locator("input[name=allow_outside_zone]")).not_to_be_checked()
    await expect(box).not_to_be_checked()
    await expect(desk.locator("#selected-count")).to_have_text("已选 0 单")

    sent: list[str] = []
    desk.on("request", lambda r: sent.append(r.url) if "/console/pickups/unassign" in r.url else None)
    questions: list[str] = []
    answered = asyncio.Event()

    async def answer(dialog: Any, accept: bool) -> None:
        questions.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())
        answered.set()

    # Take it back: the page asks first; "cancel" sends nothing.
    await box.check()
    await form.locator("input[name=reason]").fill("改派")
    desk.once("dialog", lambda d: asyncio.ensure_future(answer(d, False)))
    await form.locator("#dispatch-unassign").click()
    await asyncio.wait_for(answered.wait(), 15)
    assert "撤回揽投员手上的 1 单" in questions[0]
    await expect(form.locator("#dispatch-unassign")).to_be_enabled()
    assert sent == []
    await expect(desk.locator(f"#rows-held #pickup-{created['id']}")).to_be_visible()

    # "OK": taken back.
    desk.once("dialog", lambda d: asyncio.ensure_future(answer(d, True)))
    await form.locator("#dispatch-unassign").click()
    await expect(form.locator(".msg.ok")).to_contain_text("已撤回 1 单")
    assert len(questions) == 2 and len(sent) == 1
    await expect(desk.locator(f"#rows-held #pickup-{created['id']}")).to_have_count(0)


async def test_a_failed_or_unreachable_server_is_said_in_the_form(desk: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    created = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    await sign_in(desk)
    form = desk.locator("#dispatch-form")
    await desk.locator(f"#pickup-{created['id']} input[name=pickup_ids]").check()
    await form.locator("select[name=courier_id]").select_option(str(zone.courier_ids[0]))
    await form.locator("input[name=reason]").fill("试一下")

    # While the server thinks, the buttons are disabled and the form says it is working.
    release = asyncio.Event()

    async def slow_500(route: Any) -> None:
        await release.wait()
        await route.fulfill(status=500, body="boom")

    await desk.route("**/console/pickups/assign*", slow_500)
    await form.locator("button.primary").click()
    await expect(form.locator("#dispatch-busy")).to_be_visible()
    await expect(form.locator("#dispatch-busy")).to_have_css("opacity", "1")
    await expect(form.locator("button.primary")).to_be_disabled()
    await expect(form.locator("#dispatch-unassign")).to_be_disabled()
    release.set()
    await expect(form.locator("p[data-failure]")).to_contain_text("服务器出错（500）")
    await expect(form.locator("button.primary")).to_be_enabled()
    await expect(form.locator("#dispatch-busy")).to_have_css("opacity", "0")
    await desk.unroute("**/console/pickups/assign*")

    await desk.route("**/console/pickups/assign*", lambda route: route.abort("internetdisconnected"))
    await form.locator("button.primary").click()
    await expect(form.locator("p[data-failure]")).to_contain_text("连不上服务器")
    await expect(form.locator("p[data-failure]")).to_have_count(1)
    await desk.unroute("**/console/pickups/assign*")

    # The zone import form says so too.
    await desk.click("details.panel summary")
    zone_form = desk.locator("#zone-form")
    await desk.route("**/console/zones*", lambda route: route.fulfill(status=503, body="down"))
    await zone_form.locator("textarea[name=geojson]").fill('{"type": "FeatureCollection", "features": []}')
    await zone_form.locator("button[type=submit]").click()
    await expect(zone_form.locator("p[data-failure]")).to_contain_text("503")
    await desk.unroute("**/console/zones*")

    # The next success clears the failure.
    await form.locator("button.primary").click()
    await expect(form.locator(".msg.ok")).to_contain_text(zone.couriers[0])
    await expect(form.locator("p[data-failure]")).to_have_count(0)


async def test_the_english_page_says_failures_in_english(desk: Any, people: Personas) -> None:
    await sign_in(desk, "en")
    await expect(desk.locator("#attention-sound")).to_contain_text("Click anywhere to enable sound")
    form = desk.locator("#dispatch-form")
    await desk.route("**/console/pickups/unassign*", lambda route: route.abort("connectionrefused"))
    await form.locator("input[name=reason]").fill("x")
    await form.locator("#dispatch-unassign").click()
    await expect(form.locator("p[data-failure]")).to_contain_text("The server cannot be reached")
