"""The console's couriers page in a real browser, at 1280 × 800 and at 1024 × 768: it filters, puts a
courier off duty (asking first: they hold a pickup) and on again, edits their zones, follows a courier's
own change over the console's stream, says so when the server cannot be reached, and no column of the
list overlaps another or is cut off."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import open_page
from tests.conftest import Personas, ServerProcess, login_couriers, make_zone, pickup_body

pytestmark = pytest.mark.browser

SIZES = [(1280, 800), (1024, 768)]

# Every cell's content inside its cell, every header cell beside the next, and the table no wider than
# its box: what overlapping or cut-off columns would break.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const box = document.querySelector("#courier-list .cp-scroll");
  const table = box.querySelector("table");
  if (table.scrollWidth > box.clientWidth + 1) problems.push(`table ${table.scrollWidth} > box ${box.clientWidth}`);
  const heads = [...table.querySelectorAll("thead th")];
  for (let i = 1; i < heads.length; i++) {
    const a = heads[i - 1].getBoundingClientRect(), b = heads[i].getBoundingClientRect();
    if (a.right > b.left + 1) problems.push(`header ${i - 1} overlaps header ${i}`);
  }
  for (const cell of table.querySelectorAll("tbody td")) {
    const c = cell.getBoundingClientRect();
    for (const child of cell.querySelectorAll("*")) {
      const r = child.getBoundingClientRect();
      if (!r.width) continue;
      if (r.left < c.left - 1 || r.right > c.right + 1) problems.push(`${cell.className}: ${child.tagName} ${child.textContent.trim().slice(0, 20)} sticks out`);
    }
  }
  return problems;
}"""


async def sign_in(page: Any, path: str) -> None:
    await page.goto(path)
    await expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    await page.fill("input[name=username]", "dispatch")
    await page.fill("input[name=password]", "demo")
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/console/couriers"))
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await page.evaluate("window.__noReload = true")


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_a_dispatcher_filters_switches_duty_and_edits_zones(
    browser: Any, server: ServerProcess, people: Personas, width: int, height: int
) -> None:
    zone = await make_zone(people, couriers=2)
    extra = await make_zone(people, station=zone.station)
    first, _ = await login_couriers(people, zone)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    r = await first.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    courier_id = zone.courier_ids[0]
    viewport = {"width": width, "height": height}
    async with open_page(browser, server, locale="zh-CN", viewport=viewport) as page:
        await sign_in(page, f"/console/couriers?zone={zone.code}")
        rows = page.locator("#courier-list tbody tr")
        await expect(rows).to_have_count(2)
        assert not await page.evaluate(LAYOUT_PROBLEMS)

        # The name filter narrows the list as one types.
        await page.fill("#courier-filter input[name=q]", zone.couriers[0])
        await expect(rows).to_have_count(1)
        await expect(page).to_have_url(re.compile(r"q=" + re.escape(zone.couriers[0])))
        row = page.locator(f"#courier-{courier_id}")
        await expect(row).to_contain_text("1/8")

        # Off duty while holding a pickup: asked first; the pickup stays with them.
        await row.get_by_role("button", name="设为离岗").click()
        await expect(row.locator("form.confirm")).to_contain_text("手上还有 1 单")
        await row.get_by_role("button", name="确定离岗").click()
        await expect(row.locator(".state")).to_have_text("离岗")
        await expect(row).to_contain_text("1/8")
        await row.get_by_role("button", name="设为在岗").click()
        await expect(row.locator(".state")).to_have_text("在岗")

        # Zones: add the station's other zone as backup.
        await row.get_by_role("link", name="编辑").click()
        editor = page.locator("#courier-editor")
        await expect(editor).to_be_visible()
        await editor.locator("tr.add select[name=zone]").select_option(extra.code)
        await editor.locator("tr.add select[name=role]").select_option("backup")
        await editor.get_by_role("button", name="保存片区").click()
        await expect(editor.locator(".msg.ok")).to_contain_text("片区已保存")
        await expect(editor.locator(f'tr[data-zone="{extra.code}"] select[name=role]')).to_have_value(
            "backup"
        )
        await expect(row.locator(".zones .zchip.backup")).to_have_count(1)

        # The courier goes off duty on their phone: the list follows the console's stream.
        r = await first.post("/api/v1/courier/duty", json={"on_duty": False})
        assert r.status_code == 200, r.text
        await expect(row.locator(".state")).to_have_text("离岗")

        # The server out of reach: the form says nothing was changed.
        await page.route("**/console/couriers/*/duty*", lambda route: route.abort("internetdisconnected"))
        await row.get_by_role("button", name="设为在岗").click()
        await expect(row.locator("p[data-failure]")).to_contain_text("连不上服务器")
        await page.unroute("**/console/couriers/*/duty*")

        await page.fill("#courier-filter input[name=q]", "")
        await expect(rows).to_have_count(2)
        assert not await page.evaluate(LAYOUT_PROBLEMS)
        assert await page.evaluate("window.__noReload") is True
        await page.screenshot(path=f"/tmp/console-couriers-{width}.png", full_page=True)


async def test_the_page_reads_in_english_without_overlaps_at_1024(
    browser: Any, server: ServerProcess, people: Personas
) -> None:
    zone = await make_zone(people, couriers=2)
    await login_couriers(people, zone)
    async with open_page(browser, server, locale="en", viewport={"width": 1024, "height": 768}) as page:
        await sign_in(page, f"/console/couriers?zone={zone.code}&lang=en")
        await expect(page.locator("h1")).to_contain_text("Dispatch console")
        row = page.locator(f"#courier-{zone.courier_ids[0]}")
        await expect(row).to_contain_text("On duty")
        await expect(row.get_by_role("button", name="Put off duty")).to_be_visible()
        assert not await page.evaluate(LAYOUT_PROBLEMS)


async def test_the_boards_courier_panel_follows_the_boards_filter(page: Any, people: Personas) -> None:
    a = await make_zone(people, couriers=1)
    b = await make_zone(people, couriers=1)
    await page.goto("/console")
    await page.fill("input[name=username]", "dispatch")
    await page.fill("input[name=password]", "demo")
    await page.click("button[type=submit]")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    panel = page.locator("#couriers")
    await expect(panel.locator(f"#courier-{b.courier_ids[0]}")).to_have_count(1)

    # What the board says when its filter changes (server/templates/console.html's board).
    await page.evaluate(
        "zone => document.dispatchEvent(new CustomEvent('console:board-filter', {detail: {zone}}))", a.code
    )
    await expect(panel.locator(f"#courier-{b.courier_ids[0]}")).to_have_count(0)
    await expect(panel.locator(f"#courier-{a.courier_ids[0]}")).to_have_count(1)
    await expect(panel.locator("a.manage")).to_have_attribute("href", f"/console/couriers?zone={a.code}")
