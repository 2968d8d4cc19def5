"""What the courier app's cards and My day show, over HTTP against a real database: how far an offer is
(from the courier's last heartbeat), the decline reasons, a held pickup's navigation links, arrived button
and time-limit countdown, and My day's counts and today's closed pickups (today in Beijing time)."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import asyncpg

from server.domain.geo import from_wgs84
from tests import conftest
from tests.conftest import (
    Api,
    Database,
    Personas,
    login_couriers,
    make_zone,
    new_waybill,
    pickup_body,
)

HX = {"HX-Request": "true"}


async def held_pickup(people: Personas, courier: Api, zone: conftest.TestZone) -> int:
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    pickup_id: int = r.json()["id"]
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    return pickup_id


def section(html: str, element_id: str) -> str:
    """The markup of one card or section, up to the next one."""
    start = html.index(f'id="{element_id}"')
    ends = [i for i in (html.find("<article", start), html.find("<section", start)) if i != -1]
    return html[start : min(ends) if ends else len(html)]


async def backdate(db: Database, pickup_id: int, days: int) -> None:
    """Moves a pickup's events `days` back, as if they happened then (on either engine)."""
    if db.pg_admin_url:
        conn = await asyncpg.connect(db.url)
        try:
            await conn.execute(
                "UPDATE events SET at = at - make_interval(days => $1) WHERE pickup = $2", days, pickup_id
            )
        finally:
            await conn.close()
        return
    with sqlite3.connect(db.url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT id, at FROM events WHERE pickup = ?", (pickup_id,)).fetchall()
        for event_id, at in rows:
            earlier = datetime.fromisoformat(at) - timedelta(days=days)
            conn.execute("UPDATE events SET at = ? WHERE id = ?", (str(earlier), event_id))


async def test_an_offer_says_how_far_it_is_once_the_courier_sent_a_position(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    pickup_id = r.json()["id"]
    r = await courier.get("/app/pickups", headers=HX)
    assert 'class="distance"' not in section(r.text, f"offer-{pickup_id}")  # no position yet

    # 0.005° of latitude south of the pickup is 556 m; the phone's GPS speaks WGS-84.
    r = await courier.post(
        "/api/v1/courier/heartbeat", json={"lat": zone.lat - 0.005, "lng": zone.lng, "datum": "wgs84"}
    )
    assert r.status_code == 200, r.text
    r = await courier.get("/app/pickups", headers=HX)
    assert '<span class="distance">距离 556 米</span>' in section(r.text, f"offer-{pickup_id}")
    r = await courier.post(
        "/api/v1/courier/heartbeat", json={"lat": zone.lat - 0.05, "lng": zone.lng, "datum": "wgs84"}
    )
    r = await courier.get("/app/pickups?lang=en", headers=HX)
    assert '<span class="distance">5.6 km away</span>' in section(r.text, f"offer-{pickup_id}")


async def test_an_offer_can_be_declined_with_each_reason(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    pickup_id = r.json()["id"]
    r = await courier.get("/app/pickups?lang=en", headers=HX)
    card = section(r.text, f"offer-{pickup_id}")
    reasons = re.findall(r'data-decline-reason="(\w+)" data-pickup-id="(\d+)">([^<]+)<', card)
    assert [(reason, int(pid)) for reason, pid, _ in reasons] == [
        (reason, pickup_id) for reason in ("too_far", "busy", "vehicle_full", "wrong_zone", "other")
    ]
    assert [label for *_, label in reasons][:2] == ["Too far", "Busy"]


async def test_a_held_pickup_links_to_each_map_app_in_its_datum(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup_id = await held_pickup(people, courier, zone)
    r = await courier.get("/app/pickups", headers=HX)
    card = section(r.text, f"held-{pickup_id}")
    links = {
        app: unescape(href)
        for href, app in re.findall(r'href="([^"]+)" target="_blank" rel="noopener" data-nav="(\w+)"', card)
    }
    assert list(links) == ["amap", "baidu", "apple", "geo"]
    # From the point as stored (PostgreSQL's REAL keeps fewer digits than were sent).
    r = await people.partner().get(f"/api/v1/pickups/{pickup_id}")
    pickup = r.json()
    lat, lng = pickup["address"]["lat"], pickup["address"]["lng"]
    g_lng, g_lat = from_wgs84(lng, lat, "gcj02")
    b_lng, b_lat = from_wgs84(lng, lat, "bd09")
    assert parse_qs(urlsplit(links["amap"]).query)["position"] == [f"{g_lng:.6f},{g_lat:.6f}"]
    assert parse_qs(urlsplit(links["baidu"]).query)["location"] == [f"{b_lat:.6f},{b_lng:.6f}"]
    assert parse_qs(urlsplit(links["apple"]).query)["ll"] == [f"{g_lat:.6f},{g_lng:.6f}"]
    assert links["geo"].startswith(f"geo:{lat:.6f},{lng:.6f}?q=")  # RFC 5870: WGS-84
    assert 'data-action="arrived"' in card and 'data-action="contacted"' in card
    # The time limit counts down from the pickup's due time.
    due_at = pickup["due_at"]
    match = re.search(r'data-due-at="([^"]+)" data-overdue="false">时限还剩 (\d+):(\d\d):(\d\d)<', card)
    assert match, card
    assert datetime.fromisoformat(match[1]) == datetime.fromisoformat(due_at)


async def test_my_day_counts_today_and_lists_what_closed_today(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=2)
    courier, colleague = await login_couriers(people, zone)
    collected = await held_pickup(people, courier, zone)
    waybill = new_waybill()
    r = await courier.post(f"/api/v1/courier/pickups/{collected}/collect", json={"waybill_no": waybill})
    assert r.status_code == 200, r.text
    failed = await held_pickup(people, courier, zone)
    r = await courier.post(f"/api/v1/courier/pickups/{failed}/fail", json={"reason": "customer_absent"})
    assert r.status_code == 200, r.text
    open_one = await held_pickup(people, courier, zone)
    yesterday = await held_pickup(people, courier, zone)
    r = await courier.post(f"/api/v1/courier/pickups/{yesterday}/collect", json={"waybill_no": new_waybill()})
    assert r.status_code == 200, r.text
    await backdate(db, yesterday, days=1)
    # What a colleague closes is not in this courier's day.
    theirs = await held_pickup(people, colleague, zone)
    r = await colleague.post(f"/api/v1/courier/pickups/{theirs}/fail", json={"reason": "other"})
    assert r.status_code == 200, r.text

    r = await courier.get("/app/pickups", headers=HX)
    day = section(r.text, "day")
    counts = dict(re.findall(r'data-count="(\w+)"><dt>[^<]+</dt><dd>(\d+)</dd>', day))
    # Offered: each of the five pickups was offered to both couriers (a grab zone) today.
    assert counts == {"offered": "5", "held": "1", "collected": "1", "failed": "1"}
    assert f'href="#held-{open_one}"' in day
    closed = re.findall(r'data-outcome="(\w+)" data-pickup-id="(\d+)"', day)
    assert closed == [("failed", str(failed)), ("collected", str(collected))]  # newest first
    assert waybill in day and "客户不在" in day
    assert str(yesterday) not in [pid for _, pid in closed]


async def test_my_day_is_empty_for_a_courier_with_nothing_today(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone, on_duty=False)
    r = await courier.get("/app?lang=en")
    day = section(r.text, "day")
    assert re.findall(r"<dd>(\d+)</dd>", day) == ["0", "0", "0", "0"]
    assert "Nothing in hand" in day and "Nothing closed yet today" in day
    # The tab bar reaches both views; the list is the one shown first.
    assert '<a href="#now" data-view="now" aria-current="page">Pickups</a>' in r.text
    assert '<a href="#day" data-view="day">My day</a>' in r.text
