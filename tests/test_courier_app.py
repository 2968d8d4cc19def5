"""The courier app over HTTP: where a courier lands, the page and its list partial, who may open it,
and the files that make it installable (manifest, icons, service worker)."""

from __future__ import annotations

import json
import re
import struct

from tests.conftest import Api, Personas, login_couriers, make_zone, pickup_body

HX = {"HX-Request": "true"}


async def a_courier(people: Personas, on_duty: bool = True) -> tuple[Api, object]:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone, on_duty=on_duty)
    return courier, zone


async def test_a_courier_who_signs_in_with_the_form_lands_on_the_app(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    name = zone.couriers[0]
    browser = people.anonymous()
    r = await browser.post("/auth/login", data={"username": name, "password": "pw-" + name.split("-")[-1]})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/app"


async def test_the_site_root_sends_a_signed_in_courier_to_the_app(people: Personas) -> None:
    courier, _ = await a_courier(people)
    r = await courier.get("/")
    assert r.status_code in (302, 303, 307), r.text
    assert r.headers["location"] == "/app"


async def test_the_site_root_sends_others_to_their_home_or_to_sign_in(people: Personas) -> None:
    r = await people.anonymous().get("/")
    assert r.headers["location"] == "/auth/login"
    dispatcher = await people.user("dispatch")
    r = await dispatcher.get("/")
    assert r.headers["location"] == "/console"


async def test_the_app_sends_a_signed_out_browser_to_sign_in_and_back(people: Personas) -> None:
    r = await people.anonymous().get("/app")
    assert r.status_code == 303
    assert r.headers["location"] == "/auth/login?next=%2Fapp"
    r = await people.anonymous().get("/app/pickups", headers=HX)
    assert r.status_code == 401
    assert r.headers["hx-redirect"].startswith("/auth/login?next=")


async def test_a_dispatcher_may_not_open_the_courier_app(people: Personas) -> None:
    dispatcher = await people.user("dispatch")
    r = await dispatcher.get("/app")
    assert r.status_code == 403
    assert "揽投员应用仅供揽投员使用" in r.text


async def test_the_page_is_in_chinese_with_the_duty_button_and_no_inline_script(people: Personas) -> None:
    courier, _ = await a_courier(people, on_duty=False)
    r = await courier.get("/app")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert '<html lang="zh-CN">' in r.text
    assert 'data-on-duty="false"' in r.text and "点此上岗接单" in r.text
    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in r.text
    # Every <script> is a file or a JSON data block: the page keeps to the CSP's script-src 'self'.
    for tag in re.findall(r"<script[^>]*>", r.text):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert "style=" not in r.text
    strings = json.loads(
        re.search(r'<script type="application/json" id="strings">(.*?)</script>', r.text, re.S)[1]
    )
    assert strings["courier.waybill.invalid"].startswith("运单号不正确")


async def test_the_page_is_in_english_on_request(people: Personas) -> None:
    courier, _ = await a_courier(people)
    r = await courier.get("/app?lang=en")
    assert '<html lang="en">' in r.text
    assert "On duty · tap to go off" in r.text
    assert 'data-list-url="/app/pickups?lang=en"' in r.text


async def test_an_offer_shows_street_slot_parcels_and_a_masked_phone(people: Personas) -> None:
    courier, zone = await a_courier(people)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone, parcel_count=3))
    assert r.status_code == 201, r.text
    pickup_id = r.json()["id"]
    r = await courier.get("/app/pickups", headers=HX)
    assert r.status_code == 200, r.text
    assert f'id="offer-{pickup_id}"' in r.text
    assert zone.code in r.text and "望城区 白箬铺镇" in r.text
    assert "3 件" in r.text and "尽快" in r.text
    assert "139****5678" in r.text and "13912345678" not in r.text
    assert "1号楼2单元" not in r.text  # the house number only once accepted
    assert "<html" not in r.text  # the partial alone
    assert re.search(r'data-expires-at="20\d\d-', r.text)


async def test_an_accepted_pickup_shows_the_full_address_a_call_link_and_the_forms(people: Personas) -> None:
    courier, zone = await a_courier(people)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    pickup_id = r.json()["id"]
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    r = await courier.get("/app/pickups?lang=en", headers=HX)
    assert f'id="held-{pickup_id}"' in r.text and f'id="offer-{pickup_id}"' not in r.text
    assert "1号楼2单元" in r.text
    assert 'href="tel:13912345678"' in r.text
    assert 'data-action="contacted"' in r.text and 'name="waybill_no"' in r.text
    for reason in ("customer_absent", "parcel_prohibited", "other"):
        assert f'<option value="{reason}">' in r.text
    assert "Customer not there" in r.text


async def test_the_manifest_makes_the_app_installable(people: Personas) -> None:
    r = await people.anonymous().get("/static/manifest.webmanifest")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/manifest+json")
    manifest = r.json()
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/app" and manifest["scope"] == "/app"
    assert manifest["name"] and manifest["short_name"] and manifest["theme_color"]
    kinds = {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("192x192", "maskable"), ("512x512", "maskable")} <= kinds
    for icon in manifest["icons"]:
        r = await people.anonymous().get(icon["src"])
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", r.content[16:24])
        assert f"{width}x{height}" == icon["sizes"]


async def test_the_service_worker_is_served_from_the_root_uncached(people: Personas) -> None:
    r = await people.anonymous().get("/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "no-cache"
    assert '"/app"' in r.text and "caches.open" in r.text
