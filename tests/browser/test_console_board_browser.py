"""The console's board in a real browser at 1280 × 800 and 1024 × 768: search by each key, 1,000 pickups
reached through the pages with counts that agree while new ones arrive, and a table whose columns all
show, side by side, at 1024 px wide."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import open_page
from tests.browser.test_console_browser import sign_in_to_the_console
from tests.conftest import Personas, ServerProcess, login_couriers, make_zone, new_waybill, pickup_body

pytestmark = pytest.mark.browser

SHOTS = Path("/work/wt/shots")
VIEWPORTS = {"1280": {"width": 1280, "height": 800}, "1024": {"width": 1024, "height": 768}}


@pytest.fixture(params=list(VIEWPORTS))
async def desk(request: pytest.FixtureRequest, browser: Any, server: ServerProcess) -> AsyncIterator[Any]:
    """The console's browser at each of the two desktop sizes the dispatchers use."""
    async with open_page(browser, server, locale="zh-CN", viewport=VIEWPORTS[request.param]) as page:
        yield page


async def search(page: Any, q: str) -> None:
    box = page.locator("#board-filter input[name=q]")
    await box.fill(q)
    await box.press("Enter")
    # The whole chip: the last four digits are inside the chip of the whole phone searched before.
    await expect(page.locator("#board .chip").first).to_have_text(f"搜索：{q}")


async def test_search_finds_a_pickup_by_each_key(desk: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    partner = people.partner()
    phone = f"137{random.randrange(10**8):08d}"
    order_no = f"WEB-{uuid.uuid4().hex[:10]}"
    body = pickup_body(zone, partner_order_no=order_no, sender={"name": "孙八", "phone": phone})
    wanted = (await partner.post("/api/v1/pickups", json=body)).json()
    collected = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
    waybill = new_waybill()
    assert (
        await courier.post(f"/api/v1/courier/pickups/{collected['id']}/accept", json={})
    ).status_code == 200
    r = await courier.post(f"/api/v1/courier/pickups/{collected['id']}/collect", json={"waybill_no": waybill})
    assert r.status_code == 200, r.text
    await sign_in_to_the_console(desk)

    for q in (wanted["tracking_code"], phone, phone[-4:], order_no):
        await search(desk, q)
        await expect(desk.locator(f"#board #pickup-{wanted['id']}")).to_be_visible()
        await expect(desk).to_have_url(re.compile(rf"[?&]q={re.escape(q)}(&|$)"))
    await search(desk, waybill)
    await expect(desk.locator(f"#rows-closed #pickup-{collected['id']}")).to_be_visible()
    await expect(desk.locator("#board tbody tr")).to_have_count(1)
    # The filter is the page's own: the map helper and others read and set it through consoleBoard.
    assert await desk.evaluate("window.consoleBoard.filter().q") == waybill
    await desk.click("#board .filter button[data-board-clear]")
    await expect(desk.locator("#board .chip")).to_have_count(0)
    await expect(desk.locator("#board-filter input[name=q]")).to_have_value("")
    assert await desk.evaluate("window.__noReload") is True


SECTION_STATE = """(key) => {
  const s = document.querySelector(`#board section[data-section="${key}"]`);
  const range = s.querySelector(".range");
  return {
    total: Number(s.dataset.total), page: Number(s.dataset.page), pages: Number(s.dataset.pages),
    badge: Number(s.querySelector(".count").textContent),
    range: range ? range.textContent : "",
    ids: Array.from(s.querySelectorAll("tbody tr"), (tr) => Number(tr.id.slice(7))),
  };
}"""


async def section_state(page: Any) -> dict[str, Any]:
    """The offered section, read at one moment: its counts must agree with each other and its rows."""
    state = await page.evaluate(SECTION_STATE, "offered")
    assert state["badge"] == state["total"], state
    if state["total"]:
        first = (state["page"] - 1) * 50 + 1
        assert state["range"] == f"显示 {first}–{first + len(state['ids']) - 1} / 共 {state['total']}", state
        assert 0 < len(state["ids"]) <= 50
    return state


async def walk_pages(page: Any) -> list[int]:
    """Every row of the offered section, page by page with the pager's ›, from page 1."""
    await page.evaluate("window.consoleBoard.setFilter({offered_page: ''})")
    await expect(page.locator('#board section[data-section="offered"]')).to_have_attribute("data-page", "1")
    seen: list[int] = []
    while True:
        state = await section_state(page)
        seen.extend(state["ids"])
        if state["page"] >= state["pages"]:
            return seen
        await page.locator('#board section[data-section="offered"] .pager a.next').click()
        await expect(page.locator('#board section[data-section="offered"]')).to_have_attribute(
            "data-page", str(state["page"] + 1), timeout=20_000
        )


async def create_batch(people: Personas, zone: Any, n: int) -> list[int]:
    items = [pickup_body(zone, partner_order_no=f"K-{uuid.uuid4().hex[:12]}") for _ in range(n)]
    r = await people.partner().post("/api/v1/pickups/batch", json={"items": items}, timeout=120)
    assert r.status_code == 200 and r.json()["created"] == n, r.text
    return [item["id"] for item in r.json()["results"]]


async def test_a_thousand_pickups_are_all_reachable_through_the_pages_while_more_arrive(
    desk: Any, people: Personas
) -> None:
    # Offers that outlive the test: nothing escalates into another section while it pages.
    zone = await make_zone(people, couriers=1, offer_ttl_s=86_400, sla_minutes=10_000)
    await login_couriers(people, zone)
    created = await create_batch(people, zone, 500) + await create_batch(people, zone, 100)
    await sign_in_to_the_console(desk)
    await desk.goto(f"/console?zone={zone.code}")
    await expect(desk.locator("#live")).to_have_attribute("data-state", "live")
    await desk.evaluate("window.__noReload = true")
    assert (await section_state(desk))["total"] == 600

    async def more() -> list[int]:
        ids: list[int] = []
        for _ in range(4):
            ids += await create_batch(people, zone, 100)
            await asyncio.sleep(0.5)  # a stream of batches, not one burst
        return ids

    arriving = asyncio.create_task(more())
    first_walk = await walk_pages(desk)  # counts are checked on every page, while pickups arrive
    created += await arriving
    assert len(first_walk) == len(set(first_walk)) >= 600
    # The board follows the arrivals by itself, then every one of the 1,000 is on a page.
    await expect(desk.locator('#board section[data-section="offered"]')).to_have_attribute(
        "data-total", "1000", timeout=30_000
    )
    seen = await walk_pages(desk)
    assert len(seen) == len(set(seen)) == 1000
    assert set(seen) == set(created)
    assert await desk.evaluate("window.__noReload") is True


COLUMNS = """() => {
  const out = [];
  for (const table of document.querySelectorAll("#board section table.pickups")) {
    if (!table.querySelector("tbody tr")) continue;
    const section = table.closest("section");
    const box = section.getBoundingClientRect();
    const heads = Array.from(table.querySelectorAll("thead th"), (th) => th.getBoundingClientRect());
    const cells = Array.from(table.querySelector("tbody tr").cells, (td) => td.getBoundingClientRect());
    const due = table.querySelector("tbody tr td.due time");
    out.push({
      section: section.dataset.section,
      sectionLeft: box.left, sectionRight: box.right,
      scrollWidth: section.scrollWidth, clientWidth: section.clientWidth,
      heads: heads.map((r) => [r.left, r.right]),
      cells: cells.map((r) => [r.left, r.right]),
      due: due ? [due.getBoundingClientRect().left, due.getBoundingClientRect().right, due.closest("td").getBoundingClientRect().right] : null,
    });
  }
  return { sections: out, pageWidth: document.documentElement.scrollWidth, viewport: innerWidth };
}"""


async def test_every_column_shows_side_by_side(desk: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    body = pickup_body(zone)
    partner = people.partner()
    r = await partner.post("/api/v1/pickups", json=body)
    assert r.status_code == 201, r.text
    held = r.json()
    await partner.post("/api/v1/pickups", json=body)
    assert (await courier.post(f"/api/v1/courier/pickups/{held['id']}/accept", json={})).status_code == 200
    await partner.post(f"/api/v1/pickups/{held['id']}/chase", json={})
    # A failed one too: its reason is a second line in the status column.
    failed = (await partner.post("/api/v1/pickups", json=body)).json()
    assert (await courier.post(f"/api/v1/courier/pickups/{failed['id']}/accept", json={})).status_code == 200
    r = await courier.post(f"/api/v1/courier/pickups/{failed['id']}/fail", json={"reason": "packaging_unfit"})
    assert r.status_code == 200, r.text
    await sign_in_to_the_console(desk)
    await desk.goto(f"/console?zone={zone.code}")
    await expect(desk.locator(f"#pickup-{held['id']}")).to_be_visible()

    layout = await desk.evaluate(COLUMNS)
    assert layout["pageWidth"] <= layout["viewport"], "the page scrolls sideways"
    assert {s["section"] for s in layout["sections"]} == {"offered", "held", "failed"}
    for s in layout["sections"]:
        assert s["scrollWidth"] <= s["clientWidth"] + 1, s  # no column cut off at the right
        for boxes in (s["heads"], s["cells"]):
            assert len(boxes) == 8
            for left, right in boxes:
                assert right - left >= 24, s  # no collapsed column (the checkbox one is the narrowest)
                assert s["sectionLeft"] - 1 <= left and right <= s["sectionRight"] + 1, s
            for (_, right), (left, _) in itertools.pairwise(boxes):
                assert left >= right - 1, s  # side by side, not on top of each other
        _, due_right, cell_right = s["due"]
        assert due_right <= cell_right + 1, s  # the due time is whole
    os.makedirs(SHOTS, exist_ok=True)
    await desk.wait_for_timeout(300)  # the map's tiles and zones
    await desk.screenshot(path=str(SHOTS / f"board-{desk.viewport_size['width']}-zh.png"))
    await desk.goto(f"/console?zone={zone.code}&lang=en")
    await expect(desk.locator(f"#pickup-{held['id']}")).to_be_visible()
    layout = await desk.evaluate(COLUMNS)
    assert layout["pageWidth"] <= layout["viewport"]
    for s in layout["sections"]:
        assert s["scrollWidth"] <= s["clientWidth"] + 1, s
    await desk.wait_for_timeout(300)
    await desk.screenshot(path=str(SHOTS / f"board-{desk.viewport_size['width']}-en.png"))
