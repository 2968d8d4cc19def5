"""Web Push: an offer reaches a courier's browser through its push service, encrypted for that browser
(RFC 8291) and signed with the server's VAPID key (RFC 8292); a subscription the push service says is
gone is removed.

The push service is a stand-in on 127.0.0.1; the test plays the browser: it makes the subscription's
P-256 key pair and auth secret, and decrypts what arrives. Push endpoints pass the same SSRF check as
webhooks, so these tests run a server of their own that allows loopback (LANSHOU_PUSH_ALLOWED_HOSTS);
the session server, which does not, shows the refusal.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import msgspec
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import (
    ON_POSTGRES,
    Database,
    Personas,
    ServerProcess,
    demo_server,
    free_port,
    login_couriers,
    make_zone,
    pickup_body,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """What a browser keeps for one push subscription: its key pair and auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = secrets.token_bytes(16)

    def subscription(self) -> dict[str, Any]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> Any:
        return msgspec.json.decode(
            http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        )


class PushService:
    """A stand-in push service on loopback: records every message; answers 201, or `status[path]`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.status: dict[str, int] = {}
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                service.calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(service.status.get(self.path, 201))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.port}"

    def browser(self) -> Browser:
        return Browser(f"{self.origin}/push/{secrets.token_urlsafe(12)}")

    def to(self, browser: Browser) -> list[tuple[dict[str, str], bytes]]:
        path = browser.endpoint.removeprefix(self.origin)
        return [(headers, body) for p, headers, body in self.calls if p == path]

    async def wait_for(self, browser: Browser, count: int = 1) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + 10
        while len(self.to(browser)) < count:
            assert time.monotonic() < deadline, f"no push to {browser.endpoint}: {self.calls}"
            await asyncio.sleep(0.05)
        return self.to(browser)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def push_server() -> Iterator[tuple[Database, ServerProcess, str]]:
    # Open offers are pushed again every second here (30 s by default).
    with demo_server(
        "lanshou-webpush-", LANSHOU_PUSH_ALLOWED_HOSTS="127.0.0.1", LANSHOU_PUSH_RENOTIFY_S="1"
    ) as started:
        yield started


@pytest.fixture
async def push_people(push_server: tuple[Database, ServerProcess, str]) -> AsyncIterator[Personas]:
    _db, server, api_key = push_server
    personas = Personas(server, api_key)
    yield personas
    await personas.close()


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    yield service
    service.close()


async def subscriptions_at(db: Database, endpoint: str) -> int:
    statement = "SELECT COUNT(*) FROM push_subscriptions WHERE endpoint = ?"
    if ON_POSTGRES:
        import asyncpg

        conn = await asyncpg.connect(db.url)
        try:
            return int(await conn.fetchval(statement.replace("?", "$1"), endpoint))
        finally:
            await conn.close()
    import sqlite3

    with sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=10) as conn:
        return int(conn.execute(statement, (endpoint,)).fetchone()[0])


def verify_vapid(authorization: str, served_key: str, push_origin: str) -> dict[str, Any]:
    """Check `vapid t=<JWT>,k=<key>` as a push service does (RFC 8292); returns the JWT's claims."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", authorization
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == served_key
    signed, _, signature = parts["t"].rpartition(".")
    header = msgspec.json.decode(unb64url(signed.split(".")[0]))
    assert header == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    assert len(raw) == 64  # JWS ES256: r and s, 32 bytes each
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(served_key))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the VAPID JWT is not signed with the served key") from None
    claims = msgspec.json.decode(unb64url(signed.split(".")[1]))
    assert claims["aud"] == push_origin
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert claims["sub"].startswith(("mailto:", "https://"))
    return claims


async def test_an_offer_is_pushed_to_the_couriers_browser_encrypted_for_it_alone(
    push_people: Personas, push_service: PushService
) -> None:
    zone = await make_zone(push_people, couriers=1)
    (courier,) = await login_couriers(push_people, zone)
    phone, tablet = push_service.browser(), push_service.browser()
    served_key = (await courier.get("/api/v1/courier/push-subscriptions/key")).json()["public_key"]
    for browser in (phone, tablet):
        r = await courier.post("/api/v1/courier/push-subscriptions", json=browser.subscription())
        assert r.status_code == 200, r.text
        assert r.json() == {"endpoint": browser.endpoint, "public_key": served_key}

    pickup = (await push_people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()

    for browser in (phone, tablet):
        headers, body = (await push_service.wait_for(browser))[0]
        assert browser.decrypt(body) == {
            "type": "offer",
            "pickup_id": pickup["id"],
            "title": "新揽收任务",
            "body": "望城区 白箬铺镇 · 1 件",
            "tag": f"pickup-{pickup['id']}",
            "url": f"/app/?offer={pickup['id']}",
        }
        assert headers["content-encoding"] == "aes128gcm"
        assert headers["ttl"] == "300"  # minutes, not 0: a sleeping phone still gets it
        assert headers["urgency"] == "high"
        assert headers["topic"] == f"pickup-{pickup['id']}"
        verify_vapid(headers["authorization"], served_key, push_service.origin)
    # Each browser's copy opens only with its own keys.
    _, phone_body = push_service.to(phone)[0]
    with pytest.raises(Exception):  # noqa: B017 - http_ece raises InvalidTag (cryptography) here
        tablet.decrypt(phone_body)


async def test_a_subscription_the_push_service_says_is_gone_is_removed(
    push_server: tuple[Database, ServerProcess, str], push_people: Personas, push_service: PushService
) -> None:
    db = push_server[0]
    zone = await make_zone(push_people, couriers=1)
    (courier,) = await login_couriers(push_people, zone)
    gone, failing = push_service.browser(), push_service.browser()
    push_service.status[gone.endpoint.removeprefix(push_service.origin)] = 410
    push_service.status[failing.endpoint.removeprefix(push_service.origin)] = 500
    for browser in (gone, failing):
        r = await courier.post("/api/v1/courier/push-subscriptions", json=browser.subscription())
        assert r.status_code == 200, r.text

    await push_people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    await push_service.wait_for(gone)
    await push_service.wait_for(failing)
    deadline = time.monotonic() + 10
    while await subscriptions_at(db, gone.endpoint):
        assert time.monotonic() < deadline, "a 410 subscription was kept"
        await asyncio.sleep(0.05)
    assert await subscriptions_at(db, failing.endpoint) == 1  # a 500 is a bad moment, not a goodbye


async def test_an_unsubscribed_browser_is_not_pushed_to(
    push_server: tuple[Database, ServerProcess, str], push_people: Personas, push_service: PushService
) -> None:
    db = push_server[0]
    zone = await make_zone(push_people, couriers=1)
    (courier,) = await login_couriers(push_people, zone)
    kept, dropped = push_service.browser(), push_service.browser()
    for browser in (kept, dropped):
        assert (
            await courier.post("/api/v1/courier/push-subscriptions", json=browser.subscription())
        ).status_code == 200
    r = await courier.delete("/api/v1/courier/push-subscriptions", params={"endpoint": dropped.endpoint})
    assert r.status_code == 204
    assert await subscriptions_at(db, dropped.endpoint) == 0

    await push_people.partner().post("/api/v1/pickups", json=pickup_body(zone))
    await push_service.wait_for(kept)
    assert push_service.to(dropped) == []


async def test_it_refuses_a_push_endpoint_on_loopback(people: Personas) -> None:
    # The session server allows no internal push service: 127.0.0.1 is refused as for webhooks.
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone, on_duty=False)
    browser = Browser("http://127.0.0.1:9/push/x")
    r = await courier.post("/api/v1/courier/push-subscriptions", json=browser.subscription())
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "bad_push_endpoint"
    assert [e["field"] for e in r.json()["errors"]] == ["endpoint"]


async def test_it_refuses_keys_a_browser_would_not_send(people: Personas) -> None:
    zone = await make_zone(people, couriers=1)
    (courier,) = await login_couriers(people, zone, on_duty=False)
    body = Browser("https://push.example.com/x").subscription()
    body["keys"] = {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": b64url(b"short")}
    r = await courier.post("/api/v1/courier/push-subscriptions", json=body)
    assert r.status_code == 422, r.text
    assert sorted(e["field"] for e in r.json()["errors"]) == ["keys.auth", "keys.p256dh"]


async def test_an_open_offer_is_pushed_again_until_it_is_accepted(
    push_people: Personas, push_service: PushService
) -> None:
    zone = await make_zone(push_people, couriers=1)
    (courier,) = await login_couriers(push_people, zone)
    phone = push_service.browser()
    assert (
        await courier.post("/api/v1/courier/push-subscriptions", json=phone.subscription())
    ).status_code == 200
    pickup = (await push_people.partner().post("/api/v1/pickups", json=pickup_body(zone))).json()

    pushes = await push_service.wait_for(phone, count=3)  # the offer, then again each second
    for headers, body in pushes:
        assert phone.decrypt(body)["pickup_id"] == pickup["id"]
        assert headers["topic"] == f"pickup-{pickup['id']}"

    r = await courier.post(f"/api/v1/courier/pickups/{pickup['id']}/accept", json={})
    assert r.status_code == 200, r.text
    await asyncio.sleep(1.5)  # a re-send that had read the offer as open before the accept may land
    after_accept = len(push_service.to(phone))
    await asyncio.sleep(2.5)
    assert len(push_service.to(phone)) == after_accept
