"""The record of webhook deliveries: what a partner reads to audit its webhook, replays, and re-arms.

One row per batch (webhook_deliveries): the events it carried, every attempt's count, answer and plain-
words error, and how it ended. The row is the audit record of each state change that matters: a batch
sent, retried, delivered or given up (`dead_at`), a replay asked for (a new row, `replay_of` the one it
repeats, `created_at` when it was asked) and a re-arm after a dead letter (`rearmed_at` on the dead one).
Why not events in the log: the log is the webhooks' outbox and every console's feed; facts about the
delivery of the log would feed back into it (and show up on dispatchers' screens), while this table is
read only here and by the partner, per partner, newest first.

A replay never touches the partner's cursor, attempts or backoff (service.py sends it between batches,
under the same lease, so the stream's order is kept); it is tried once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from server.errors import ApiError, not_found
from server.tables import Partner, WebhookDelivery

DeliveryStatus = Literal["pending", "failing", "delivered", "dead"]
OPEN = ("pending", "failing")


class DeliveredEvent(msgspec.Struct):
    id: int
    type: str


class DeliveryOut(msgspec.Struct):
    """One delivery as its partner sees it (`events` only when one delivery is read)."""

    id: int
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    event_count: int
    first_event_id: int
    last_event_id: int
    replay_of: int | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    dead_at: datetime | None
    rearmed_at: datetime | None
    events: list[DeliveredEvent] | None = None


class DeliveryPage(msgspec.Struct):
    items: list[DeliveryOut]
    next_cursor: str | None


def utcnow() -> datetime:
    return datetime.now(UTC)


def event_refs(row: dict[str, Any]) -> list[DeliveredEvent]:
    return msgspec.json.decode(row["events"], type=list[DeliveredEvent])


def delivery_out(row: dict[str, Any], with_events: bool = False) -> DeliveryOut:
    refs = event_refs(row)
    return DeliveryOut(
        id=row["id"],
        status=row["status"],
        attempts=row["attempts"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        event_count=len(refs),
        first_event_id=refs[0].id if refs else 0,
        last_event_id=refs[-1].id if refs else 0,
        replay_of=row["replay_of"],
        created_at=row["created_at"],
        last_attempt_at=row["last_attempt_at"],
        delivered_at=row["delivered_at"],
        dead_at=row["dead_at"],
        rearmed_at=row["rearmed_at"],
        events=refs if with_events else None,
    )


# -- what the worker writes (service.py) ---------------------------------------------------------------


async def open_batch(partner_id: int) -> dict[str, Any] | None:
    """The partner's batch still being tried (pending or failing), if any; replays are not batches."""
    return (
        await WebhookDelivery.select()
        .where(
            (WebhookDelivery.partner == partner_id)
            & WebhookDelivery.status.is_in(list(OPEN))
            & WebhookDelivery.replay_of.is_null()
        )
        .order_by(WebhookDelivery.id)
        .first()
    )


async def next_replay(partner_id: int) -> dict[str, Any] | None:
    """The partner's oldest replay not yet sent."""
    return (
        await WebhookDelivery.select()
        .where(
            (WebhookDelivery.partner == partner_id)
            & (WebhookDelivery.status == "pending")
            & WebhookDelivery.replay_of.is_not_null()
        )
        .order_by(WebhookDelivery.id)
        .first()
    )


async def partners_with_replays() -> set[int]:
    rows = await WebhookDelivery.select(WebhookDelivery.partner).where(
        (WebhookDelivery.status == "pending") & WebhookDelivery.replay_of.is_not_null()
    )
    return {r["partner"] for r in rows}


async def start_batch(
    partner_id: int, events: list[dict[str, Any]], through_event_id: int, at_ms: int
) -> int:
    """Record a new batch (pending) just before its first attempt; returns its id."""
    refs = [DeliveredEvent(e["id"], e["type"]) for e in events]
    rows = await WebhookDelivery.insert(
        WebhookDelivery(
            partner=partner_id,
            status="pending",
            events=msgspec.json.encode(refs).decode(),
            through_event_id=through_event_id,
            first_attempt_ms=at_ms,
            created_at=utcnow(),
        )
    ).returning(WebhookDelivery.id)
    return int(rows[0]["id"])


async def record_attempt(
    delivery_id: int, status: DeliveryStatus, attempts: int, status_code: int | None, error: str | None
) -> None:
    """One attempt's outcome (call inside the transaction that moves the partner, where there is one)."""
    now = utcnow()
    changes: dict[Any, Any] = {
        WebhookDelivery.status: status,
        WebhookDelivery.attempts: attempts,
        WebhookDelivery.last_status_code: status_code,
        WebhookDelivery.last_error: error,
        WebhookDelivery.last_attempt_at: now,
    }
    if status == "delivered":
        changes[WebhookDelivery.delivered_at] = now
    elif status == "dead":
        changes[WebhookDelivery.dead_at] = now
    await WebhookDelivery.update(changes).where(WebhookDelivery.id == delivery_id)


async def abandon_open_batches(partner_id: int, reason: str) -> None:
    """Close the batch being tried when the stream restarts elsewhere (a new URL starts from now)."""
    await WebhookDelivery.update(
        {
            WebhookDelivery.status: "dead",
            WebhookDelivery.dead_at: utcnow(),
            WebhookDelivery.last_error: reason,
        }
    ).where(
        (WebhookDelivery.partner == partner_id)
        & WebhookDelivery.status.is_in(list(OPEN))
        & WebhookDelivery.replay_of.is_null()
    )


# -- what the partner asks (controller.py) -------------------------------------------------------------


async def list_deliveries(partner_id: int, *, limit: int, cursor: str | None) -> DeliveryPage:
    """The partner's deliveries, newest first, a page at a time (cursors as the pickup list's)."""
    # Imported here: pickups → dispatch → alerts → webhooks.service → here would be a cycle at import.
    from server.pickups.service import decode_cursor, encode_cursor

    query = WebhookDelivery.select().where(WebhookDelivery.partner == partner_id)
    if cursor:
        query = query.where(WebhookDelivery.id < decode_cursor(cursor))
    rows = await query.order_by(WebhookDelivery.id, ascending=False).limit(limit + 1)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["id"]) if len(rows) > limit else None
    return DeliveryPage(items=[delivery_out(r) for r in page], next_cursor=next_cursor)


async def _own_delivery(partner_id: int, delivery_id: int) -> dict[str, Any]:
    row = await WebhookDelivery.select().where(WebhookDelivery.id == delivery_id).first()
    # Another partner's delivery is "not found", exactly like one that does not exist.
    if row is None or row["partner"] != partner_id:
        raise not_found("delivery")
    return row


async def read_delivery(partner_id: int, delivery_id: int) -> DeliveryOut:
    """One of the partner's deliveries with the events it carried."""
    return delivery_out(await _own_delivery(partner_id, delivery_id), with_events=True)


async def request_replay(partner_id: int, delivery_id: int) -> DeliveryOut:
    """Queue the same events as `delivery_id` to be sent again (fresh signature) as a new delivery.

    409 `delivery_in_progress` while the original is still being tried: its retries send it anyway,
    and a copy sent beside them would reach the partner out of order.
    """
    original = await _own_delivery(partner_id, delivery_id)
    if original["status"] in OPEN:
        raise ApiError(
            409,
            "delivery_in_progress",
            "this delivery is still being tried; replay it once it is delivered or dead",
            current_status=original["status"],
        )
    rows = await WebhookDelivery.insert(
        WebhookDelivery(
            partner=partner_id,
            status="pending",
            events=original["events"],
            through_event_id=original["through_event_id"],
            replay_of=delivery_id,
            created_at=utcnow(),
        )
    ).returning(WebhookDelivery.id)
    return await read_delivery(partner_id, int(rows[0]["id"]))


async def rearm(partner_id: int) -> None:
    """Leave the dead-letter state: delivery resumes from the cursor (the batch that was given up comes
    again, as a new delivery). 409 `webhook_not_dead` when the webhook is not dead."""
    async with Partner._meta.db.transaction():
        dead = (
            await Partner.update(
                {
                    Partner.webhook_dead_since: None,
                    Partner.webhook_attempts: 0,
                    Partner.webhook_next_ms: 0,
                    Partner.webhook_last_error: None,
                }
            )
            .where((Partner.id == partner_id) & Partner.webhook_dead_since.is_not_null())
            .returning(Partner.id)
        )
        if not dead:
            raise ApiError(409, "webhook_not_dead", "the webhook is not in the dead-letter state")
        last_dead = (
            await WebhookDelivery.select(WebhookDelivery.id)
            .where(
                (WebhookDelivery.partner == partner_id)
                & (WebhookDelivery.status == "dead")
                & WebhookDelivery.replay_of.is_null()
            )
            .order_by(WebhookDelivery.id, ascending=False)
            .first()
        )
        if last_dead is not None:
            await WebhookDelivery.update({WebhookDelivery.rearmed_at: utcnow()}).where(
                WebhookDelivery.id == last_dead["id"]
            )
