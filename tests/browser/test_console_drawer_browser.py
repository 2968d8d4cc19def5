"""The console's pickup drawer in headless Chromium, at the two desktop sizes dispatchers use (1280 × 800
and 1024 × 768): it opens from the board without leaving it, follows the console's stream, assigns and
takes back (asking first when a courier holds the pickup), and says so when an action fails."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import open_page
from tests.browser.test_console_browser import sign_in_to_the_console
from tests.conftest import Personas, ServerProcess, login_couriers, make_zone, pickup_body

pytestmark = pytest.mark.browser

SIZES = {"1280x800": {"width": 1280, "height": 800}, "1024x768": {"width": 1024, "height": 768}}
# Set to a folder to keep screenshots of the drawer (both sizes, both languages) for a person to look at.
SHOTS = os.environ.get("LANSHOU_SHOTS")


@pytest.fixture(params=list(SIZES))
async def desk(request: Any, browser: Any, server: ServerProcess) -> AsyncIterator[Any]:
    """A fresh browser profile in Chinese, at one of the desktop sizes."""
    async with open_page(browser, server, locale="zh-CN", viewport=SIZES[request.param]) as page:
        page.size_name = request.param
        yield page


async def open_drawer(page: Any, pickup: dict[str, Any]) -> Any:
    await page.click(f"#pickup-{pickup['id']} a.open-drawer")
    drawer = page.locator("#drawer")
    await expect(drawer).to_be_visible()
    await expect(drawer.locator(".drawer-head")).to_contain_text(pickup["tracking_code"])
    return drawer


async def shoot(page: Any, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=f"{SHOTS}/drawer-{name}-{page.size_name}.png")


async def test_the_drawer_opens_beside_the_board_and_follows_the_stream(desk: Any, people: Personas) -> None:
    page = desk
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, note="门口有狗"))
    pickup = r.json()
    await sign_in_to_the_console(page)
    row = page.locator(f"#pickup-{pickup['id']}")
    await expect(row).to_be_visible()

    drawer = await open_drawer(page, pickup)
    assert page.url.endswith("/console")  # the board stays; the link was not followed
    await expect(drawer.locator("#drawer-history li")).not_to_have_count(0)
    await expect(drawer).to_contain_text("门口有狗")
    # The board's checkbox of the open row is still there to tick (the drawer does not cover it).
    await row.locator("input[name=pickup_ids]").check()
    await expect(page.locator("#selected-count")).to_have_text("已选 1 单")

    # The courier accepts on their phone: the drawer's history and status follow, without a reload.
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    await expect(drawer.locator("#drawer-history li").last).to_contain_text(f"{zone.couriers[0]} 接单")
    await expect(drawer.locator(".drawer-status")).to_contain_text(f"{zone.couriers[0]}自行接单")
    await shoot(page, "zh")
    assert await page.evaluate("window.__noReload") is True

    # Esc closes it; a click on the row (not its checkbox) opens it again.
    await page.keyboard.press("Escape")
    await expect(drawer).to_be_hidden()
    await row.locator("td.addr").click()
    await expect(drawer).to_be_visible()
    await expect(drawer.locator(".drawer-head")).to_contain_text(pickup["tracking_code"])
    await drawer.locator("[data-drawer-close]").click()
    await expect(drawer).to_be_hidden()
    assert await page.evaluate("window.__noReload") is True

    # Opened on its own (a new tab): the same pickup as a page, under the console's top bar.
    await page.goto(f"/console/pickups/{pickup['id']}")
    await expect(page.locator(".topbar")).to_be_visible()
    await expect(page.locator("#drawer .drawer-head")).to_contain_text(pickup["tracking_code"])
    await expect(page.locator("#drawer-history li").last).to_contain_text(f"{zone.couriers[0]} 接单")
    await shoot(page, "page")

    if SHOTS:
        await page.goto("/console?lang=en")
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")
        await open_drawer(page, pickup)
        await expect(page.locator("#drawer")).to_contain_text("History")
        await shoot(page, "en")


async def test_assign_then_take_back_asks_first(desk: Any, people: Personas) -> None:
    page = desk
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    await sign_in_to_the_console(page)
    drawer = await open_drawer(page, pickup)

    assign = drawer.locator('form[data-form="assign"]')
    await assign.locator("select[name=courier_id]").select_option(str(zone.courier_ids[0]))
    await assign.locator("input[name=reason]").fill("客户点名要他")
    await assign.locator("button[type=submit]").click()
    await expect(drawer.locator(".drawer-actions .msg.ok")).to_contain_text(f"已指派给 {zone.couriers[0]}")
    await expect(drawer.locator(".drawer-status")).to_contain_text(f"由调度员指派给{zone.couriers[0]}")
    await expect(drawer.locator("#drawer-history")).to_contain_text("客户点名要他")
    await expect(page.locator(f"#rows-held #pickup-{pickup['id']}")).to_contain_text(zone.couriers[0])

    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/unassign" in request.url else None)
    take_back = drawer.locator('form[data-form="unassign"]')
    await take_back.locator("input[name=reason]").fill("改由别人去")

    # Dismissed: nothing is sent, the courier keeps it.
    dialogs: list[str] = []

    async def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", dismiss)
    await take_back.locator("button[type=submit]").click()
    for _ in range(200):  # the dialog is handled after the click returns
        if dialogs:
            break
        await page.wait_for_timeout(50)
    assert zone.couriers[0] in dialogs[0]
    await page.wait_for_timeout(300)  # time for a request that should not be sent
    assert sent == []
    await expect(drawer.locator(".drawer-status")).to_contain_text(zone.couriers[0])

    # Accepted: taken back and offered afresh.
    page.once("dialog", lambda dialog: dialog.accept())
    await take_back.locator("button[type=submit]").click()
    await expect(drawer.locator(".drawer-actions .msg.ok")).to_contain_text("已收回")
    assert len(sent) == 1
    await expect(drawer.locator("#drawer-history")).to_contain_text("收回，重新派单")
    await expect(page.locator(f"#rows-offered #pickup-{pickup['id']}")).to_be_visible()
    await shoot(page, "taken-back")
    assert await page.evaluate("window.__noReload") is True


async def test_a_failed_action_says_so_in_the_drawer(desk: Any, people: Personas) -> None:
    page = desk
    zone = await make_zone(people, couriers=1)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    await sign_in_to_the_console(page)
    drawer = await open_drawer(page, pickup)
    note = drawer.locator('form[data-form="note"]')
    await note.locator("textarea[name=text]").fill("客户要求改天")

    # The server fails: the form says so, with its status, and can be sent again.
    await page.route("**/note*", lambda route: route.fulfill(status=500, body="boom"))
    await note.locator("button[type=submit]").click()
    await expect(note.locator("p[data-failure]")).to_contain_text("500")
    await expect(note.locator("button[type=submit]")).to_be_enabled()
    await expect(note.locator("textarea[name=text]")).to_have_value("客户要求改天")
    await page.unroute("**/note*")

    # The server cannot be reached.
    await page.route("**/note*", lambda route: route.abort("internetdisconnected"))
    await note.locator("button[type=submit]").click()
    await expect(note.locator("p[data-failure]")).to_contain_text("连不上服务器")
    await page.unroute("**/note*")

    # Back: the note goes through.
    await note.locator("button[type=submit]").click()
    await expect(drawer.locator(".drawer-actions .msg.ok")).to_contain_text("备注已添加")
    await expect(drawer.locator("#drawer-history li").last).to_contain_text("客户要求改天")
