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

The signature is `X-Lanshou-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the
partner's webhook secret, so a partner can check origin and freshness.
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
from server.push.log import COURIER_SIDE_TYPES
from server.tables import Event, Partner
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
# What partners are told about (withdrawals are between Lanshou and its couriers).
INTERNAL_TYPES = {"pickup.withdrawn", *COURIER_SIDE_TYPES}
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
    newest = await Event.select(Event.id).order_by(Event.id, ascending=False).first()
    await Partner.update(
        {
            Partner.webhook_url: url,
            Partner.webhook_secret: secret,
            Partner.webhook_cursor: newest["id"] if newest else 0,
            Partner.webhook_attempts: 0,
            Partner.webhook_next_ms: 0,
            Partner.webhook_last_error: None,
        }
    ).where(Partner.id == partner_id)
    return {"url": url, "secret": secret}


async def webhook_status(partner_id: int) -> dict[str, Any]:
    row = (
        await Partner.select(
            Partner.webhook_url, Partner.webhook_cursor, Partner.webhook_attempts, Partner.webhook_last_error
        )
        .where(Partner.id == partner_id)
        .first()
    )
    assert row is not None
    return {
        "url": row["webhook_url"],
        "acknowledged_event_id": row["webhook_cursor"],
        "failed_attempts": row["webhook_attempts"],
        "last_error": row["webhook_last_error"],
    }


async def remove_webhook(partner_id: int) -> None:
    await Partner.update({Partner.webhook_url: None, Partner.webhook_secret: None}).where(
        Partner.id == partner_id
    )


async def pending_events(partner_id: int, cursor: int) -> list[dict[str, Any]]:
    query = Event.select(
        Event.id,
        Event.type,
        Event.at,
        Event.data,
        Event.pickup.id,
        Event.pickup.tracking_code,
        Event.pickup.partner_order_no,
        Event.pickup.status,
    ).where((Event.pickup.partner == partner_id) & (Event.id > cursor))
    if is_postgres(Event._meta.db):
        query = query.where(Event.at < datetime.now(UTC) - SETTLE)
    rows = await query.order_by(Event.id).limit(BATCH)
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


async def deliver_for(partner_id: int, client: httpx.AsyncClient, allowed: AllowedHosts) -> bool:
    """Lease the partner, send its next batch, move the cursor on 2xx, back off on anything else.

    Returns whether a full batch went through (more may be waiting).
    """
    start = now_ms()
    leased = (
        await Partner.update({Partner.webhook_lease_ms: start + LEASE_MS})
        .where((Partner.id == partner_id) & (Partner.webhook_lease_ms < start))
        .returning(Partner.id)
    )
    if not leased:
        return False  # another process is delivering to this partner
    partner = await Partner.select().where(Partner.id == partner_id).first()
    assert partner is not None
    events = await pending_events(partner_id, partner["webhook_cursor"])
    deliverable = [e for e in events if e["type"] not in INTERNAL_TYPES]
    if not events or not partner["webhook_url"]:
        await Partner.update({Partner.webhook_lease_ms: 0}).where(Partner.id == partner_id)
        return False
    error = detail = None
    if deliverable:
        error, detail = await send_batch(partner, deliverable, client, allowed)
    if error is None:
        await Partner.update(
            {
                Partner.webhook_cursor: events[-1]["id"],
                Partner.webhook_attempts: 0,
                Partner.webhook_next_ms: 0,
                Partner.webhook_lease_ms: 0,
                Partner.webhook_last_error: None,
            }
        ).where(Partner.id == partner_id)
        return len(events) == BATCH
    attempts = partner["webhook_attempts"] + 1
    backoff_ms = 1000 * min(2 ** (attempts - 1), MAX_BACKOFF_S)
    await Partner.update(
        {
            Partner.webhook_attempts: attempts,
            Partner.webhook_next_ms: now_ms() + backoff_ms,
            Partner.webhook_lease_ms: 0,
            Partner.webhook_last_error: error,
        }
    ).where(Partner.id == partner_id)
    log.warning(
        "webhook to partner %s failed: %s (%s); attempt %s, retry in %ss",
        partner_id,
        error,
        detail,
        attempts,
        backoff_ms // 1000,
    )
    return False


async def send_batch(
    partner: dict[str, Any], events: list[dict[str, Any]], client: httpx.AsyncClient, allowed: AllowedHosts
) -> tuple[str | None, str | None]:
    """POST one signed batch to the partner's URL, checked again now. Returns (None, None) on 2xx, or
    what the partner may be told and the detail for the log."""
    body = _encoder.encode({"events": events})
    headers = {
        "content-type": "application/json",
        "user-agent": "Lanshou-Webhook/1",
        "x-lanshou-signature": sign(partner["webhook_secret"] or "", int(time.time()), body),
        "x-lanshou-delivery": f"{events[0]['id']}-{events[-1]['id']}",
    }
    try:
        async with asyncio.timeout(DELIVERY_DEADLINE_S):
            destination = await check_destination(partner["webhook_url"], allowed)
            status = await post_to_checked_address(client, destination, body, headers)
    except (RefusedDestination, httpx.HTTPError, TimeoutError) as exc:
        detail = exc.detail if isinstance(exc, RefusedDestination) else f"{type(exc).__name__}: {exc}"
        return public_error(exc), detail
    if not 200 <= status < 300:
        return f"HTTP {status}", f"HTTP {status} from {partner['webhook_url']}"
    return None, None


async def due_partners() -> list[int]:
    start = now_ms()
    rows = await Partner.select(Partner.id).where(
        Partner.webhook_url.is_not_null()
        & (Partner.active == True)  # noqa: E712
        & (Partner.webhook_next_ms <= start)
        & (Partner.webhook_lease_ms < start)
    )
    return [r["id"] for r in rows]


class WebhookWorker:
    """One per process: each pass starts a task per due partner, at most `in_flight` at once, so one
    partner's slow endpoint delays no one else; the lease keeps each partner to one process at a time
    and its batches in order."""

    def __init__(
        self, interval_s: float = 1.0, allowed: tuple[str, ...] = (), in_flight: int = IN_FLIGHT
    ) -> None:
        self.interval_s = interval_s
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
                if not await deliver_for(partner_id, client, self.allowed):
                    return
        except Exception:
            # Only this partner waits (its lease lapses after LEASE_MS and it is tried again).
            log.exception("webhook delivery to partner %s failed", partner_id)
