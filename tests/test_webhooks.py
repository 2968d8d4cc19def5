"""Partner webhooks: signed, in order, at least once, retried after a failure; partners delivered
independently (one hanging endpoint delays no one else); failures reported without network details.

The session server allows webhooks to 127.0.0.1 and localhost (LANSHOU_WEBHOOK_ALLOWED_HOSTS), where
these receivers listen; test_webhook_ssrf.py checks a server without that exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec

from tests.conftest import (
    ON_POSTGRES,
    Api,
    Database,
    Personas,
    ServerProcess,
    free_port,
    login_couriers,
    make_zone,
    new_waybill,
    pickup_body,
)


class Receiver:
    """A partner's webhook endpoint on loopback; fails the first `fail_first` calls with `fail_status`
    (and `fail_headers`); with `hang`, holds every call open until that event is set."""

    def __init__(
        self,
        fail_first: int = 0,
        fail_status: int = 503,
        fail_headers: dict[str, str] | None = None,
        hang: threading.Event | None = None,
        delay: float = 0.0,
    ) -> None:
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        self.arrived: list[float] = []  # time.monotonic() of each call
        self.fail_first = fail_first
        self.in_flight = self.most_in_flight = 0  # calls being answered at once
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                failing = len(receiver.calls) < receiver.fail_first
                status = fail_status if failing else 200
                with lock:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                receiver.arrived.append(time.monotonic())
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                if hang is not None:
                    hang.wait(30)
                time.sleep(delay)
                with lock:
                    receiver.in_flight -= 1
                self.send_response(status)
                for name, value in (fail_headers or {}).items() if failing else ():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[dict[str, Any]]:
        events = []
        for _headers, body, status in self.calls:
            if status == 200:
                events.extend(msgspec.json.decode(body)["events"])
        return events

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def new_partner(db: Database, code: str | None = None) -> str:
    """A new partner (by the CLI, as an operator would); returns its API key."""
    out = db.cli("partner", "create", "--code", code or f"hook-{free_port()}")
    return re.search(r"lsk_\S+", out).group(0)  # type: ignore[union-attr]


async def write_webhook_url(db: Database, partner_code: str, url: str) -> None:
    """Store a webhook URL straight in the database, past the API's checks (as one stored before the
    checks existed would be), due from the next event on."""
    statement = (
        "UPDATE partners SET webhook_url = ?, webhook_secret = 'whsec_test', webhook_attempts = 0, "
        "webhook_next_ms = 0, webhook_last_error = NULL, "
        "webhook_cursor = (SELECT COALESCE(MAX(id), 0) FROM events) WHERE code = ?"
    )
    if ON_POSTGRES:
        import asyncpg

        conn = await asyncpg.connect(db.url)
        try:
            await conn.execute(statement.replace("?", "$1", 1).replace("?", "$2", 1), url, partner_code)
        finally:
            await conn.close()
    else:
        import sqlite3

        with sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=10) as conn:
            conn.execute(statement, (url, partner_code))


async def webhook_status_once(partner: Api, condition) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The partner's webhook status as soon as `condition(status)` holds (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        status = (await partner.get("/api/v1/partner/webhook")).json()
        if condition(status):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"webhook status never matched: {status}")
        await asyncio.sleep(0.1)


async def test_events_reach_the_partner_signed_and_in_order(people: Personas, db: Database) -> None:
    receiver = Receiver()
    try:
        partner = people.partner(new_partner(db))
        r = await partner.put("/api/v1/partner/webhook", json={"url": receiver.url})
        assert r.status_code == 200, r.text
        secret = r.json()["secret"]
        zone = await make_zone(people, couriers=1)
        (courier,) = await login_couriers(people, zone)
        pickup = (
            await partner.post("/api/v1/pickups", json=pickup_body(zone, partner_order_no="HOOK-1"))
        ).json()
        await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
        waybill = new_waybill()
        await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": waybill})
        await wait_for(lambda: any(e["type"] == "pickup.collected" for e in receiver.delivered()))
        events = receiver.delivered()
        assert [e["type"] for e in events] == [
            "pickup.created",
            "pickup.offered",
            "pickup.accepted",
            "pickup.collected",
        ]
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        assert all(e["pickup"]["partner_order_no"] == "HOOK-1" for e in events)
        assert events[-1]["data"]["waybill_no"] == waybill
        headers, body, _ = receiver.calls[0]
        t, v1 = re.match(r"t=(\d+),v1=([0-9a-f]+)", headers["x-lanshou-signature"]).groups()  # type: ignore[union-attr]
        expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(v1, expected)
    finally:
        receiver.close()


async def test_a_failing_endpoint_is_retried_without_losing_or_reordering(
    people: Personas, db: Database
) -> None:
    receiver = Receiver(fail_first=2)
    try:
        partner = people.partner(new_partner(db))
        await partner.put("/api/v1/partner/webhook", json={"url": receiver.url})
        zone = await make_zone(people)
        first = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
        second = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
        await wait_for(
            lambda: {e["pickup"]["id"] for e in receiver.delivered()} >= {first["id"], second["id"]}, 15
        )
        events = receiver.delivered()
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        assert len({e["id"] for e in events}) == len(events)
        assert [status for _, _, status in receiver.calls[:3]] == [503, 503, 200]
        # The worker records the success after the receiver has answered: on a busy machine, a moment later.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            status = (await partner.get("/api/v1/partner/webhook")).json()
            if status["failed_attempts"] == 0 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status["failed_attempts"] == 0 and status["last_error"] is None
    finally:
        receiver.close()


async def test_partners_get_only_their_own_events(people: Personas, db: Database) -> None:
    receiver = Receiver()
    try:
        watcher = people.partner(new_partner(db))
        await watcher.put("/api/v1/partner/webhook", json={"url": receiver.url})
        zone = await make_zone(people)
        mine = (await watcher.post("/api/v1/pickups", json=pickup_body(zone))).json()
        theirs = (await people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()
        await wait_for(lambda: any(e["pickup"]["id"] == mine["id"] for e in receiver.delivered()))
        await asyncio.sleep(0.5)
        assert all(e["pickup"]["id"] != theirs["id"] for e in receiver.delivered())
    finally:
        receiver.close()


async def test_a_webhook_url_must_be_http(people: Personas) -> None:
    r = await people.partner().put("/api/v1/partner/webhook", json={"url": "ftp://example.com/x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url"


async def test_time_limit_warning_and_breach_go_to_the_partner(people: Personas, db: Database) -> None:
    receiver = Receiver()
    try:
        partner = people.partner(new_partner(db))
        await partner.put("/api/v1/partner/webhook", json={"url": receiver.url})
        zone = await make_zone(people, sla_minutes=0.03)  # 1.8 s
        pickup = (await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()
        await wait_for(lambda: any(e["type"] == "pickup.sla_breached" for e in receiver.delivered()), 10)
        types = [e["type"] for e in receiver.delivered() if e["pickup"]["id"] == pickup["id"]]
        assert types.index("pickup.sla_warning") < types.index("pickup.sla_breached")
    finally:
        receiver.close()


async def test_a_hanging_endpoint_delays_no_other_partner(people: Personas, db: Database) -> None:
    release = threading.Event()
    hanging, healthy = Receiver(hang=release), Receiver()
    try:
        alice = people.partner(new_partner(db))
        bob = people.partner(new_partner(db))
        await alice.put("/api/v1/partner/webhook", json={"url": hanging.url})
        await bob.put("/api/v1/partner/webhook", json={"url": healthy.url})
        zone = await make_zone(people)
        await alice.post("/api/v1/pickups", json=pickup_body(zone))
        await wait_for(lambda: hanging.calls)  # alice's delivery is now stuck in her endpoint
        sent = time.monotonic()
        bobs = (await bob.post("/api/v1/pickups", json=pickup_body(zone))).json()
        await wait_for(lambda: healthy.delivered(), 12)
        assert healthy.delivered()[0]["pickup"]["id"] == bobs["id"]
        # Polled every 0.1 s; on PostgreSQL an event is read 1 s after it is written (SETTLE).
        assert healthy.arrived[0] - sent < 2.5, f"bob waited {healthy.arrived[0] - sent:.1f} s"
    finally:
        release.set()
        hanging.close()
        healthy.close()


async def test_an_unparseable_stored_url_shows_in_its_status_and_holds_up_no_one(
    people: Personas, db: Database
) -> None:
    receiver = Receiver()
    broken_code = f"hook-broken-{free_port()}"
    broken = people.partner(new_partner(db, broken_code))
    healthy = people.partner(new_partner(db))
    try:
        await write_webhook_url(db, broken_code, "http://[::1")
        await healthy.put("/api/v1/partner/webhook", json={"url": receiver.url})
        zone = await make_zone(people)
        for _ in range(2):
            await broken.post("/api/v1/pickups", json=pickup_body(zone))
            mine = (await healthy.post("/api/v1/pickups", json=pickup_body(zone))).json()
            await wait_for(lambda: any(e["pickup"]["id"] == mine["id"] for e in receiver.delivered()))  # noqa: B023
        status = await webhook_status_once(broken, lambda s: s["failed_attempts"] >= 1)
        assert status["last_error"] == "refused: URL not valid"
        assert status["url"] == "http://[::1"
    finally:
        await broken.delete("/api/v1/partner/webhook")
        receiver.close()


async def test_a_failure_is_reported_without_telling_open_ports_from_closed(
    people: Personas, db: Database
) -> None:
    partner = people.partner(new_partner(db))
    closed_port = free_port()  # nothing listens there: the connection is refused
    r = await partner.put("/api/v1/partner/webhook", json={"url": f"http://127.0.0.1:{closed_port}/hook"})
    assert r.status_code == 200, r.text
    try:
        zone = await make_zone(people)
        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        status = await webhook_status_once(partner, lambda s: s["failed_attempts"] >= 1)
        assert status["last_error"] == "could not connect"
    finally:
        await partner.delete("/api/v1/partner/webhook")


async def test_redirects_are_reported_not_followed(people: Personas, db: Database) -> None:
    target = Receiver()
    redirecting = Receiver(fail_first=1000, fail_status=307, fail_headers={"location": target.url})
    try:
        partner = people.partner(new_partner(db))
        await partner.put("/api/v1/partner/webhook", json={"url": redirecting.url})
        zone = await make_zone(people)
        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        status = await webhook_status_once(partner, lambda s: s["failed_attempts"] >= 1)
        assert status["last_error"] == "HTTP 307"
        assert redirecting.calls and not target.calls
    finally:
        await partner.delete("/api/v1/partner/webhook")
        redirecting.close()
        target.close()


async def test_a_named_host_is_sent_its_own_name_while_the_checked_address_is_dialled(
    people: Personas, db: Database
) -> None:
    receiver = Receiver()
    try:
        partner = people.partner(new_partner(db))
        url = f"http://localhost:{receiver.port}/hook?source=lanshou"
        assert (await partner.put("/api/v1/partner/webhook", json={"url": url})).status_code == 200
        zone = await make_zone(people)
        await partner.post("/api/v1/pickups", json=pickup_body(zone))
        await wait_for(lambda: receiver.delivered())
        headers, _, _ = receiver.calls[0]
        assert headers["host"] == f"localhost:{receiver.port}"
    finally:
        receiver.close()


async def test_two_processes_deliver_each_partner_in_order_one_batch_at_a_time(
    people: Personas, db: Database
) -> None:
    # A second process beside the session server: both workers see every partner as due.
    second = ServerProcess(
        db, LANSHOU_WEBHOOK_INTERVAL_MS="50", LANSHOU_WEBHOOK_ALLOWED_HOSTS="127.0.0.1"
    ).start()
    receivers = [Receiver(delay=0.1) for _ in range(3)]
    try:
        partners = [people.partner(new_partner(db)) for _ in receivers]
        for partner, receiver in zip(partners, receivers, strict=True):
            await partner.put("/api/v1/partner/webhook", json={"url": receiver.url})
        zone = await make_zone(people)
        created: list[set[int]] = [set() for _ in partners]
        for _ in range(4):
            for mine, partner in zip(created, partners, strict=True):
                mine.add((await partner.post("/api/v1/pickups", json=pickup_body(zone))).json()["id"])
        for mine, receiver in zip(created, receivers, strict=True):
            await wait_for(lambda: {e["pickup"]["id"] for e in receiver.delivered()} >= mine, 15)  # noqa: B023
        for receiver in receivers:
            ids = [e["id"] for e in receiver.delivered()]
            assert ids == sorted(set(ids)), "a partner's events came out of order or twice"
            assert receiver.most_in_flight == 1, "two batches of one partner were in flight at once"
    finally:
        second.stop()
        for receiver in receivers:
            receiver.close()
