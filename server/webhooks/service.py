"""Partner webhooks: every event of a partner's pickups, POSTed in order, signed, at least once.

There is no separate outbox table: the event log is the outbox. Each partner has a cursor (the last
event id it acknowledged with a 2xx). A worker in every server process delivers to each due partner in
a task of its own, up to IN_FLIGHT partners at once, so an endpoint that hangs holds up only its own
partner. A task leases its partner first (a row update only one process can win), sends the next
events after the cursor, and moves the cursor only on success; a failure backs off exponentially (up
to an hour) and keeps the order: nothing later is sent before the failed batch.

Every attempt checks the URL again and connects only to addresses that check approved (see
destinations.py: no SSRF, no DNS rebinding, no redirects). What went wrong is shown to the partner in
plain words (`could not connect`, `timed out`, `HTTP 500`, `refused: …`); details go to the log.

Each batch is recorded as a delivery (deliveries.py) when first sent and retried with those same
events; a batch failing without a break for the give-up time (24 h) is given up: the partner's webhook
goes into the dead-letter state (nothing more is sent, its status says since when) until the partner
re-arms it, and delivery resumes at the cursor. A replay the partner asked for is sent between batches
under the same lease, and never moves the cursor.

The signature is `X-Lanshou-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the
partner's webhook secret, so a partner can check origin and freshness (README: "Checking webhook
signatures").
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from server.db.engine import is_postgres
from server.errors import ApiError
from server.periodic import repeat
from server.push.log import COURIER_SIDE_TYPES, STAFF_ONLY_TYPES
from server.tables import Event, Partner
from server.webhooks import deliveries
from server.webhooks.destinations import (
    AllowedHosts,
    RefusedDestination,
    allowed_hosts,
    check_destination,
    delivery_client,
    post_to_checked_address,
    public_error,
)

log = logging.getLogger("lanshou.webhooks")

BATCH = 50
LEASE_MS = 30_000
MAX_BACKOFF_S = 3600
# A batch failing without a break this long is given up (settings.webhook_give_up_s).
GIVE_UP_S = 86_400
# Partners delivered to at once by one process; the rest wait for the next pass.
IN_FLIGHT = 12
# A whole attempt (resolve, connect, send, answer) ends by then: well inside the lease, so a lease
# never lapses while its batch is still being sent (another process would send it again).
DELIVERY_DEADLINE_S = 20.0
# A partner with a backlog sends this many batches in a row, then lets the next pass choose again.
BATCHES_PER_TURN = 20
# On PostgreSQL ids come from a sequence and transactions commit out of id order: wait this long
# before reading past an event, so a slower transaction's smaller id is not jumped over.
SETTLE = timedelta(seconds=1)
# What partners are told about (withdrawals are between Lanshou and its couriers, notes between its staff).
INTERNAL_TYPES = {"pickup.withdrawn", *COURIER_SIDE_TYPES, *STAFF_ONLY_TYPES}
INTERNAL_KEYS = {"couriers", "pickup", "to"}
_encoder = msgspec.json.Encoder()


def now_ms() -> int:
    return int(time.time() * 1000)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def set_webhook(partner_id: int, url: str, allowed: AllowedHosts) -> dict[str, Any]:
    """Point the partner's webhook at `url` with a new secret; delivery starts from now.

    422 (field `url`) unless the URL passes the same destination check every delivery makes.
    """
    try:
        await check_destination(url, allowed)
    except RefusedDestination as exc:
        log.info("webhook URL refused for partner %s: %s", partner_id, exc.detail)
        raise ApiError(422, "bad_webhook_url", exc.message, field="url") from None
    url = url.strip()
    secret = "whsec_" + secrets.token_urlsafe(24)
    async with Partner._meta.db.transaction():
        newest = await Event.select(Event.id).order_by(Event.id, ascending=False).first()
        await Partner.update(
            {
                Partner.webhook_url: url,
                Partner.webhook_secret: secret,
                Partner.webhook_cursor: newest["id"] if newest else 0,
                Partner.webhook_attempts: 0,
                Partner.webhook_next_ms: 0,
                Partner.webhook_last_error: None,
                Partner.webhook_dead_since: None,
            }
        ).where(Partner.id == partner_id)
        # The stream starts again from now: a batch still being tried would move the cursor back.
        await deliveries.abandon_open_batches(partner_id, "abandoned: webhook URL changed")
    return {"url": url, "secret": secret}


async def webhook_status(partner_id: int) -> dict[str, Any]:
    """Where events go and how delivery stands: `state` is off (no URL), delivering, failing (retrying
    with backoff) or dead (given up since `dead_since`; re-arm to resume)."""
    row = (
        await Partner.select(
            Partner.webhook_url,
            Partner.webhook_cursor,
            Partner.webhook_attempts,
            Partner.webhook_last_error,
            Partner.webhook_dead_since,
        )
        .where(Partner.id == partner_id)
        .first()
    )
    assert row is not None
    dead_since = row["webhook_dead_since"]
    if not row["webhook_url"]:
        state = "off"
    elif dead_since is not None:
        state = "dead"
    else:
        state = "failing" if row["webhook_attempts"] else "delivering"
    return {
        "url": row["webhook_url"],
        "state": state,
        "dead_since": dead_since.isoformat() if dead_since is not None else None,
        "acknowledged_event_id": row["webhook_cursor"],
        "failed_attempts": row["webhook_attempts"],
        "last_error": row["webhook_last_error"],
    }


async def remove_webhook(partner_id: int) -> None:
    await Partner.update({Partner.webhook_url: None, Partner.webhook_secret: None}).where(
        Partner.id == partner_id
    )


def _partner_events(partner_id: int) -> Any:
    return Event.select(
        Event.id,
        Event.type,
        Event.at,
        Event.data,
        Event.pickup.id,
        Event.pickup.tracking_code,
        Event.pickup.partner_order_no,
        Event.pickup.status,
    ).where(Event.pickup.partner == partner_id)


async def pending_events(partner_id: int, cursor: int) -> list[dict[str, Any]]:
    """The next batch after the cursor (internal events included: the cursor moves past them too)."""
    query = _partner_events(partner_id).where(Event.id > cursor)
    if is_postgres(Event._meta.db):
        query = query.where(Event.at < datetime.now(UTC) - SETTLE)
    return _as_sent(await query.order_by(Event.id).limit(BATCH))


async def events_by_id(partner_id: int, ids: list[int]) -> list[dict[str, Any]]:
    """A recorded delivery's events again, as they are sent (a retry, a replay)."""
    if not ids:
        return []
    return _as_sent(await _partner_events(partner_id).where(Event.id.is_in(ids)).order_by(Event.id))


def _as_sent(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "type": r["type"],
            "at": r["at"].isoformat(),
            "pickup": {
                "id": r["pickup.id"],
                "tracking_code": r["pickup.tracking_code"],
                "partner_order_no": r["pickup.partner_order_no"],
                "status": r["pickup.status"],
            },
            "data": {k: v for k, v in msgspec.json.decode(r["data"]).items() if k not in INTERNAL_KEYS},
        }
        for r in rows
    ]


async def deliver_for(
    partner_id: int, client: httpx.AsyncClient, allowed: AllowedHosts, give_up_s: int = GIVE_UP_S
) -> bool:
    """Lease the partner; send a replay it asked for, or else its open batch again or its next batch;
    move the cursor on 2xx, back off on anything else, give up after `give_up_s` of failures.

    Returns whether there may be more to send now.
    """
    start = now_ms()
    leased = (
        await Partner.update({Partner.webhook_lease_ms: start + LEASE_MS})
        .where((Partner.id == partner_id) & (Partner.webhook_lease_ms < start))
        .returning(Partner.id)
    )
    if not leased:
        return False  # another process is delivering to this partner
    try:
        partner = await Partner.select().where(Partner.id == partner_id).first()
        assert partner is not None
        if not partner["webhook_url"]:
            return False
        if (replay := await deliveries.next_replay(partner_id)) is not None:
            await send_replay(partner, replay, client, allowed)
            return True
        if partner["webhook_dead_since"] is not None or partner["webhook_next_ms"] > start:
            return False  # dead letter, or backing off (a replay alone made it due)
        return await send_next_batch(partner, client, allowed, start, give_up_s)
    finally:
        await Partner.update({Partner.webhook_lease_ms: 0}).where(Partner.id == partner_id)


async def send_next_batch(
    partner: dict[str, Any], client: httpx.AsyncClient, allowed: AllowedHosts, start: int, give_up_s: int
) -> bool:
    """Send the open batch again (the same events) or record and send the next one; returns whether
    more may be waiting."""
    partner_id = partner["id"]
    batch = await deliveries.open_batch(partner_id)
    if batch is not None:  # a retry: the same events as the first attempt
        refs = deliveries.event_refs(batch)
        events = await events_by_id(partner_id, [r.id for r in refs])
        through, more = batch["through_event_id"], True
        delivery_id, first_attempt_ms, attempts = batch["id"], batch["first_attempt_ms"], batch["attempts"]
    else:
        read = await pending_events(partner_id, partner["webhook_cursor"])
        if not read:
            return False
        events = [e for e in read if e["type"] not in INTERNAL_TYPES]
        through, more = read[-1]["id"], len(read) == BATCH
        if not events:  # nothing the partner is told about: step over, nothing sent
            await Partner.update({Partner.webhook_cursor: through}).where(Partner.id == partner_id)
            return more
        delivery_id = await deliveries.start_batch(partner_id, events, through, start)
        first_attempt_ms, attempts = start, 0
    outcome = await send_batch(partner, events, client, allowed, delivery_id)
    attempts += 1
    if outcome.error is None:
        async with Partner._meta.db.transaction():
            await deliveries.record_attempt(delivery_id, "delivered", attempts, outcome.status_code, None)
            await Partner.update(
                {
                    Partner.webhook_cursor: through,
                    Partner.webhook_attempts: 0,
                    Partner.webhook_next_ms: 0,
                    Partner.webhook_last_error: None,
                }
            ).where(
                # Forward only: a new URL set while this batch was out has moved the stream to now.
                (Partner.id == partner_id) & (Partner.webhook_cursor < through)
            )
        return more
    now = now_ms()
    give_up_at = first_attempt_ms + give_up_s * 1000
    dead = now >= give_up_at
    # The last retry falls on the give-up time itself, not up to an hour after it.
    next_ms = min(now + 1000 * min(2 ** (attempts - 1), MAX_BACKOFF_S), give_up_at)
    async with Partner._meta.db.transaction():
        await deliveries.record_attempt(
            delivery_id, "dead" if dead else "failing", attempts, outcome.status_code, outcome.error
        )
        await Partner.update(
            {
                Partner.webhook_attempts: partner["webhook_attempts"] + 1,
                Partner.webhook_next_ms: next_ms,
                Partner.webhook_last_error: outcome.error,
                Partner.webhook_dead_since: deliveries.utcnow() if dead else None,
            }
        ).where(Partner.id == partner_id)
    log.warning(
        "webhook to partner %s failed: %s (%s); attempt %s of delivery %s, %s",
        partner_id,
        outcome.error,
        outcome.detail,
        attempts,
        delivery_id,
        "given up: dead letter" if dead else f"retry in {(next_ms - now) / 1000:.1f}s",
    )
    return False


async def send_replay(
    partner: dict[str, Any], replay: dict[str, Any], client: httpx.AsyncClient, allowed: AllowedHosts
) -> None:
    """Send a replay once (fresh signature); the cursor, attempts and backoff stay as they are."""
    refs = deliveries.event_refs(replay)
    events = await events_by_id(partner["id"], [r.id for r in refs])
    outcome = await send_batch(partner, events, client, allowed, replay["id"], replay_of=replay["replay_of"])
    status: deliveries.DeliveryStatus = "delivered" if outcome.error is None else "dead"
    await deliveries.record_attempt(replay["id"], status, 1, outcome.status_code, outcome.error)


class Outcome(msgspec.Struct, frozen=True):
    """One POST: error None on 2xx; else what the partner may be told, and the detail for the log."""

    status_code: int | None = None
    error: str | None = None
    detail: str | None = None


async def send_batch(
    partner: dict[str, Any],
    events: list[dict[str, Any]],
    client: httpx.AsyncClient,
    allowed: AllowedHosts,
    delivery_id: int,
    replay_of: int | None = None,
) -> Outcome:
    """POST one signed batch to the partner's URL, checked again now."""
    body = _encoder.encode({"events": events})
    headers = {
        "content-type": "application/json",
        "user-agent": "Lanshou-Webhook/1",
        "x-lanshou-signature": sign(partner["webhook_secret"] or "", int(time.time()), body),
        "x-lanshou-delivery": f"{events[0]['id']}-{events[-1]['id']}" if events else "0-0",
        "x-lanshou-delivery-id": str(delivery_id),
    }
    if replay_of is not None:
        headers["x-lanshou-replay-of"] = str(replay_of)
    try:
        async with asyncio.timeout(DELIVERY_DEADLINE_S):
            destination = await check_destination(partner["webhook_url"], allowed)
            status = await post_to_checked_address(client, destination, body, headers)
    except (RefusedDestination, httpx.HTTPError, TimeoutError) as exc:
        detail = exc.detail if isinstance(exc, RefusedDestination) else f"{type(exc).__name__}: {exc}"
        return Outcome(None, public_error(exc), detail)
    if not 200 <= status < 300:
        return Outcome(status, f"HTTP {status}", f"HTTP {status} from {partner['webhook_url']}")
    return Outcome(status)


async def due_partners() -> list[int]:
    """Partners with a webhook, not leased, and either due for their stream or with a replay waiting."""
    start = now_ms()
    ready = (
        Partner.webhook_url.is_not_null()
        & (Partner.active == True)  # noqa: E712
        & (Partner.webhook_lease_ms < start)
    )
    rows = await Partner.select(Partner.id).where(
        ready & (Partner.webhook_next_ms <= start) & Partner.webhook_dead_since.is_null()
    )
    due = {r["id"] for r in rows}
    if waiting := await deliveries.partners_with_replays() - due:
        rows = await Partner.select(Partner.id).where(ready & Partner.id.is_in(sorted(waiting)))
        due |= {r["id"] for r in rows}
    return sorted(due)


class WebhookWorker:
    """One per process: each pass starts a task per due partner, at most `in_flight` at once, so one
    partner's slow endpoint delays no one else; the lease keeps each partner to one process at a time
    and its batches in order."""

    def __init__(
        self,
        interval_s: float = 1.0,
        allowed: tuple[str, ...] = (),
        in_flight: int = IN_FLIGHT,
        give_up_s: int = GIVE_UP_S,
    ) -> None:
        self.interval_s = interval_s
        self.give_up_s = give_up_s
        self.allowed = allowed_hosts(allowed)
        self.in_flight = in_flight
        self.tasks: dict[int, asyncio.Task[None]] = {}

    async def run(self) -> None:
        async with delivery_client() as client:
            try:
                await repeat(lambda: self.start_due(client), interval_s=self.interval_s, batch=BATCH, log=log)
            finally:
                for task in self.tasks.values():
                    task.cancel()
                await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def start_due(self, client: httpx.AsyncClient) -> int:
        """Start delivering to due partners not already in hand; returns at once (0: pause, then again)."""
        free = self.in_flight - len(self.tasks)
        if free <= 0:
            return 0
        due = [p for p in await due_partners() if p not in self.tasks]
        # Processes sharing the database then start on different partners, and when more are due than
        # there are slots, none waits behind the same others every pass.
        random.shuffle(due)
        for partner_id in due[:free]:
            task = asyncio.create_task(self.deliver(partner_id, client), name=f"lanshou-webhook-{partner_id}")
            self.tasks[partner_id] = task
            task.add_done_callback(functools.partial(self._forget, partner_id))
        return 0

    def _forget(self, partner_id: int, _task: asyncio.Task[None]) -> None:
        self.tasks.pop(partner_id, None)

    async def deliver(self, partner_id: int, client: httpx.AsyncClient) -> None:
        try:
            for _ in range(BATCHES_PER_TURN):
                if not await deliver_for(partner_id, client, self.allowed, self.give_up_s):
                    return
        except Exception:
            # Only this partner waits (its lease lapses after LEASE_MS and it is tried again).
            log.exception("webhook delivery to partner %s failed", partner_id)
