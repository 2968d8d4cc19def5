"""Partner webhooks: every event of a partner's pickups, POSTed in order, signed, at least once.

There is no separate outbox table: the event log is the outbox. Each partner has a cursor (the last
event id it acknowledged with a 2xx); a worker in every server process leases one partner at a time,
sends the next events after the cursor, and moves the cursor only on success. A failure backs off
exponentially (up to an hour) and keeps the order: nothing later is sent before the failed batch.

The signature is `X-Lanshou-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the
partner's webhook secret, so a partner can check origin and freshness.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from server.db.engine import is_postgres
from server.errors import ApiError
from server.periodic import repeat
from server.tables import Event, Partner

log = logging.getLogger("lanshou.webhooks")

BATCH = 50
LEASE_MS = 30_000
MAX_BACKOFF_S = 3600
# On PostgreSQL ids come from a sequence and transactions commit out of id order: wait this long
# before reading past an event, so a slower transaction's smaller id is not jumped over.
SETTLE = timedelta(seconds=1)
# What partners are told about (withdrawals are between Lanshou and its couriers).
INTERNAL_TYPES = {"pickup.withdrawn"}
INTERNAL_KEYS = {"couriers", "pickup", "to"}
_encoder = msgspec.json.Encoder()


def now_ms() -> int:
    return int(time.time() * 1000)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(422, "bad_webhook_url", "the webhook URL must be http(s)://host/…", field="url")
    return url.strip()


async def set_webhook(partner_id: int, url: str) -> dict[str, Any]:
    """Point the partner's webhook at `url` with a new secret; delivery starts from now."""
    url = check_url(url)
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


async def deliver_for(partner_id: int, client: httpx.AsyncClient) -> int:
    """Lease the partner, send its next batch, move the cursor on 2xx. Returns events delivered."""
    start = now_ms()
    leased = (
        await Partner.update({Partner.webhook_lease_ms: start + LEASE_MS})
        .where((Partner.id == partner_id) & (Partner.webhook_lease_ms < start))
        .returning(Partner.id)
    )
    if not leased:
        return 0  # another process is delivering to this partner
    partner = await Partner.select().where(Partner.id == partner_id).first()
    assert partner is not None
    events = await pending_events(partner_id, partner["webhook_cursor"])
    deliverable = [e for e in events if e["type"] not in INTERNAL_TYPES]
    if not events or not partner["webhook_url"]:
        await Partner.update({Partner.webhook_lease_ms: 0}).where(Partner.id == partner_id)
        return 0
    last_id = events[-1]["id"]
    error = None
    if deliverable:
        body = _encoder.encode({"events": deliverable})
        timestamp = int(time.time())
        try:
            response = await client.post(
                partner["webhook_url"],
                content=body,
                headers={
                    "content-type": "application/json",
                    "user-agent": "Lanshou-Webhook/1",
                    "x-lanshou-signature": sign(partner["webhook_secret"] or "", timestamp, body),
                    "x-lanshou-delivery": f"{deliverable[0]['id']}-{deliverable[-1]['id']}",
                },
            )
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    if error is None:
        await Partner.update(
            {
                Partner.webhook_cursor: last_id,
                Partner.webhook_attempts: 0,
                Partner.webhook_next_ms: 0,
                Partner.webhook_lease_ms: 0,
                Partner.webhook_last_error: None,
            }
        ).where(Partner.id == partner_id)
        return len(deliverable)
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
        "webhook to partner %s failed (%s); attempt %s, retry in %ss",
        partner_id,
        error,
        attempts,
        backoff_ms // 1000,
    )
    return 0


async def deliver_due(client: httpx.AsyncClient) -> int:
    start = now_ms()
    partners = await Partner.select(Partner.id).where(
        Partner.webhook_url.is_not_null()
        & (Partner.active == True)  # noqa: E712
        & (Partner.webhook_next_ms <= start)
        & (Partner.webhook_lease_ms < start)
    )
    delivered = 0
    for p in partners:
        delivered += await deliver_for(p["id"], client)
    return delivered


class WebhookWorker:
    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            await repeat(lambda: deliver_due(client), interval_s=self.interval_s, batch=BATCH, log=log)
