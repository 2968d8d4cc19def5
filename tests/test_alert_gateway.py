"""The SMS / voice-call gateway: an offer nobody has seen or answered in time is sent to the gateway,
signed, once per stage and across processes; an offer seen or accepted in time is not; a gateway that
fails is recorded as such and nothing else changes.

The server has a database of its own (its scheduler must be the only one firing these timers), with the
gateway on 127.0.0.1 allowed by LANSHOU_ALERT_GATEWAY_ALLOWED_HOSTS, the SMS after 1 s, the call after 2 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest

from tests.conftest import (
    Database,
    Personas,
    ServerProcess,
    demo_database,
    demo_server,
    free_port,
    make_zone,
    pickup_body,
)
from tests.test_offer_answers import db_rows

SECRET = "gateway-secret-0123456789"


class Gateway:
    """The SMS provider's endpoint on loopback: keeps every request, answers `status`."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str], bytes]] = []
        self.status = 200
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                gateway.calls.append((time.monotonic(), headers, body))
                self.send_response(gateway.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/alert"

    def for_pickup(self, pickup_id: int) -> list[tuple[float, dict[str, str], dict[str, Any]]]:
        decoded = [(t, h, msgspec.json.decode(b)) for t, h, b in self.calls]
        return [c for c in decoded if c[2]["pickup_id"] == pickup_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    receiver = Gateway()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def alerting(gateway: Gateway) -> Iterator[tuple[Database, ServerProcess, str]]:
    with demo_server(
        "lanshou-alerts-",
        LANSHOU_SCHEDULER_INTERVAL_MS="50",
        LANSHOU_ALERT_GATEWAY_URL=gateway.url,
        LANSHOU_ALERT_GATEWAY_SECRET=SECRET,
        LANSHOU_ALERT_GATEWAY_AFTER_S="1",
        LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S="2",
        LANSHOU_ALERT_GATEWAY_ALLOWED_HOSTS="127.0.0.1",
    ) as world:
        yield world


@pytest.fixture
async def people(alerting: tuple[Database, ServerProcess, str]) -> AsyncIterator[Personas]:
    _db, server, api_key = alerting
    personas = Personas(server, api_key)
    yield personas
    await personas.close()


async def courier_with_phone(people: Personas, zone_code: str, phone: str) -> tuple[Any, int]:
    """A courier of the zone with a phone the gateway can dial, signed in and on duty."""
    admin = await people.user("admin")
    username = f"alert-{uuid.uuid4().hex[:8]}"
    r = await admin.post(
        "/api/v1/users",
        json={
            "username": username,
            "password": "pw-alerts",
            "role": "courier",
            "phone": phone,
            "zones": [{"zone": zone_code}],
        },
    )
    assert r.status_code == 201, r.text
    courier = await people.user(username, "pw-alerts")
    assert (await courier.post("/api/v1/courier/duty", json={"on_duty": True})).status_code == 200
    return courier, r.json()["courier_id"]


async def alert_events(db: Database, pickup_id: int) -> list[dict[str, Any]]:
    rows = await db_rows(
        db, "SELECT data FROM events WHERE pickup = ? AND type = 'pickup.alert_sent' ORDER BY id", pickup_id
    )
    return [msgspec.json.decode(r["data"]) for r in rows]


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


def verify(headers: dict[str, str], body: bytes) -> bool:
    stamp, signature = (part.split("=", 1)[1] for part in headers["x-lanshou-signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


async def test_an_unanswered_offer_is_texted_then_called_once_each_and_signed(
    people: Personas, gateway: Gateway, alerting: tuple[Database, ServerProcess, str]
) -> None:
    db = alerting[0]
    zone = await make_zone(people, offer_ttl_s=600)
    _courier, courier_id = await courier_with_phone(people, zone.code, "13800138000")
    r = await people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    offered = time.monotonic()
    pickup = r.json()

    async def both_recorded() -> bool:
        return len(await alert_events(db, pickup["id"])) == 2

    await wait_for(both_recorded)
    await asyncio.sleep(0.5)  # nothing more comes
    calls = gateway.for_pickup(pickup["id"])
    assert [c[2]["channel"] for c in calls] == ["sms", "voice"]
    (sms_at, headers, sms), (voice_at, _, _voice) = calls
    assert sms_at - offered >= 0.9 and voice_at - offered >= 1.9
    assert sms["phone"] == "13800138000" and sms["courier_id"] == courier_id
    assert sms["zone"] == zone.code and sms["district"] == "望城区" and sms["street"] == "白箬铺镇"
    assert "13912345678" not in msgspec.json.encode(sms).decode()  # never the customer's phone
    raw = next(b for t, h, b in gateway.calls if t == sms_at)
    assert verify(headers, raw)
    assert not verify(
        {**headers, "x-lanshou-signature": headers["x-lanshou-signature"][:-1] + "0"}, raw + b" "
    )
    assert headers["x-lanshou-alert"] == f"{pickup['id']}-1-{courier_id}-sms"
    events = await alert_events(db, pickup["id"])
    assert events == [
        {"channel": "sms", "courier_id": courier_id, "ok": True, "status": 200},
        {"channel": "voice", "courier_id": courier_id, "ok": True, "status": 200},
    ]
    # Nothing of this reaches the partner.
    history = (await people.partner().get(f"/api/v1/pickups/{pickup['id']}")).json()["events"]
    assert "pickup.alert_sent" not in {e["type"] for e in history}


async def test_an_offer_seen_or_accepted_in_time_is_not_sent(
    people: Personas, gateway: Gateway, alerting: tuple[Database, ServerProcess, str]
) -> None:
    db = alerting[0]
    zone = await make_zone(people, offer_ttl_s=600)
    courier, _ = await courier_with_phone(people, zone.code, "13800138001")
    seen = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    taken = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
    assert (await courier.post(f"/api/v1/courier/pickups/{seen['id']}/seen", json={})).status_code == 200
    assert (await courier.post(f"/api/v1/courier/pickups/{taken['id']}/accept", json={})).status_code == 200
    # A third, left alone, is the control: once it has both its alerts, the others' time has passed.
    control = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()

    async def control_done() -> bool:
        return len(await alert_events(db, control["id"])) == 2

    await wait_for(control_done)
    assert gateway.for_pickup(seen["id"]) == [] and gateway.for_pickup(taken["id"]) == []
    assert await alert_events(db, seen["id"]) == [] and await alert_events(db, taken["id"]) == []
    timers = await db_rows(
        db, "SELECT kind FROM timers WHERE pickup IN (?, ?) AND courier IS NOT NULL", seen["id"], taken["id"]
    )
    assert timers == []  # dropped when seen or answered, not left to fire as no-ops


async def test_a_failing_gateway_is_recorded_and_nothing_else_changes(
    people: Personas, gateway: Gateway, alerting: tuple[Database, ServerProcess, str]
) -> None:
    db, server, _ = alerting
    zone = await make_zone(people, offer_ttl_s=600)
    courier, courier_id = await courier_with_phone(people, zone.code, "13800138002")
    gateway.status = 500
    try:
        pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()

        async def sms_recorded() -> bool:
            return len(await alert_events(db, pickup["id"])) >= 1

        await wait_for(sms_recorded)
    finally:
        gateway.status = 200
    assert (await alert_events(db, pickup["id"]))[0] == {
        "channel": "sms",
        "courier_id": courier_id,
        "ok": False,
        "status": 500,
    }
    # The offer stands, and the courier can still take it.
    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    assert "Traceback" not in server.log()


@pytest.fixture
def refusing(gateway: Gateway) -> Iterator[tuple[Database, ServerProcess, str]]:
    """A server of its own whose gateway is on loopback, which it is NOT allowed to reach (a second
    server on the module's database would fire the same timers)."""
    with demo_server(
        "lanshou-alerts-refused-",
        LANSHOU_SCHEDULER_INTERVAL_MS="50",
        LANSHOU_ALERT_GATEWAY_URL=gateway.url,
        LANSHOU_ALERT_GATEWAY_SECRET=SECRET,
        LANSHOU_ALERT_GATEWAY_AFTER_S="1",
    ) as world:
        yield world


async def test_a_gateway_on_an_address_not_allowed_is_refused_not_called(
    gateway: Gateway, refusing: tuple[Database, ServerProcess, str]
) -> None:
    # The webhooks' SSRF check applies: loopback only when LANSHOU_ALERT_GATEWAY_ALLOWED_HOSTS allows it.
    db, server, api_key = refusing
    others = Personas(server, api_key)
    try:
        zone = await make_zone(others, offer_ttl_s=600)
        await courier_with_phone(others, zone.code, "13800138003")
        pickup = (await others.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()

        async def recorded() -> bool:
            return len(await alert_events(db, pickup["id"])) == 1

        await wait_for(recorded)
        (event,) = await alert_events(db, pickup["id"])
        assert event["ok"] is False and event["error"].startswith("refused"), event
        assert not [body for _, _, body in gateway.calls if b"13800138003" in body]
    finally:
        await others.close()


@pytest.fixture
def two_processes(gateway: Gateway) -> Iterator[tuple[Database, list[ServerProcess], str]]:
    """Two server processes on one database of their own, both with the gateway on."""
    env = {
        "LANSHOU_SCHEDULER_INTERVAL_MS": "20",
        "LANSHOU_ALERT_GATEWAY_URL": gateway.url,
        "LANSHOU_ALERT_GATEWAY_SECRET": SECRET,
        "LANSHOU_ALERT_GATEWAY_AFTER_S": "1",
        "LANSHOU_ALERT_GATEWAY_VOICE_AFTER_S": "2",
        "LANSHOU_ALERT_GATEWAY_ALLOWED_HOSTS": "127.0.0.1",
    }
    with demo_database("lanshou-alerts-two-") as (db, api_key):
        servers = [ServerProcess(db, **env).start() for _ in range(2)]
        try:
            yield db, servers, api_key
        finally:
            for server in servers:
                server.stop()


async def test_two_processes_send_each_alert_once(
    gateway: Gateway, two_processes: tuple[Database, list[ServerProcess], str]
) -> None:
    db, (first, _second), api_key = two_processes
    people = Personas(first, api_key)
    try:
        zone = await make_zone(people, offer_ttl_s=600)
        phones = [f"1370013{n:04d}" for n in range(4)]
        for phone in phones:
            await courier_with_phone(people, zone.code, phone)
        pickup = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()

        async def all_recorded() -> bool:
            return len(await alert_events(db, pickup["id"])) == 2 * len(phones)

        await wait_for(all_recorded)
        await asyncio.sleep(0.5)
        sent = [msgspec.json.decode(body) for _, _, body in gateway.calls if b"1370013" in body]
        assert sorted((c["phone"], c["channel"]) for c in sent) == sorted(
            (phone, channel) for phone in phones for channel in ("sms", "voice")
        )
        assert len(await alert_events(db, pickup["id"])) == 2 * len(phones)
    finally:
        await people.close()
