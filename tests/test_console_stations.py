"""The console's stations page: today's figures per station, rolled up the tree, through HTTP.

Each test builds a district of its own under the demo city (two stations, their zones and couriers), so
the district's figures and its stations' are exactly what the test did; the city and province above it
also hold the rest of the suite's pickups.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from tests import conftest  # its TestZone by module: imported bare, pytest would collect it
from tests.conftest import (
    Api,
    Database,
    Personas,
    login_couriers,
    make_station,
    make_zone,
    new_waybill,
    pickup_body,
)
from tests.test_webhook_deliveries import run_sql

FIGURES = ("open", "created", "collected", "failed", "cancelled", "breached", "to_accept", "to_collect")


class RollupTable(HTMLParser):
    """The page's figures: {station code: {figure: text, "level": ..., "link": href or None}}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self._row: dict[str, Any] | None = None
        self._figure: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-code"):
            self._row = {"level": a.get("data-level"), "link": None}
            self.rows[a["data-code"] or ""] = self._row
            self.order.append(a["data-code"] or "")
        elif tag == "td" and self._row is not None and a.get("data-figure"):
            self._figure = a["data-figure"]
            self._row[self._figure] = ""
            if a.get("data-n") is not None:
                self._row[self._figure + "_n"] = int(a["data-n"] or 0)
        elif tag == "a" and self._row is not None and self._row["link"] is None:
            self._row["link"] = a.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._figure = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._figure:
            self._row[self._figure] += data.strip()


async def figures(api: Api, lang: str = "zh-CN") -> RollupTable:
    r = await api.get("/console/stations", params={"lang": lang} if lang == "en" else None)
    assert r.status_code == 200, r.text
    table = RollupTable()
    table.feed(r.text)
    return table


def counts(row: dict[str, Any]) -> dict[str, int]:
    return {k: int(row[k]) for k in FIGURES[:6]}


async def make_district(people: Personas) -> str:
    admin = await people.admin()
    code = f"DI-{uuid.uuid4().hex[:8]}"
    r = await admin.post(
        "/api/v1/stations",
        json={"code": code, "name": f"测试区 {code}", "level": "district", "parent": "HN-CS"},
    )
    assert r.status_code == 201, r.text
    return code


async def create(people: Personas, zone: conftest.TestZone) -> int:
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    assert r.json()["zone"]["code"] == zone.code
    return int(r.json()["id"])


async def act(courier: Api, pickup_id: int, action: str, body: dict[str, Any] | None = None) -> None:
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/{action}", json=body or {})
    assert r.status_code == 200, r.text


async def wait_for_event(partner: Api, pickup_id: int, event_type: str, seconds: float = 30) -> None:
    """Until the pickup's history has the event (the scheduler writes time-limit breaches)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        r = await partner.get(f"/api/v1/pickups/{pickup_id}")
        if event_type in [e["type"] for e in r.json()["events"]]:
            return
        assert asyncio.get_running_loop().time() < deadline, f"no {event_type} on {pickup_id}"
        await asyncio.sleep(0.2)


class Scenario:
    """A district with station A (pickups collected, failed, open, cancelled) and station B (one held,
    one breached)."""

    district: str
    a: str
    b: str
    ids: dict[str, int]


async def scenario(people: Personas, db: Database) -> Scenario:
    s = Scenario()
    s.district = await make_district(people)
    s.a = await make_station(people, parent=s.district)
    s.b = await make_station(people, parent=s.district)
    zone_a = await make_zone(people, couriers=1, station=s.a, offer_ttl_s=3600, sla_minutes=600)
    zone_b = await make_zone(people, couriers=1, station=s.b, offer_ttl_s=3600, sla_minutes=600)
    fast_b = await make_zone(people, couriers=0, station=s.b, offer_ttl_s=3600, sla_minutes=0.02)
    (courier_a,) = await login_couriers(people, zone_a)
    (courier_b,) = await login_couriers(people, zone_b)
    partner = people.partner()
    ids = {name: await create(people, zone_a) for name in ("a1", "a2", "a3", "a4")}
    ids["b1"] = await create(people, zone_b)
    ids["b2"] = await create(people, fast_b)
    # a1 waited half an hour before a courier took it: its times from creation are 30 minutes and more.
    await run_sql(
        db,
        "UPDATE pickups SET created_at = ? WHERE id = ?",
        datetime.now(UTC) - timedelta(minutes=30),
        ids["a1"],
    )
    await act(courier_a, ids["a1"], "accept")
    await act(courier_a, ids["a1"], "collect", {"waybill_no": new_waybill()})
    await act(courier_a, ids["a2"], "accept")
    await act(courier_a, ids["a2"], "fail", {"reason": "customer_absent"})
    r = await partner.post(f"/api/v1/pickups/{ids['a4']}/cancel", json={"reason": "changed my mind"})
    assert r.status_code == 200, r.text
    await act(courier_b, ids["b1"], "accept")
    await wait_for_event(partner, ids["b2"], "pickup.sla_breached")
    s.ids = ids
    return s


async def test_the_page_rolls_todays_figures_up_the_tree(people: Personas, db: Database) -> None:
    s = await scenario(people, db)
    table = await figures(await people.admin())
    a, b, district = table.rows[s.a], table.rows[s.b], table.rows[s.district]
    assert counts(a) == {"open": 1, "created": 4, "collected": 1, "failed": 1, "cancelled": 1, "breached": 0}
    assert counts(b) == {"open": 2, "created": 2, "collected": 0, "failed": 0, "cancelled": 0, "breached": 1}
    assert counts(district) == {
        "open": 3,
        "created": 6,
        "collected": 1,
        "failed": 1,
        "cancelled": 1,
        "breached": 1,
    }
    # The averages: a1 was accepted ~30 min after its creation, a2 at once (15 min over both); a1 was
    # collected ~30 min after. The district's accepts are a1, a2 and b1: ~10 min.
    assert (a["to_accept_n"], a["to_accept"]) == (2, "15分钟")
    assert (a["to_collect_n"], a["to_collect"]) == (1, "30分钟")
    assert (b["to_accept_n"], b["to_accept"], b["to_collect"]) == (1, "<1分钟", "—")
    assert (district["to_accept_n"], district["to_accept"]) == (3, "10分钟")
    assert district["to_collect"] == "30分钟"
    # The tree's order and levels; the ancestors hold at least what the district holds.
    assert table.order.index("HN") < table.order.index("HN-CS") < table.order.index(s.district)
    below = table.order.index(s.district)
    assert set(table.order[below + 1 : below + 3]) == {s.a, s.b}  # its stations right under it
    assert (table.rows["HN"]["level"], table.rows[s.district]["level"], a["level"]) == (
        "province",
        "district",
        "station",
    )
    for ancestor in ("HN-CS", "HN"):
        assert all(counts(table.rows[ancestor])[k] >= v for k, v in counts(district).items())
    # A station leads to the board filtered to it; the levels above are not links.
    assert a["link"] == f"/console?station={s.a}"
    assert district["link"] is None


async def test_a_station_dispatcher_sees_their_station_and_ancestors_totals_of_it(
    people: Personas, db: Database
) -> None:
    s = await scenario(people, db)
    admin = await people.admin()
    username = f"disp-{uuid.uuid4().hex[:6]}"
    r = await admin.post(
        "/api/v1/users",
        json={"username": username, "password": "pw-disp", "role": "dispatcher", "station": s.a},
    )
    assert r.status_code == 201, r.text
    dispatcher = await people.user(username, "pw-disp")
    table = await figures(dispatcher, "en")
    assert table.order == ["HN", "HN-CS", s.district, s.a]
    expected = counts(table.rows[s.a])
    assert expected["created"] == 4
    for ancestor in ("HN", "HN-CS", s.district):
        assert counts(table.rows[ancestor]) == expected, ancestor
        assert table.rows[ancestor]["to_accept"] == "15 min"
    assert table.rows[s.a]["link"] == f"/console?station={s.a}&lang=en"


async def test_events_before_local_midnight_do_not_count_today(people: Personas, db: Database) -> None:
    s = await scenario(people, db)
    admin = await people.admin()
    # a4 was cancelled yesterday as far as the log says (an event a day older than today's start).
    await run_sql(
        db,
        "UPDATE events SET at = ? WHERE pickup = ? AND type = 'pickup.cancelled'",
        datetime.now(UTC) - timedelta(days=1, hours=1),
        s.ids["a4"],
    )
    table = await figures(admin)
    assert table.rows[s.a]["cancelled"] == "0"
    assert table.rows[s.district]["cancelled"] == "0"
    assert table.rows[s.a]["created"] == "4"


async def test_it_speaks_both_languages(people: Personas) -> None:
    admin = await people.admin()
    zh = (await admin.get("/console/stations")).text
    en = (await admin.get("/console/stations", params={"lang": "en"})).text
    assert "今日各站点数据" in zh and "平均接单用时" in zh and 'aria-current="page">站点<' in zh
    assert "Today by station" in en and "Avg. to accept" in en and "Counted since" in en


async def test_htmx_gets_the_figures_alone(people: Personas) -> None:
    admin = await people.admin()
    r = await admin.get("/console/stations", headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<section id="rollup"') and "<html" not in r.text


async def test_a_browser_without_a_session_is_sent_to_sign_in(people: Personas) -> None:
    r = await people.anonymous().get("/console/stations", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/auth/login?")
    courier_zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, courier_zone, on_duty=False)
    r = await courier.get("/console/stations")
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
