"""The courier API beyond the happy loop: replays, failures, re-offers, heartbeat, the app's first screen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import Personas, SSEStream, login_couriers, make_zone, new_waybill, pickup_body


async def test_a_replayed_action_is_answered_not_redone(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    body = {"client_action_id": "phone-42-accept", "client_at": "2026-11-25T09:00:00+08:00"}
    first = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json=body)
    again = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json=body)
    assert first.status_code == again.status_code == 200
    events = (await people.partner().get(f"/api/v1/pickups/{pickup['id']}")).json()["events"]
    assert [e["type"] for e in events].count("pickup.accepted") == 1


async def test_a_failed_pickup_records_its_reason_and_can_be_offered_again(people: Personas) -> None:
    zone = await make_zone(people, couriers=2)
    alice, bob = await login_couriers(people, zone)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    assert (await alice.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})).status_code == 200
    r = await alice.post(
        f"/api/v1/courier/pickups/{pickup['id']}/fail", json={"reason": "customer_absent", "note": "敲门无人"}
    )
    assert (
        r.status_code == 200
        and r.json()["status"] == "failed"
        and r.json()["failure_reason"] == "customer_absent"
    )
    r = await alice.post(
        f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": new_waybill()}
    )
    assert r.status_code == 409 and r.json()["current_status"] == "failed"
    dispatcher = await people.user("dispatch")
    async with SSEStream(bob) as stream:
        r = await dispatcher.post(
            "/api/v1/dispatch/unassign", json={"pickup_ids": [pickup["id"]], "reason": "retry tomorrow"}
        )
        assert r.status_code == 200, r.text
        await stream.next_event("pickup.offered", pickup_id=pickup["id"])
    assert (await bob.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})).status_code == 200


async def test_collect_needs_a_pickup_the_courier_holds(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    r = await courier.post(
        f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": new_waybill()}
    )
    assert r.status_code == 409
    r = await courier.post("/api/v1/courier/pickups/999999999/accept", json={})
    assert r.status_code == 404


async def test_the_first_screen_lists_offers_and_held_pickups(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    offered = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    held = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    await courier.post(f"/api/v1/courier/pickups/{held['id']}/accept", json={})
    screen = (await courier.get("/api/v1/courier/pickups")).json()
    assert [o["id"] for o in screen["offers"]] == [offered["id"]]
    assert [h["id"] for h in screen["held"]] == [held["id"]]
    assert screen["held"][0]["sender"]["phone"] == "13912345678"
    assert screen["offers"][0]["sender_phone"] == "139****5678"


async def test_heartbeat_records_position_and_refuses_half_a_coordinate(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    assert (
        await courier.post("/api/v1/courier/heartbeat", json={"lat": 28.2, "lng": 112.98, "datum": "gcj02"})
    ).status_code == 200
    r = await courier.post("/api/v1/courier/heartbeat", json={"lat": 28.2})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lng"  # the one missing


async def test_going_off_duty_stops_new_offers(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    r = await courier.post("/api/v1/courier/duty", json={"on_duty": False})
    assert r.json()["on_duty"] is False
    async with SSEStream(courier) as stream:
        await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
        await stream.expect_none("pickup.offered", within=0.5)


async def test_the_openapi_schema_describes_the_api(people: Personas) -> None:
    r = await people.anonymous().get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/api/v1/pickups",
        "/api/v1/courier/events",
        "/api/v1/courier/pickups/{pickup_id}/accept",
        "/auth/login",
    ):
        assert path in paths, path


async def test_health_reports_that_push_is_running(people: Personas) -> None:
    r = await people.anonymous().get("/health")
    assert r.status_code == 200
    assert r.json()["push_ready"] is True and r.json()["ok"] is True


async def test_a_pickup_never_put_before_a_courier_does_not_exist_for_them(people: Personas) -> None:
    """Asking about someone else's pickup tells nothing: the same 404 as for an id nobody has. Those it
    was offered to, or who held it, keep getting the 409 that says why not."""
    zone = await make_zone(people, couriers=2)
    elsewhere = await make_zone(people, couriers=1)
    alice, bob = await login_couriers(people, zone)
    (stranger,) = await login_couriers(people, elsewhere)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    assert (await alice.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})).status_code == 200

    nobody = await stranger.post("/api/v1/courier/pickups/999999999/accept", json={})
    assert nobody.status_code == 404
    actions = {
        "accept": {},
        "contacted": {},
        "collect": {"waybill_no": new_waybill()},
        "fail": {"reason": "customer_absent"},
    }
    for action, body in actions.items():
        r = await stranger.post(f"/api/v1/courier/pickups/{pickup['id']}/{action}", json=body)
        assert r.status_code == 404, (action, r.text)
        assert r.json() == nobody.json() and "current_status" not in r.json()

    # Bob was offered it and lost the race; Alice holds it.
    r = await bob.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 409 and r.json()["current_status"] == "accepted"
    r = await bob.post(f"/api/v1/courier/pickups/{pickup['id']}/contacted", json={})
    assert r.status_code == 409 and r.json()["code"] == "not_yours"
    r = await alice.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 409 and r.json()["current_status"] == "accepted"

    # Handed by the dispatcher to a courier never offered it, then taken back: that courier held it.
    dispatcher = await people.user("admin")
    r = await dispatcher.post(
        "/api/v1/dispatch/assign",
        json={
            "pickup_ids": [pickup["id"]],
            "courier_id": elsewhere.courier_ids[0],
            "allow_outside_zone": True,
        },
    )
    assert r.status_code == 200, r.text
    r = await dispatcher.post(
        "/api/v1/dispatch/assign", json={"pickup_ids": [pickup["id"]], "courier_id": zone.courier_ids[0]}
    )
    assert r.status_code == 200, r.text
    r = await stranger.post(f"/api/v1/courier/pickups/{pickup['id']}/contacted", json={})
    assert r.status_code == 409 and r.json()["code"] == "not_yours"


async def test_cannot_collect_keeps_the_new_time_the_customer_asked_for(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone)
    pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    url = f"/api/v1/courier/pickups/{pickup['id']}"
    assert (await courier.post(f"{url}/accept", json={})).status_code == 200
    now = datetime.now(UTC)
    # In the past, or further ahead than two weeks: refused, naming the field, and nothing changes.
    for when in (now - timedelta(minutes=5), now + timedelta(days=15)):
        r = await courier.post(
            f"{url}/fail", json={"reason": "customer_absent", "new_time": when.isoformat()}
        )
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["new_time"], r.text
    # Judged from when the courier noted it: sent late from the outbox, it still stands.
    noted = now - timedelta(hours=3)
    new_time = noted + timedelta(hours=2)  # already past when it reaches the server
    body = {
        "reason": "customer_absent",
        "new_time": new_time.isoformat(),
        "client_at": noted.isoformat(),
        "client_action_id": "fail-with-new-time",
    }
    r = await courier.post(f"{url}/fail", json=body)
    assert r.status_code == 200 and r.json()["status"] == "failed", r.text
    seen = (await people.partner().get(f"/api/v1/pickups/{pickup['id']}")).json()
    (failed,) = [e for e in seen["events"] if e["type"] == "pickup.failed"]
    assert datetime.fromisoformat(failed["data"]["new_time"]) == new_time
    assert failed["data"]["reason"] == "customer_absent"
