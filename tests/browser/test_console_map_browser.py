"""The console's map in a real browser, at the two desktop sizes a dispatcher uses: a pickup and an
on-duty courier appear where they are, a zone drawn with mouse clicks is created, and with GCJ-02 tiles
the same clicks land a GCJ-02 offset away in the stored (WGS-84) zone. No tiles load (no network here):
the map works on its plain background."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import expect

from server.domain.geo import from_wgs84, to_wgs84
from tests.browser.conftest import open_page
from tests.browser.test_console_browser import sign_in_to_the_console
from tests.conftest import (
    Personas,
    ServerProcess,
    demo_server,
    login_couriers,
    make_station,
    make_zone,
    pickup_body,
)

pytestmark = pytest.mark.browser

SIZES = [pytest.param((1280, 800), id="1280x800"), pytest.param((1024, 768), id="1024x768")]
SHOTS = "/work/wt/shots"


def viewport(size: tuple[int, int]) -> dict[str, Any]:
    return {"locale": "zh-CN", "viewport": {"width": size[0], "height": size[1]}}


async def centre_of(page: Any, selector: str) -> tuple[float, float]:
    box = await page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def screen_point(page: Any, lat: float, lng: float) -> tuple[float, float]:
    """Where Leaflet draws (lat, lng) in the page (the map's latLngToContainerPoint plus its box)."""
    box = await page.locator("#map").bounding_box()
    point = await page.evaluate(
        "([lat, lng]) => consoleMap.map.latLngToContainerPoint([lat, lng])", [lat, lng]
    )
    return box["x"] + point["x"], box["y"] + point["y"]


async def assert_drawn_at(page: Any, selector: str, lat: float, lng: float) -> None:
    """The marker's centre comes to rest where Leaflet puts (lat, lng), within a pixel and a half (marker
    clusters animate their children into place after a zoom, so this waits for it)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        marker, expected = await centre_of(page, selector), await screen_point(page, lat, lng)
        near = abs(marker[0] - expected[0]) <= 1.5 and abs(marker[1] - expected[1]) <= 1.5
        if near or asyncio.get_running_loop().time() > deadline:
            break
        await page.wait_for_timeout(100)
    assert marker == (pytest.approx(expected[0], abs=1.5), pytest.approx(expected[1], abs=1.5)), selector


async def show(page: Any, lat: float, lng: float, zoom: int = 17) -> None:
    # From zoom 16 on nothing is clustered; wait for the first load (which fits the view to the zones) and
    # for the move to end before reading positions.
    await page.evaluate("consoleMap.ready")
    await page.evaluate(
        """([lat, lng, zoom]) => new Promise((done) => {
             consoleMap.map.once("moveend", () => done());
             consoleMap.map.setView([lat, lng], zoom, { animate: false });
           })""",
        [lat, lng, zoom],
    )


async def until_under_pointer(page: Any, x: float, y: float) -> None:
    """Waits until leaflet-draw's invisible mouse marker, which takes the clicks, is under the pointer."""
    deadline = asyncio.get_running_loop().time() + 10
    check = "([x, y]) => (document.elementFromPoint(x, y) || document.body).classList.contains('leaflet-mouse-marker')"
    while not await page.evaluate(check, [x, y]):
        assert asyncio.get_running_loop().time() < deadline, "the mouse marker never came under the pointer"
        await page.wait_for_timeout(50)


async def draw_square(page: Any, code: str, station: str) -> list[dict[str, float]]:
    """Draws a square with five clicks (the fifth on the first point closes it), fills in the form and
    saves; returns the clicked corners as the map's own lat/lng (the tiles' datum)."""
    await page.click("#map-draw")
    await expect(page.locator("#map-draw-cancel")).to_be_visible()
    box = await page.locator("#map").bounding_box()
    cx, cy = box["width"] / 2, box["height"] / 2
    corners = [(cx - 60, cy + 45), (cx + 60, cy + 45), (cx + 60, cy - 45), (cx - 60, cy - 45)]
    latlngs = []
    for x, y in corners:
        latlngs.append(
            await page.evaluate("([x, y]) => consoleMap.map.containerPointToLatLng([x, y])", [x, y])
        )
    vertices = page.locator("#map .leaflet-editing-icon")
    for n, (x, y) in enumerate([*corners, corners[0]]):
        # leaflet-draw ignores clicks for a moment after each vertex (against doubled touch and mouse
        # events): wait until it listens again, then click, then see the vertex (or the closed shape).
        await page.wait_for_function("() => !consoleMap.drawer._disableMarkers")
        # Moving there first puts leaflet-draw's invisible mouse marker under the pointer, which is what
        # takes the click.
        await page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
        if n < len(corners):  # the closing click lands on the first vertex, above the mouse marker
            await until_under_pointer(page, box["x"] + x, box["y"] + y)
        await page.mouse.click(box["x"] + x, box["y"] + y)
        if n < len(corners):
            await expect(vertices).to_have_count(n + 1)
    form = page.locator("#map-zone-form")
    await expect(form).to_be_visible()
    await form.locator("input[name=code]").fill(code)
    await form.locator("input[name=name]").fill("画出的区域")
    await form.locator("select[name=station]").select_option(station)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#map-status.ok")).to_contain_text(code)
    await expect(form).to_be_hidden()
    await expect(page.locator(f'#map path[data-zone="{code}"]')).to_have_count(1)
    return latlngs


async def stored_ring(people: Personas, code: str) -> list[list[float]]:
    admin = await people.admin()
    zones = (await admin.get("/api/v1/zones")).json()["features"]
    (zone,) = [f for f in zones if f["properties"]["code"] == code]
    ring: list[list[float]] = zone["geometry"]["coordinates"][0]
    return ring


def assert_same_corners(ring: list[list[float]], expected: list[tuple[float, float]]) -> None:
    """The stored ring (closed, counter-clockwise from any start) has the expected corners (lng, lat)."""
    assert len(ring) == 5 and ring[0] == ring[-1], ring
    # Within a pixel and a half at zoom 15 (about 6 m): a click lands on whole pixels, and the map's box
    # may not. The GCJ-02 offset is about a hundred times that.
    for lng, lat in expected:
        assert any(abs(p[0] - lng) < 6e-5 and abs(p[1] - lat) < 6e-5 for p in ring), (lng, lat, ring)


@pytest.mark.parametrize("size", SIZES)
async def test_a_pickup_and_an_on_duty_courier_appear_on_the_map_where_they_are(
    browser: Any, server: ServerProcess, people: Personas, size: tuple[int, int]
) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    courier_at = (zone.lat - 0.0008, zone.lng + 0.0006)
    r = await courier.post("/api/v1/courier/heartbeat", json={"lat": courier_at[0], "lng": courier_at[1]})
    assert r.status_code == 200, r.text
    async with open_page(browser, server, **viewport(size)) as page:
        await sign_in_to_the_console(page)
        # Made after the page: the map follows the stream, without a reload.
        created = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
        await show(page, zone.lat, zone.lng)
        pickup = f'#map .map-pickup[data-pickup-id="{created["id"]}"]'
        await expect(page.locator(pickup)).to_be_visible(timeout=15000)
        await expect(page.locator(pickup)).to_have_class(re.compile(r"\bst-offered\b"))
        await assert_drawn_at(page, pickup, zone.lat, zone.lng)

        courier_marker = f'#map .map-courier[data-courier-id="{zone.courier_ids[0]}"]'
        await expect(page.locator(courier_marker)).to_be_visible()
        await expect(page.locator(courier_marker)).to_have_class(re.compile(r"\bmap-courier on\b(?!.*stale)"))
        await assert_drawn_at(page, courier_marker, *courier_at)

        # Its tooltip says who it is, as text.
        await page.hover(courier_marker)
        await expect(page.locator(".leaflet-tooltip", has_text=zone.couriers[0])).to_be_visible()

        # Cancelled: the pickup leaves the map.
        await people.partner().post(f"/api/v1/pickups/{created['id']}/cancel", json={"reason": "map"})
        await expect(page.locator(pickup)).to_have_count(0, timeout=15000)
        assert await page.evaluate("window.__noReload") is True
        await page.screenshot(path=f"{SHOTS}/map-markers-{size[0]}x{size[1]}.png")


@pytest.mark.parametrize("size", SIZES)
async def test_drawing_a_zone_on_the_map_creates_it(
    browser: Any, server: ServerProcess, people: Personas, size: tuple[int, int]
) -> None:
    station = await make_station(people)
    code = f"DRAW-{uuid.uuid4().hex[:6]}"
    async with open_page(browser, server, **viewport(size)) as page:
        await sign_in_to_the_console(page)
        # Somewhere no zone is (a place of its own per size: the server is shared).
        await show(page, 28.62 + size[0] / 1e4, 113.62, 15)
        latlngs = await draw_square(page, code, station)
        await page.screenshot(path=f"{SHOTS}/map-drawn-{size[0]}x{size[1]}.png")
        # The zone filters the board like any other.
        await page.locator(f'#map path[data-zone="{code}"]').click()
        await expect(page.locator("#board")).to_have_attribute("data-zone", code)
        assert await page.evaluate("window.__noReload") is True
    # WGS-84 tiles: stored where it was clicked.
    assert_same_corners(await stored_ring(people, code), [(p["lng"], p["lat"]) for p in latlngs])


@pytest.fixture(scope="module")
def gcj02_server() -> Iterator[tuple[ServerProcess, str]]:
    """A server of its own whose map tiles are GCJ-02 (made outside the event loop: on PostgreSQL the
    database is created with asyncio.run)."""
    with demo_server("lanshou-mapb-", LANSHOU_MAP_TILE_DATUM="gcj02") as (_, server, api_key):
        yield server, api_key


async def test_with_gcj02_tiles_a_drawn_zone_is_stored_shifted_back_to_wgs84(
    browser: Any, gcj02_server: tuple[ServerProcess, str]
) -> None:
    server, api_key = gcj02_server
    people = Personas(server, api_key)
    try:
        station = await make_station(people)
        zone = await make_zone(people)
        created = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
        code = f"GCJ-{uuid.uuid4().hex[:6]}"
        async with open_page(browser, server, **viewport((1280, 800))) as page:
            await sign_in_to_the_console(page)
            await expect(page.locator(".map-datum")).to_contain_text("GCJ-02")
            # The pickup sits where GCJ-02 tiles show its WGS-84 position.
            lng, lat = from_wgs84(zone.lng, zone.lat, "gcj02")
            await show(page, lat, lng)
            pickup = f'#map .map-pickup[data-pickup-id="{created["id"]}"]'
            await expect(page.locator(pickup)).to_be_visible(timeout=15000)
            await assert_drawn_at(page, pickup, lat, lng)

            await show(page, 28.62, 113.62, 15)
            latlngs = await draw_square(page, code, station)
            await page.screenshot(path=f"{SHOTS}/map-gcj02-1280x800.png")
        ring = await stored_ring(people, code)
        assert_same_corners(ring, [to_wgs84(p["lng"], p["lat"], "gcj02") for p in latlngs])
        # A few hundred metres from where the clicks were in GCJ-02 (in Changsha).
        shift = abs(latlngs[0]["lng"] - min(p[0] for p in ring))
        assert 0.003 < shift < 0.008, shift
    finally:
        await people.close()
