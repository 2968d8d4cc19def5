"""The dispatcher's console in a real browser: it signs in, and the board follows what happens elsewhere
(a partner's new pickup, a reassignment) over its event stream, without reloading the page."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from playwright.async_api import expect

from tests.conftest import Personas, login_couriers, make_zone, pickup_body, square

pytestmark = pytest.mark.browser

SCREENSHOT = "/tmp/console.png"


async def sign_in_to_the_console(page: Any) -> None:
    """Open the console signed out, go through the login form, land on a live console."""
    await page.goto("/console")
    await expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    await page.fill("input[name=username]", "dispatch")
    await page.fill("input[name=password]", "demo")
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/console$"))
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    # Anything that reloads the page from here on wipes this marker.
    await page.evaluate("window.__noReload = true")


async def test_a_new_pickup_appears_on_the_board_without_a_reload(page: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    first, second = await login_couriers(people, zone, on_duty=False)
    await first.post("/api/v1/courier/duty", json={"on_duty": True})
    await sign_in_to_the_console(page)
    await expect(page.locator("h1")).to_contain_text("调度台")
    # The courier list follows duty changes too.
    await expect(page.locator(f"#courier-{zone.courier_ids[1]}")).to_contain_text("离岗")
    await second.post("/api/v1/courier/duty", json={"on_duty": True})
    await expect(page.locator(f"#courier-{zone.courier_ids[1]}")).to_contain_text("在岗")

    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    created = r.json()

    row = page.locator(f"#rows-offered #pickup-{created['id']}")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text(created["tracking_code"])
    await expect(row).to_contain_text("待接单")
    assert await page.evaluate("window.__noReload") is True

    await page.wait_for_timeout(300)  # let the map finish drawing its zones
    await page.screenshot(path=SCREENSHOT, full_page=True)


async def test_a_reassignment_shows_on_the_board_without_a_reload(page: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    first, _ = await login_couriers(people, zone)
    pickup_id = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()["id"]
    await sign_in_to_the_console(page)

    r = await first.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    row = page.locator(f"#pickup-{pickup_id}")
    await expect(page.locator(f"#rows-held #pickup-{pickup_id}")).to_contain_text(zone.couriers[0])

    # Reassign through the page's own form: tick the row, choose the other courier, give a reason.
    await row.locator("input[name=pickup_ids]").check()
    await expect(page.locator("#selected-count")).to_have_text("已选 1 单")
    await page.select_option("#dispatch-form select[name=courier_id]", str(zone.courier_ids[1]))
    await page.fill("#dispatch-form input[name=reason]", "原揽投员车坏了")
    await page.click("#dispatch-form button.primary")

    await expect(page.locator("#dispatch-form .msg.ok")).to_contain_text(zone.couriers[1])
    await expect(page.locator(f"#rows-held #pickup-{pickup_id}")).to_contain_text(zone.couriers[1])
    await expect(row).not_to_contain_text(zone.couriers[0])
    await expect(page.locator("#selected-count")).to_have_text("已选 0 单")
    assert await page.evaluate("window.__noReload") is True


async def test_clicking_a_zone_on_the_map_filters_the_board(page: Any, people: Personas) -> None:
    await sign_in_to_the_console(page)
    zone_shape = page.locator('#map path[data-zone="CS-TX-02"]')
    await zone_shape.click()
    await expect(page.locator("#board")).to_have_attribute("data-zone", "CS-TX-02")
    await expect(page.locator("#board .chip")).to_contain_text("天心·坡子街")
    assert "zone=CS-TX-02" in page.url
    for other in await page.locator("#board tbody tr").all():
        assert await other.get_attribute("data-zone") == "CS-TX-02"

    await page.click("#board .filter button")
    await expect(page.locator("#board")).to_have_attribute("data-zone", "")
    assert await page.evaluate("window.__noReload") is True


async def test_an_uploaded_zone_is_drawn_on_the_map(page: Any, people: Personas) -> None:
    await sign_in_to_the_console(page)
    code = f"WEB-{uuid.uuid4().hex[:6]}"
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": square(112.95, 28.15, 0.01),
                "properties": {"code": code, "name": "网页上传区", "station": "ST-TX"},
            }
        ],
    }
    await page.click("details.panel summary")
    await page.fill("#zone-form textarea[name=geojson]", "{broken")
    await page.click("#zone-form button[type=submit]")
    await expect(page.locator("#zone-form .msg.error")).to_contain_text("不是有效的 JSON")

    await page.fill("#zone-form textarea[name=geojson]", json.dumps(collection, ensure_ascii=False))
    await page.click("#zone-form button[type=submit]")
    await expect(page.locator("#zone-form .msg.ok")).to_contain_text("新建 1 个")
    await expect(page.locator(f'#map path[data-zone="{code}"]')).to_have_count(1)
    assert await page.evaluate("window.__noReload") is True


async def test_a_form_says_so_when_the_server_cannot_be_reached_or_fails(page: Any, people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    await login_couriers(people, zone)
    created = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    await sign_in_to_the_console(page)
    await page.locator(f"#pickup-{created['id']} input[name=pickup_ids]").check()
    await page.select_option("select[name=courier_id]", str(zone.courier_ids[0]))
    await page.fill("input[name=reason]", "试一下")

    # The network drops: the form says nothing was changed.
    await page.route("**/console/pickups/assign*", lambda route: route.abort("internetdisconnected"))
    await page.click("#dispatch-form button.primary")
    await expect(page.locator("#dispatch-form p[data-failure]")).to_contain_text("连不上服务器")
    await page.unroute("**/console/pickups/assign*")

    # The server fails: the same, with its status.
    await page.route(
        "**/console/pickups/assign*", lambda route: route.fulfill(status=502, body="bad gateway")
    )
    await page.click("#dispatch-form button.primary")
    await expect(page.locator("#dispatch-form p[data-failure]")).to_contain_text("502")
    await expect(page.locator("#dispatch-form button.primary")).to_be_enabled()
