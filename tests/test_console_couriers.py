"""The console's couriers page over HTTP: what the list shows and how it filters, the stale mark, putting a
courier on or off duty, their zones and capacity (each an event with the dispatcher as its actor), what
a dispatcher of one station may not touch, and forms that answer bad input with an error, not a 500."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests import conftest
from tests.conftest import Api, Database, Personas, login_couriers, make_zone, pickup_body
from tests.test_offer_answers import db_rows
from tests.test_scope import station_dispatcher
from tests.test_webhook_deliveries import run_sql

HX = {"HX-Request": "true"}


async def with_csrf(api: Api) -> Api:
    await api.get("/health")  # the CSRF cookie the console's forms need
    return api


def csrf(api: Api, htmx: bool = True) -> dict[str, str]:
    return {"x-csrftoken": api.client.cookies["lanshou_csrf"], **(HX if htmx else {})}


async def dispatcher(people: Personas) -> Api:
    return await with_csrf(await people.user("dispatch"))


def row_of(html: str, courier_id: int) -> str:
    match = re.search(rf'<tr id="courier-{courier_id}".*?</tr>', html, re.S)
    assert match, f"no row for courier {courier_id} in: {html[:2000]}"
    return match.group(0)


async def user_id(api: Api) -> int:
    return int((await api.get("/api/v1/me")).json()["id"])


async def events_of(db: Database, courier_id: int, type_: str, by: str | None = None) -> list[dict[str, Any]]:
    """The courier's events of one type (by one kind of actor), oldest first (`to` lists the courier)."""
    rows = await db_rows(
        db,
        "SELECT e.id, e.type, e.actor_kind, e.actor_id, e.data FROM events e "
        "JOIN event_recipients r ON r.event = e.id WHERE r.courier = ? AND e.type = ? ORDER BY e.id",
        courier_id,
        type_,
    )
    for r in rows:
        r["data"] = json.loads(r["data"]) if isinstance(r["data"], str) else r["data"]
    return [r for r in rows if by is None or r["actor_kind"] == by]


async def memberships(db: Database, courier_id: int) -> dict[str, str]:
    rows = await db_rows(
        db,
        "SELECT z.code, cz.role FROM courier_zones cz JOIN zones z ON z.id = cz.zone WHERE cz.courier = ?",
        courier_id,
    )
    return {r["code"]: r["role"] for r in rows}


async def on_duty(db: Database, courier_id: int) -> bool:
    rows = await db_rows(db, "SELECT on_duty FROM couriers WHERE id = ?", courier_id)
    return bool(rows[0]["on_duty"])


async def courier_with_phone(people: Personas, zone: conftest.TestZone) -> tuple[int, str]:
    admin = await people.admin()
    username = f"cp-{uuid.uuid4().hex[:8]}"
    body = {
        "username": username,
        "password": "pw-couriers",
        "role": "courier",
        "display_name": f"张三{username[-4:]}",
        "phone": "13912345678",
        "zones": [{"zone": zone.code}],
    }
    r = await admin.post("/api/v1/users", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["courier_id"]), username


async def held_pickup(people: Personas, courier: Api, zone: conftest.TestZone) -> int:
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    pickup_id = int(r.json()["id"])
    r = await courier.post(f"/api/v1/courier/pickups/{pickup_id}/accept", json={})
    assert r.status_code == 200, r.text
    return pickup_id


# -- the list ----------------------------------------------------------------------------------------------


async def test_the_list_shows_zones_load_position_and_a_masked_phone(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    backup = await make_zone(people)
    courier_id, _ = await courier_with_phone(people, zone)
    (courier,) = await login_couriers(people, zone)
    await held_pickup(people, courier, zone)
    r = await courier.post(
        "/api/v1/courier/heartbeat", json={"lat": zone.lat, "lng": zone.lng, "datum": "wgs84"}
    )
    assert r.status_code == 200, r.text
    admin = await people.admin()
    r = await admin.put(
        f"/api/v1/couriers/{zone.courier_ids[0]}/zones",
        json={"zones": [{"zone": zone.code}, {"zone": backup.code, "role": "backup"}]},
    )
    assert r.status_code == 200, r.text
    api = await dispatcher(people)

    page = (await api.get(f"/console/couriers?zone={zone.code}")).text
    assert '<a href="/console/couriers" aria-current="page">' in page  # the whole page, its tab current
    row = row_of(page, zone.courier_ids[0])
    assert zone.couriers[0] in row and "1/8" in row and "在岗" in row
    assert "测试区" in row and "备" in row  # primary and backup zones
    assert f"{zone.lat:.4f}, {zone.lng:.4f}" in row  # the last position, and the zone it lies in
    assert "刚刚" in row and 'class="badge stale"' not in row
    other = row_of(page, courier_id)
    assert "139****5678" in other and "13912345678" not in page
    assert "离岗" in other and "从未在线" in other and "无位置" in other

    english = (await api.get(f"/console/couriers?zone={zone.code}&lang=en")).text
    assert "On duty" in row_of(english, zone.courier_ids[0]) and "never seen" in row_of(english, courier_id)


async def test_the_list_filters_by_zone_station_and_name(people: Personas) -> None:
    a = await make_zone(people, couriers=2)
    b = await make_zone(people, couriers=1)
    api = await dispatcher(people)

    by_zone = (await api.get(f"/console/couriers?zone={a.code}")).text
    assert all(f'id="courier-{c}"' in by_zone for c in a.courier_ids)
    assert f'id="courier-{b.courier_ids[0]}"' not in by_zone

    by_station = (await api.get(f"/console/couriers?station={b.station}")).text
    assert f'id="courier-{b.courier_ids[0]}"' in by_station
    assert not any(f'id="courier-{c}"' in by_station for c in a.courier_ids)

    by_name = (await api.get("/console/couriers", params={"q": a.couriers[1].upper()})).text
    assert f'id="courier-{a.courier_ids[1]}"' in by_name
    assert f'id="courier-{a.courier_ids[0]}"' not in by_name

    # The filter form asks with htmx for the list alone.
    part = (await api.get(f"/console/couriers?zone={a.code}&q={a.couriers[0]}", headers=HX)).text
    assert part.lstrip().startswith('<div id="courier-list"') and "<html" not in part
    assert f'id="courier-{a.courier_ids[0]}"' in part and f'id="courier-{a.courier_ids[1]}"' not in part

    nothing = (await api.get("/console/couriers?zone=NO-SUCH-ZONE")).text
    assert "没有符合条件的揽投员" in nothing


async def test_an_on_duty_courier_without_a_heartbeat_for_three_minutes_is_marked_stale(
    people: Personas, db: Database
) -> None:
    zone = await make_zone(people, couriers=2)
    await login_couriers(people, zone)
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    await run_sql(db, "UPDATE couriers SET last_seen_at = ? WHERE id = ?", earlier, zone.courier_ids[0])
    api = await dispatcher(people)
    page = (await api.get(f"/console/couriers?zone={zone.code}")).text
    stale, fresh = row_of(page, zone.courier_ids[0]), row_of(page, zone.courier_ids[1])
    assert 'class="badge stale"' in stale and "失联" in stale and "10分钟前" in stale
    assert 'class="badge stale"' not in fresh
    assert "1 名失联" in page


# -- duty --------------------------------------------------------------------------------------------------


async def test_a_dispatcher_puts_a_courier_on_duty_and_the_event_names_them(
    people: Personas, db: Database
) -> None:
    zone = await make_zone(people, couriers=1)
    courier_id = zone.courier_ids[0]
    api = await dispatcher(people)
    r = await api.post(f"/console/couriers/{courier_id}/duty", data={"on_duty": "true"}, headers=csrf(api))
    assert r.status_code == 200, r.text
    assert r.text.lstrip().startswith(f'<tr id="courier-{courier_id}"') and "在岗" in r.text
    assert await on_duty(db, courier_id)
    (event,) = await events_of(db, courier_id, "courier.duty")
    assert event["actor_kind"] == "dispatcher" and event["actor_id"] == await user_id(api)
    assert event["data"] == {"on_duty": True}
    # The courier's own phone was not heard from: a dispatcher's switch is no heartbeat.
    assert "从未在线" in r.text and 'class="badge stale"' in r.text


async def test_going_off_duty_while_holding_pickups_asks_first_and_leaves_them_held(
    people: Personas, db: Database
) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    courier_id = zone.courier_ids[0]
    pickup_id = await held_pickup(people, courier, zone)
    api = await dispatcher(people)

    r = await api.post(f"/console/couriers/{courier_id}/duty", data={"on_duty": "false"}, headers=csrf(api))
    assert r.status_code == 200, r.text
    assert 'class="confirm"' in r.text and "手上还有 1 单" in r.text
    assert await on_duty(db, courier_id), "asked, not done"

    data = {"on_duty": "false", "confirm": "1"}
    r = await api.post(f"/console/couriers/{courier_id}/duty", data=data, headers=csrf(api))
    assert r.status_code == 200 and "离岗" in r.text and 'class="confirm"' not in r.text
    assert not await on_duty(db, courier_id)
    events = await events_of(db, courier_id, "courier.duty")
    assert [(e["actor_kind"], e["data"]["on_duty"]) for e in events] == [
        ("courier", True),
        ("dispatcher", False),
    ]
    (pickup,) = await db_rows(db, "SELECT status, courier FROM pickups WHERE id = ?", pickup_id)
    assert pickup == {"status": "accepted", "courier": courier_id}


async def test_the_duty_form_works_without_javascript(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=1)
    courier_id = zone.courier_ids[0]
    api = await dispatcher(people)
    url = f"/console/couriers/{courier_id}/duty?zone={zone.code}"
    r = await api.post(url, data={"on_duty": "true"}, headers=csrf(api, htmx=False))
    assert r.status_code == 200 and "<html" in r.text
    assert "在岗" in row_of(r.text, courier_id)
    assert await on_duty(db, courier_id)


# -- zones and capacity ------------------------------------------------------------------------------------


async def test_a_dispatcher_edits_a_couriers_zones(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=1)
    other = await make_zone(people)
    courier_id = zone.courier_ids[0]
    api = await dispatcher(people)

    editor = (await api.get(f"/console/couriers/{courier_id}", headers=HX)).text
    assert editor.lstrip().startswith('<section id="courier-editor"') and zone.code in editor

    form = {"zone": [zone.code, other.code], "role": ["backup", "primary"]}
    r = await api.post(f"/console/couriers/{courier_id}/zones", data=form, headers=csrf(api))
    assert r.status_code == 200, r.text
    assert "片区已保存" in r.text and "couriers-changed" in r.headers.get("hx-trigger", "")
    assert await memberships(db, courier_id) == {zone.code: "backup", other.code: "primary"}
    (event,) = await events_of(db, courier_id, "courier.zones", by="dispatcher")
    assert event["actor_kind"] == "dispatcher" and event["actor_id"] == await user_id(api)
    assert sorted(event["data"]["zones"], key=lambda z: z["zone"]) == sorted(
        [{"zone": zone.code, "role": "backup"}, {"zone": other.code, "role": "primary"}],
        key=lambda z: z["zone"],
    )

    form = {"zone": [zone.code, other.code, ""], "role": ["remove", "primary", "primary"]}
    r = await api.post(f"/console/couriers/{courier_id}/zones", data=form, headers=csrf(api))
    assert r.status_code == 200, r.text
    assert await memberships(db, courier_id) == {other.code: "primary"}


async def test_a_dispatcher_sets_a_couriers_capacity_within_limits(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=1)
    courier_id = zone.courier_ids[0]
    api = await dispatcher(people)
    r = await api.post(f"/console/couriers/{courier_id}/capacity", data={"capacity": "12"}, headers=csrf(api))
    assert r.status_code == 200 and "上限已保存" in r.text
    (event,) = await events_of(db, courier_id, "courier.capacity")
    assert event["actor_kind"] == "dispatcher" and event["data"] == {"capacity": 12}
    assert "0/12" in row_of((await api.get(f"/console/couriers?zone={zone.code}")).text, courier_id)

    for bad in ("0", "51", "abc", "", "1e3", "９"):
        r = await api.post(
            f"/console/couriers/{courier_id}/capacity", data={"capacity": bad}, headers=csrf(api)
        )
        assert r.status_code == 422, (bad, r.text)
        assert "上限须为 1 到 50 之间的整数" in r.text
    assert len(await events_of(db, courier_id, "courier.capacity")) == 1


async def test_bad_input_is_a_form_error_not_a_server_error(people: Personas, db: Database) -> None:
    zone = await make_zone(people, couriers=1)
    courier_id = zone.courier_ids[0]
    api = await dispatcher(people)
    before = await memberships(db, courier_id)

    r = await api.post(f"/console/couriers/{courier_id}/duty", data={"on_duty": "maybe"}, headers=csrf(api))
    assert r.status_code == 422 and "请求无效" in r.text and f'id="courier-{courier_id}"' in r.text
    r = await api.post(f"/console/couriers/{courier_id}/zones", data={"zone": ["x", "y"]}, headers=csrf(api))
    assert r.status_code == 422 and "请求无效" in r.text
    form = {"zone": ["NO-SUCH-ZONE", zone.code, zone.code], "role": ["primary", "boss", "backup"]}
    r = await api.post(f"/console/couriers/{courier_id}/zones?lang=en", data=form, headers=csrf(api))
    assert r.status_code == 422, r.text
    assert "Zone NO-SUCH-ZONE does not exist" in r.text and "A role is primary or backup" in r.text
    form = {"zone": [zone.code, zone.code], "role": ["primary", "backup"]}
    r = await api.post(f"/console/couriers/{courier_id}/zones", data=form, headers=csrf(api))
    assert r.status_code == 422 and f"片区 {zone.code} 重复出现" in r.text
    assert await memberships(db, courier_id) == before
    assert await events_of(db, courier_id, "courier.zones", by="dispatcher") == []

    for path in ("/console/couriers/abc", "/console/couriers/99999999999", "/console/couriers/0/row"):
        r = await api.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code)
    r = await api.post("/console/couriers/2147483647/duty", data={"on_duty": "true"}, headers=csrf(api))
    assert r.status_code == 404 and "不存在" in r.text


# -- scope -------------------------------------------------------------------------------------------------


async def test_a_station_dispatcher_touches_only_their_stations_couriers_and_zones(
    people: Personas, db: Database
) -> None:
    ours = await make_zone(people, couriers=1)
    second = await make_zone(people, station=ours.station)
    theirs = await make_zone(people, couriers=1)
    api = await with_csrf(await station_dispatcher(people, ours.station))
    mine, foreign = ours.courier_ids[0], theirs.courier_ids[0]

    page = (await api.get("/console/couriers")).text
    assert f'id="courier-{mine}"' in page and f'id="courier-{foreign}"' not in page
    assert theirs.code not in page  # nor their zone among the filter's choices

    assert (await api.get(f"/console/couriers/{foreign}", headers=HX)).status_code == 404
    assert (await api.get(f"/console/couriers/{foreign}/row", headers=HX)).status_code == 404
    r = await api.post(f"/console/couriers/{foreign}/duty", data={"on_duty": "true"}, headers=csrf(api))
    assert r.status_code == 404 and not await on_duty(db, foreign)
    form = {"zone": [theirs.code], "role": ["primary"]}
    r = await api.post(f"/console/couriers/{foreign}/zones", data=form, headers=csrf(api))
    assert r.status_code == 404 and await memberships(db, foreign) == {theirs.code: "primary"}
    r = await api.post(f"/console/couriers/{foreign}/capacity", data={"capacity": "3"}, headers=csrf(api))
    assert r.status_code == 404

    # Their own courier onto another station's zone: a form error, nothing written.
    form = {"zone": [ours.code, theirs.code], "role": ["primary", "backup"]}
    r = await api.post(f"/console/couriers/{mine}/zones", data=form, headers=csrf(api))
    assert r.status_code == 422 and f"片区 {theirs.code} 属于您负责范围以外的站点" in r.text
    assert await memberships(db, mine) == {ours.code: "primary"}

    form = {"zone": [ours.code, second.code], "role": ["primary", "backup"]}
    r = await api.post(f"/console/couriers/{mine}/zones", data=form, headers=csrf(api))
    assert r.status_code == 200, r.text
    assert await memberships(db, mine) == {ours.code: "primary", second.code: "backup"}


async def test_zones_of_other_stations_stay_when_a_station_dispatcher_edits(
    people: Personas, db: Database
) -> None:
    ours = await make_zone(people, couriers=1)
    theirs = await make_zone(people)
    mine = ours.courier_ids[0]
    admin = await people.admin()
    body = {"zones": [{"zone": ours.code}, {"zone": theirs.code, "role": "backup"}]}
    assert (await admin.put(f"/api/v1/couriers/{mine}/zones", json=body)).status_code == 200
    api = await with_csrf(await station_dispatcher(people, ours.station))

    editor = (await api.get(f"/console/couriers/{mine}", headers=HX)).text
    assert "其他站点的片区" in editor  # shown, but not as a field of the form
    assert f'name="zone" value="{theirs.code}"' not in editor
    form = {"zone": [ours.code], "role": ["backup"]}
    r = await api.post(f"/console/couriers/{mine}/zones", data=form, headers=csrf(api))
    assert r.status_code == 200, r.text
    assert await memberships(db, mine) == {ours.code: "backup", theirs.code: "backup"}


# -- the board's panel -------------------------------------------------------------------------------------


async def test_the_boards_courier_panel_follows_the_boards_zone(people: Personas) -> None:
    a = await make_zone(people, couriers=1)
    b = await make_zone(people, couriers=1)
    api = await dispatcher(people)
    panel = (await api.get(f"/console/couriers/panel?zone={a.code}", headers=HX)).text
    assert f'id="courier-{a.courier_ids[0]}"' in panel and f'id="courier-{b.courier_ids[0]}"' not in panel
    assert f"/console/couriers/panel?zone={a.code}" in panel  # its own refresh keeps the filter
    panel = (await api.get(f"/console/couriers/panel?station={b.station}", headers=HX)).text
    assert f'id="courier-{b.courier_ids[0]}"' in panel and f'id="courier-{a.courier_ids[0]}"' not in panel
