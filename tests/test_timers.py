"""Durable timers: offer expiry and escalation survive a restart, two processes never fire one timer
twice, and the time-limit warning and breach land on time (and not on pickups already collected)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from tests.conftest import (
    Database,
    Personas,
    ServerProcess,
    SSEStream,
    login_couriers,
    make_zone,
    new_waybill,
    pickup_body,
)

ESCALATION = ["backup", "station", "dispatcher"]


async def create_pickup(partner: Any, zone: Any) -> dict[str, Any]:
    r = await partner.post("/api/v1/pickups", json=pickup_body(zone))
    assert r.status_code == 201, r.text
    return r.json()


async def history(partner: Any, pickup_id: int) -> list[dict[str, Any]]:
    r = await partner.get(f"/api/v1/pickups/{pickup_id}")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def stages(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["stage"] for e in events if e["type"] == "pickup.escalated"]


async def wait_for_history(
    partner: Any, pickup_id: int, done: Any, timeout: float, what: str
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = await history(partner, pickup_id)
        if done(events):
            return events
        assert time.monotonic() < deadline, f"{what} not within {timeout}s: {[e['type'] for e in events]}"
        await asyncio.sleep(0.05)


async def set_zones(people: Personas, courier_id: int, zones: list[dict[str, str]]) -> None:
    dispatcher = await people.user("dispatch")
    r = await dispatcher.put(f"/api/v1/couriers/{courier_id}/zones", json={"zones": zones})
    assert r.status_code == 200, r.text


def signed_in(people: Personas, zone: Any, i: int) -> Any:
    name = zone.couriers[i]
    return people.user(name, "pw-" + name.split("-")[-1])


async def on_duty(people: Personas, zone: Any, i: int) -> Any:
    courier = await signed_in(people, zone, i)
    r = await courier.post("/api/v1/courier/duty", json={"on_duty": True})
    assert r.status_code == 200, r.text
    return courier


# -- 4. restart mid-escalation --------------------------------------------------------------------------


async def test_escalation_carries_on_after_the_server_is_killed(
    fresh_db: tuple[Database, dict[str, str]],
) -> None:
    database, demo = fresh_db
    server = ServerProcess(database, LANSHOU_SCHEDULER_INTERVAL_MS="50").start()
    people = Personas(server, demo["api_key"])
    try:
        zone = await make_zone(people, couriers=1, offer_ttl_s=1)
        backup_home = await make_zone(people, couriers=1, station=zone.station)
        neighbour = await make_zone(people, couriers=1, station=zone.station)  # a station-stage courier
        await set_zones(people, backup_home.courier_ids[0], [{"zone": zone.code, "role": "backup"}])
        for z in (zone, backup_home, neighbour):
            await on_duty(people, z, 0)

        pickup = await create_pickup(people.partner(), zone)
        assert pickup["status"] == "offered"
        await wait_for_history(
            people.partner(), pickup["id"], lambda ev: "backup" in stages(ev), 5, "escalation to backup"
        )
        server.stop(kill=True)  # kill -9, with the station-stage timer due in under a second
        killed_at = datetime.now(UTC)
        await people.close()

        server = ServerProcess(database, LANSHOU_SCHEDULER_INTERVAL_MS="50").start()
        people = Personas(server, demo["api_key"])
        partner = people.partner()
        events = await wait_for_history(
            partner, pickup["id"], lambda ev: "dispatcher" in stages(ev), 10, "escalation to the dispatcher"
        )
        await asyncio.sleep(1.2)  # longer than the TTL: nothing more may fire
        events = await history(partner, pickup["id"])
        assert stages(events) == ESCALATION
        (station,) = (
            e for e in events if e["type"] == "pickup.escalated" and e["data"]["stage"] == "station"
        )
        assert at(station) > killed_at  # the new process carried it on
        flow = [
            (e["type"], e["data"].get("stage") or e["data"].get("round"))
            for e in events
            if e["type"] in ("pickup.offered", "pickup.escalated")
        ]
        assert flow == [
            ("pickup.offered", 1),
            ("pickup.escalated", "backup"),
            ("pickup.offered", 2),
            ("pickup.escalated", "station"),
            ("pickup.offered", 3),
            ("pickup.escalated", "dispatcher"),
        ]
        # Earlier offers stay open in grab mode, so it is still up for grabs, now on the dispatcher's list.
        r = await partner.get(f"/api/v1/pickups/{pickup['id']}")
        assert r.json()["status"] == "offered"
    finally:
        await people.close()
        server.stop()


# -- 5. two processes, one timer table --------------------------------------------------------------------


async def test_two_processes_never_fire_one_timer_twice(fresh_db: tuple[Database, dict[str, str]]) -> None:
    database, demo = fresh_db
    a = ServerProcess(database, LANSHOU_SCHEDULER_INTERVAL_MS="20").start()
    on_a = Personas(a, demo["api_key"])
    b = ServerProcess(database, LANSHOU_SCHEDULER_INTERVAL_MS="20")
    b_started: asyncio.Task[ServerProcess] | None = None
    on_b = None
    try:
        zone = await make_zone(on_a, couriers=1, offer_ttl_s=1)
        backup_home = await make_zone(on_a, couriers=1, station=zone.station)
        # Started once the zones exist: without a shared push channel, B learns of zones only at start.
        b_started = asyncio.create_task(asyncio.to_thread(b.start))
        await set_zones(on_a, backup_home.courier_ids[0], [{"zone": zone.code, "role": "backup"}])
        await on_duty(on_a, zone, 0)
        await on_duty(on_a, backup_home, 0)
        await b_started
        on_b = Personas(b, demo["api_key"])

        partners = [on_a.partner(), on_b.partner()]
        created = await asyncio.gather(*(create_pickup(partners[i % 2], zone) for i in range(30)))
        ids = [p["id"] for p in created]
        assert all(p["status"] == "offered" for p in created)

        partner = partners[0]
        deadline = time.monotonic() + 15
        pending = set(ids)
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} pickups never reached the dispatcher"
            await asyncio.sleep(0.3)
            for pickup_id in sorted(pending):
                if "dispatcher" in stages(await history(partner, pickup_id)):
                    pending.discard(pickup_id)
        await asyncio.sleep(1.2)  # anything doubled would have fired by now

        for pickup_id in ids:
            events = await history(partner, pickup_id)
            assert stages(events) == ["backup", "dispatcher"], (pickup_id, [e["type"] for e in events])
            rounds = Counter(e["data"]["round"] for e in events if e["type"] == "pickup.offered")
            assert rounds == {1: 1, 2: 1}, (pickup_id, rounds)
    finally:
        for people in (on_a, on_b):
            if people is not None:
                await people.close()
        if b_started is not None:
            with contextlib.suppress(Exception):
                await b_started
        a.stop()
        b.stop()


async def test_an_expired_assignment_passes_to_the_next_courier_once(people: Personas) -> None:
    zone = await make_zone(people, couriers=2, dispatch_mode="assign", offer_ttl_s=1)
    couriers = await login_couriers(people, zone)
    # Same load, no positions: the lower courier id is offered first.
    order = sorted(range(2), key=lambda i: zone.courier_ids[i])
    first, second = (couriers[i] for i in order)
    async with SSEStream(first) as first_stream, SSEStream(second) as second_stream:
        pickup = await create_pickup(people.partner(), zone)
        await first_stream.next_event("pickup.offered", pickup_id=pickup["id"], timeout=2)
        await second_stream.expect_none("pickup.offered", within=0.3)

        withdrawn = await first_stream.next_event("pickup.withdrawn", pickup_id=pickup["id"], timeout=3)
        assert withdrawn.data["reason"] == "expired"
        offered = await second_stream.next_event("pickup.offered", pickup_id=pickup["id"], timeout=2)
        assert offered.data["mode"] == "assign" and "couriers" not in offered.data
        # Within its own TTL the second courier is offered it once, and the first is not offered it again.
        await second_stream.expect_none("pickup.offered", within=0.6)
        await first_stream.expect_none("pickup.offered", within=0.1)

    r = await first.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 409
    events = await history(people.partner(), pickup["id"])
    expiries = [e for e in events if e["type"] == "pickup.withdrawn"]
    assert expiries and expiries[0]["data"]["reason"] == "expired"


# -- 6. time limit -----------------------------------------------------------------------------------------


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


async def test_the_time_limit_warns_at_eighty_percent_then_breaches(people: Personas) -> None:
    zone = await make_zone(people, couriers=1, sla_minutes=0.05)  # 3 s
    (courier,) = await login_couriers(people, zone)
    partner = people.partner()
    async with SSEStream(courier) as stream:
        pickup = await create_pickup(partner, zone)
        r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
        assert r.status_code == 200
        created = at((await history(partner, pickup["id"]))[0])
        due = datetime.fromisoformat(pickup["due_at"])
        assert abs((due - created).total_seconds() - 3.0) < 0.05

        # The courier holding it is told, too.
        warning = await stream.next_event("pickup.sla_warning", pickup_id=pickup["id"], timeout=5)
        breach = await stream.next_event("pickup.sla_breached", pickup_id=pickup["id"], timeout=3)
        assert warning.data["status"] == "accepted"
        assert datetime.fromisoformat(breach.data["due_at"]) == due

    events = await history(partner, pickup["id"])
    types = [e["type"] for e in events]
    assert types.count("pickup.sla_warning") == 1 and types.count("pickup.sla_breached") == 1
    assert types.index("pickup.sla_warning") < types.index("pickup.sla_breached")
    (warned,) = (e for e in events if e["type"] == "pickup.sla_warning")
    (breached,) = (e for e in events if e["type"] == "pickup.sla_breached")
    # Not early, and not much later than the scheduler's interval allows (with room for a busy machine).
    assert 2.4 <= (at(warned) - created).total_seconds() < 3.4
    assert 3.0 <= (at(breached) - created).total_seconds() < 4.5


async def test_a_pickup_collected_in_time_gets_no_warning_or_breach(people: Personas) -> None:
    zone = await make_zone(people, couriers=1, sla_minutes=0.05)
    (courier,) = await login_couriers(people, zone)
    partner = people.partner()
    pickup = await create_pickup(partner, zone)
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200
    r = await courier.post(
        f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": new_waybill()}
    )
    assert r.status_code == 200, r.text
    created = at((await history(partner, pickup["id"]))[0])
    await asyncio.sleep(max(0.0, 3.6 - (datetime.now(created.tzinfo) - created).total_seconds()))
    types = [e["type"] for e in await history(partner, pickup["id"])]
    assert "pickup.sla_warning" not in types and "pickup.sla_breached" not in types
    assert types[-1] == "pickup.collected"


# -- a courier coming on duty joins an offer as far as it has escalated -------------------------------------


async def test_a_backup_courier_coming_on_duty_joins_an_offer_escalated_past_the_zone(
    people: Personas,
) -> None:
    # Still with the zone's own couriers (a long TTL): a backup courier coming on duty is not offered it.
    early = await make_zone(people, couriers=1, offer_ttl_s=600)
    early_backup = await make_zone(people, couriers=1, station=early.station)
    await set_zones(people, early_backup.courier_ids[0], [{"zone": early.code, "role": "backup"}])
    await on_duty(people, early, 0)
    fresh = await create_pickup(people.partner(), early)
    assert fresh["status"] == "offered"
    r = await (await signed_in(people, early_backup, 0)).post("/api/v1/courier/duty", json={"on_duty": True})
    assert r.json()["offers_sent"] == 0

    # Nobody took it and it went all the way to the dispatcher, still up for grabs: now it is.
    zone = await make_zone(people, couriers=1, offer_ttl_s=1)
    backup_home = await make_zone(people, couriers=1, station=zone.station)
    await set_zones(people, backup_home.courier_ids[0], [{"zone": zone.code, "role": "backup"}])
    await on_duty(people, zone, 0)
    partner = people.partner()
    pickup = await create_pickup(partner, zone)
    await wait_for_history(
        partner, pickup["id"], lambda ev: "dispatcher" in stages(ev), 5, "escalation to the dispatcher"
    )
    backup = await signed_in(people, backup_home, 0)
    async with SSEStream(backup) as stream:
        r = await backup.post("/api/v1/courier/duty", json={"on_duty": True})
        assert r.status_code == 200 and r.json()["offers_sent"] == 1, r.text
        offered = await stream.next_event("pickup.offered", pickup_id=pickup["id"])
        assert offered.data["reason"] == "on_duty"
        assert "couriers" not in offered.data
    r = await backup.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    (joined,) = (e for e in await history(partner, pickup["id"]) if e["data"].get("reason") == "on_duty")
    assert joined["actor"] == "system"


async def test_accepting_just_as_offers_expire_never_fails(people: Personas) -> None:
    """A courier accepting at the moment the offer's timer fires: on PostgreSQL the two transactions
    used to lock the pickup and the timer in opposite orders, and the deadlock failed the accept (500)."""
    zone = await make_zone(people, offer_ttl_s=1)
    admin = await people.user("admin")
    username = f"expiry-{uuid.uuid4().hex[:8]}"
    r = await admin.post(
        "/api/v1/users",
        json={
            "username": username,
            "password": "pw-expiry",
            "role": "courier",
            "capacity": 200,
            "zones": [{"zone": zone.code}],
        },
    )
    assert r.status_code == 201, r.text
    courier = await people.user(username, "pw-expiry")
    assert (await courier.post("/api/v1/courier/duty", json={"on_duty": True})).status_code == 200
    partner = people.partner()
    answers: Counter[int] = Counter()
    for trial in range(6):
        ids = [(await create_pickup(partner, zone))["id"] for _ in range(15)]
        await asyncio.sleep(0.85 + 0.05 * (trial % 4))  # around the 1 s expiry of the first ones
        results = await asyncio.gather(
            *(courier.post(f"/api/v1/courier/pickups/{i}/accept", json={}) for i in ids)
        )
        answers.update(r.status_code for r in results)
    assert set(answers) <= {200, 409}, answers
