"""The console's stations page in a real browser, at the two desktop sizes the console must work at:
the figures table fits without cut-off columns, follows new pickups without a reload, and a station's
name leads to the board filtered to that station."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import open_page
from tests.conftest import Personas, ServerProcess, make_zone, pickup_body

pytestmark = pytest.mark.browser

SIZES = [(1280, 800), (1024, 768)]


async def sign_in(page: Any, lang: str) -> None:
    await page.goto("/console/stations" + ("?lang=en" if lang == "en" else ""))
    await expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    await page.fill("input[name=username]", "dispatch")
    await page.fill("input[name=password]", "demo")
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/console"))
    await page.goto("/console/stations" + ("?lang=en" if lang == "en" else ""))
    await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15000)


async def cut_off(page: Any) -> list[str]:
    """Cells whose text is clipped, or that end beyond the window or their table's scroll box."""
    return await page.evaluate(
        """() => {
          const box = document.querySelector('.rollup-scroll').getBoundingClientRect();
          const bad = [];
          for (const cell of document.querySelectorAll('.rollup-table th, .rollup-table td')) {
            const r = cell.getBoundingClientRect();
            if (cell.scrollWidth > cell.clientWidth + 1 || r.right > Math.min(box.right, window.innerWidth) + 1)
              bad.push(cell.textContent.trim());
          }
          return bad;
        }"""
    )


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_the_stations_page_fits_follows_new_pickups_and_leads_to_the_board(
    browser: Any, server: ServerProcess, people: Personas, width: int, height: int, lang: str
) -> None:
    zone = await make_zone(people, couriers=1)  # a station of its own under the demo's 天心 district
    async with open_page(browser, server, locale=lang, viewport={"width": width, "height": height}) as page:
        await sign_in(page, lang)
        row = page.locator(f'tr[data-code="{zone.station}"]')
        await expect(row).to_be_visible()
        await expect(row.locator('[data-figure="created"]')).to_have_text("0")
        heading = "Today by station" if lang == "en" else "今日各站点数据"
        await expect(page.locator("#rollup h2")).to_have_text(heading)
        await page.evaluate("window.__noReload = true")

        r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
        assert r.status_code == 201, r.text
        await expect(row.locator('[data-figure="created"]')).to_have_text("1", timeout=15000)
        await expect(row.locator('[data-figure="open"]')).to_have_text("1")
        assert await page.evaluate("window.__noReload") is True

        assert await cut_off(page) == []
        await page.screenshot(path=f"/tmp/console-stations-{width}-{lang}.png", full_page=True)

        # The district above the station folds away what is under it, and opens again.
        district = page.locator('tr[data-code="HN-CS-TX"] button.toggle')
        await district.click()
        await expect(row).to_be_hidden()
        await expect(district).to_have_attribute("aria-expanded", "false")
        await district.click()
        await expect(row).to_be_visible()

        await row.locator("a").click()
        await expect(page).to_have_url(re.compile(rf"/console\?station={zone.station}"))
        await expect(page.locator(".topbar nav.pages a[aria-current]")).to_have_attribute(
            "href", re.compile(r"^/console(\?lang=en)?$")
        )
