"""Web Push for offers: a courier whose app is in the background or closed is still told.

A courier's browser registers a subscription (its push service's endpoint URL and the keys to encrypt
for it). When a pickup is offered, after the transaction has committed, each subscription of each
courier offered gets one message: the payload JSON encrypted for that browser (RFC 8291, aes128gcm,
http_ece), signed for the push service with the server's VAPID key (RFC 8292, py_vapid), with a TTL
of several minutes (a TTL of 0 drops the message when the phone sleeps) and `Urgency: high`, and a
`Topic` per pickup so a newer message for the same pickup replaces an undelivered older one.

Sending is off the request path: the unit of work's publish hands the offers to a queue, and a worker
in each process sends up to IN_FLIGHT messages at once, with httpx (asynchronous: nothing waits on
the event loop). A full queue drops the push and logs it, never the offer: the open app (SSE) is the
primary channel and Web Push its backup.

Endpoints are URLs a browser chose, so every send goes through the webhooks' SSRF check (resolve,
refuse non-public addresses unless LANSHOU_PUSH_ALLOWED_HOSTS allows them, connect only to the checked
address, no redirects). A push service that answers 404 or 410 has forgotten the subscription: it is
deleted. Any other failure is recorded on the subscription (last_error) and logged.

While an offer stays open the push is sent again every LANSHOU_PUSH_RENOTIFY_S seconds (30 by
default; the service worker shows it with the same tag and `renotify`, so the phone rings again), to
the couriers whose offer of that round is still open, until the offer ends or TTL_S has passed. The
re-sends are kept in this process's memory, not in the database: a restart stops them, and the offer's
own expiry and escalation still run from durable timers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import http_ece
import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from server.db.script import Sql, fetch
from server.errors import ApiError, field_errors
from server.push.log import PushMessage, utcnow
from server.tables import Pickup, PickupOffer, PushSubscription
from server.webhooks.destinations import (
    AllowedHosts,
    RefusedDestination,
    allowed_hosts,
    check_destination,
    delivery_client,
    post_to_checked_address,
    public_error,
)
from server.webpush.keys import b64url_decode, load_private_key, public_key
from server.webpush.schemas import PushSubscriptionIn, PushSubscriptionOut

log = logging.getLogger("lanshou.webpush")

# Seconds a push service keeps an undelivered message (a phone asleep, in a lift).
TTL_S = 300
# Messages sent at once by one process; the rest wait their turn.
IN_FLIGHT = 8
# Offers waiting to be pushed; beyond this the push is dropped (the offer itself is not).
QUEUE_LIMIT = 1000
# The VAPID token's lifetime (RFC 8292 allows at most 24 h).
TOKEN_LIFETIME_S = 12 * 3600
SEND_DEADLINE_S = 20.0
GONE = (404, 410)


class OfferPush(msgspec.Struct, frozen=True):
    pickup_id: int
    couriers: list[int]
    payload: bytes
    round: int = 0
    sent_at: float = 0.0  # time.monotonic() of the first send; re-sends stop TTL_S after it
    again: bool = False  # a re-send: only to couriers whose offer is still open


def offer_payload(message: PushMessage) -> bytes:
    """What the service worker shows: JSON {type, pickup_id, title, body, tag, url}."""
    pickup = message.data.get("pickup") or {}
    pickup_id = message.pickup_id
    place = " ".join(str(p) for p in (pickup.get("district"), pickup.get("street")) if p)
    count = pickup.get("parcel_count") or 1
    return msgspec.json.encode(
        {
            "type": "offer",
            "pickup_id": pickup_id,
            "title": "新揽收任务",
            "body": f"{place} · {count} 件" if place else f"{count} 件",
            "tag": f"pickup-{pickup_id}",
            "url": f"/app/?offer={pickup_id}",
        }
    )


# -- registration ------------------------------------------------------------------------------------


def _browser_keys(data: PushSubscriptionIn) -> None:
    """422 unless the keys are what a browser sends: a P-256 point and a 16-byte secret."""
    errors = []
    try:
        point = b64url_decode(data.keys.p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError
    except ValueError:
        errors.append({"field": "keys.p256dh", "message": "not a P-256 public key (65 bytes, base64url)"})
    try:
        if len(b64url_decode(data.keys.auth)) != 16:
            raise ValueError
    except ValueError:
        errors.append({"field": "keys.auth", "message": "not an auth secret (16 bytes, base64url)"})
    if errors:
        raise field_errors(errors)


async def subscribe(
    courier_id: int, data: PushSubscriptionIn, allowed: AllowedHosts, vapid_public_key: str
) -> PushSubscriptionOut:
    """Register (or re-register) a browser's subscription for this courier.

    An endpoint belongs to one browser: registering it again moves it to this courier with the new
    keys (a shared phone, a courier signing in after another). 422 unless the endpoint passes the
    SSRF check and the keys are well formed.
    """
    _browser_keys(data)
    endpoint = data.endpoint.strip()
    try:
        await check_destination(endpoint, allowed)
    except RefusedDestination as exc:
        log.info("push endpoint refused for courier %s: %s", courier_id, exc.detail)
        message = exc.message.replace("the webhook URL", "the push endpoint")
        raise ApiError(422, "bad_push_endpoint", message, field="endpoint") from None
    # One upsert (as server/throttle.py does): two registrations of one endpoint at the same moment
    # cannot both insert.
    await PushSubscription.insert(
        PushSubscription(
            courier=courier_id,
            endpoint=endpoint,
            p256dh=data.keys.p256dh,
            auth=data.keys.auth,
            created_at=utcnow(),
        )
    ).on_conflict(
        target=PushSubscription.endpoint,
        action="DO UPDATE",
        values=[
            PushSubscription.courier,
            PushSubscription.p256dh,
            PushSubscription.auth,
            PushSubscription.last_error,
        ],
    )
    return PushSubscriptionOut(endpoint=endpoint, public_key=vapid_public_key)


async def unsubscribe(courier_id: int, endpoint: str) -> None:
    """Forget the courier's subscription at `endpoint` (nothing happens for anyone else's)."""
    await PushSubscription.delete().where(
        (PushSubscription.courier == courier_id) & (PushSubscription.endpoint == endpoint.strip())
    )


# -- sending -----------------------------------------------------------------------------------------


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291 aes128gcm: a fresh sender key pair and salt per message, the keys in the header."""
    return http_ece.encrypt(
        payload,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=b64url_decode(p256dh),
        auth_secret=b64url_decode(auth),
        version="aes128gcm",
    )


def audience(endpoint: str) -> str:
    """The push service's origin, the `aud` of the VAPID token."""
    scheme, rest = endpoint.split("://", 1)
    return f"{scheme.lower()}://{rest.split('/', 1)[0].split('?', 1)[0]}"


class PushSender:
    """Sends offers to couriers' subscriptions from a queue, off the request path."""

    def __init__(
        self, private_key: str, subject: str, allowed: tuple[str, ...] = (), renotify_s: float = 30.0
    ) -> None:
        self.enabled = bool(private_key)
        self.renotify_s = renotify_s
        self._later: set[asyncio.TimerHandle] = set()
        self._key = load_private_key(private_key) if private_key else None
        self.public_key = public_key(self._key) if self._key is not None else ""
        self.subject = subject
        self.allowed = allowed_hosts(allowed)
        self.queue: asyncio.Queue[OfferPush] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tokens: dict[str, tuple[float, str]] = {}  # audience -> (expires, Authorization)

    def notice(self, messages: Sequence[PushMessage]) -> None:
        """Take the offers among committed events (called by publish; never blocks, never raises)."""
        if not self.enabled:
            return
        for message in messages:
            if message.type != "pickup.offered" or not message.to or message.pickup_id is None:
                continue
            try:
                self.queue.put_nowait(
                    OfferPush(
                        message.pickup_id,
                        list(message.to),
                        offer_payload(message),
                        round=int(message.data.get("round") or 0),
                        sent_at=time.monotonic(),
                    )
                )
            except asyncio.QueueFull:
                log.warning("web push queue full: pickup %s not pushed", message.pickup_id)

    def _send_again_later(self, offer: OfferPush) -> None:
        if self.renotify_s <= 0 or time.monotonic() + self.renotify_s > offer.sent_at + TTL_S:
            return
        again = msgspec.structs.replace(offer, again=True)

        def put() -> None:
            self._later.discard(handle)
            try:
                self.queue.put_nowait(again)
            except asyncio.QueueFull:
                log.warning("web push queue full: pickup %s not pushed again", offer.pickup_id)

        handle = asyncio.get_running_loop().call_later(self.renotify_s, put)
        self._later.add(handle)

    async def run(self) -> None:
        slots = asyncio.Semaphore(IN_FLIGHT)
        async with delivery_client() as client:
            try:
                while True:
                    offer = await self.queue.get()
                    try:
                        couriers = await still_offered(offer) if offer.again else offer.couriers
                        if not couriers:
                            continue
                        subscriptions = await subscriptions_of(couriers)
                    except Exception:
                        log.exception("web push: could not read subscriptions for pickup %s", offer.pickup_id)
                        continue
                    if subscriptions:  # nobody to ring: no reason to read the offer again later
                        self._send_again_later(msgspec.structs.replace(offer, couriers=couriers))
                    for sub in subscriptions:
                        await slots.acquire()
                        task = asyncio.create_task(self._send_one(client, sub, offer))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                        task.add_done_callback(lambda _: slots.release())
            finally:
                for handle in self._later:
                    handle.cancel()
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def authorization(self, endpoint: str) -> str:
        """`vapid t=<JWT>,k=<public key>`, reused per push service until an hour before it expires."""
        aud = audience(endpoint)
        cached = self._tokens.get(aud)
        now = time.time()
        if cached is None or cached[0] - 3600 < now:
            expires = int(now) + TOKEN_LIFETIME_S
            header = Vapid02(private_key=self._key).sign({"aud": aud, "sub": self.subject, "exp": expires})
            cached = (expires, header["Authorization"])
            self._tokens[aud] = cached
        return cached[1]

    async def _send_one(self, client: Any, sub: dict[str, Any], offer: OfferPush) -> None:
        endpoint = sub["endpoint"]
        try:
            async with asyncio.timeout(SEND_DEADLINE_S):
                destination = await check_destination(endpoint, self.allowed)
                body = encrypt(offer.payload, sub["p256dh"], sub["auth"])
                headers = {
                    "content-type": "application/octet-stream",
                    "content-encoding": "aes128gcm",
                    "ttl": str(TTL_S),
                    "urgency": "high",
                    "topic": f"pickup-{offer.pickup_id}",
                    "authorization": self.authorization(endpoint),
                }
                status = await post_to_checked_address(client, destination, body, headers)
        except Exception as exc:
            error = public_error(exc)
            log.info("web push to subscription %s failed: %s (%r)", sub["id"], error, exc)
            await self._record(sub["id"], error)
            return
        if status in GONE:
            log.info("web push subscription %s is gone (HTTP %s): removed", sub["id"], status)
            await PushSubscription.delete().where(PushSubscription.id == sub["id"])
        elif 200 <= status < 300:
            if sub["last_error"] is not None:
                await self._record(sub["id"], None)
        else:
            log.info("web push to subscription %s answered HTTP %s", sub["id"], status)
            await self._record(sub["id"], f"HTTP {status}")

    async def _record(self, sub_id: int, error: str | None) -> None:
        try:
            await PushSubscription.update({PushSubscription.last_error: error}).where(
                PushSubscription.id == sub_id
            )
        except Exception:
            log.exception("web push: could not record the outcome for subscription %s", sub_id)


@lru_cache(maxsize=64)
def _subscriptions_sql(n: int) -> Sql:
    return Sql(
        "SELECT id, courier, endpoint, p256dh, auth, created_at, last_error FROM push_subscriptions "
        "WHERE courier IN (" + ", ".join(["{}"] * n) + ")"
    )


async def subscriptions_of(couriers: list[int]) -> list[dict[str, Any]]:
    """The couriers' Web Push subscriptions: read for every offer, so raw SQL prepared once per size
    (a query object cost more than the read), a few hundred couriers per statement."""
    found: list[dict[str, Any]] = []
    for i in range(0, len(couriers), 500):
        part = couriers[i : i + 500]
        found.extend(await fetch(PushSubscription._meta.db, _subscriptions_sql(len(part)), *part))
    return found


async def still_offered(offer: OfferPush) -> list[int]:
    """Those of the offer's couriers whose offer of that round is still open."""
    pickup = (
        await Pickup.select(Pickup.status, Pickup.offer_round).where(Pickup.id == offer.pickup_id).first()
    )
    if pickup is None or pickup["status"] != "offered" or pickup["offer_round"] != offer.round:
        return []
    rows = await PickupOffer.select(PickupOffer.courier).where(
        (PickupOffer.pickup == offer.pickup_id)
        & (PickupOffer.round == offer.round)
        & PickupOffer.outcome.is_null()
        & PickupOffer.courier.is_in(offer.couriers)
    )
    return sorted({r["courier"] for r in rows})


class PublishWithPush:
    """The unit of work's publisher: the push hub (SSE, every process) and, in the process that
    committed the offer, Web Push (so each offer is pushed once, not once per process)."""

    def __init__(self, hub: Any, sender: PushSender) -> None:
        self.hub = hub
        self.sender = sender

    def publish(self, messages: Sequence[PushMessage]) -> None:
        self.hub.publish(messages)
        self.sender.notice(messages)
