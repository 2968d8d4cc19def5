"""Partner webhooks: signed, in order, at least once, retried after a failure."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec

from tests.conftest import Database, Personas, free_port, login_couriers, make_zone, pickup_body


class Receiver:
    """A partner's webhook endpoint on loopback; fails the first `fail_first` calls with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 503 if len(receiver.calls) < receiver.fail_first else 200
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
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


def new_partner(db: Database) -> str:
    out = db.cli("partner", "create", "--code", f"hook-{free_port()}")
    return re.search(r"lsk_\S+", out).group(0)  # type: ignore[union-attr]


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
        await courier.post(
            f"/api/v1/courier/pickups/{pickup['id']}/collect", json={"waybill_no": "EA123456785CN"}
        )
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
        assert events[-1]["data"]["waybill_no"] == "EA123456785CN"
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
        status = (await partner.get("/api/v1/partner/webhook")).json()
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
