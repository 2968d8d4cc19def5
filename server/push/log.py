"""The one place that writes events: every state change records its event here, in the caller's
transaction, and the push messages go out only after that transaction commits.

Nothing is lost if the process dies between commit and publish: the event is in the log, and a client
reconnecting with Last-Event-ID receives it from there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec

from server.tables import Event, EventRecipient, Pickup


class Actor(msgspec.Struct, frozen=True):
    kind: str  # partner | courier | dispatcher | admin | system | customer
    id: int | None = None


SYSTEM = Actor("system")


class PushMessage(msgspec.Struct, frozen=True):
    """One event as it travels between processes and down SSE streams."""

    id: int
    type: str
    at: str
    pickup_id: int | None
    data: dict[str, Any]
    to: list[int] = []  # courier ids it is addressed to; the dispatcher console sees every event


def utcnow() -> datetime:
    return datetime.now(UTC)


class UnitOfWork:
    """Collects what a transaction wants to push, to publish once it has committed."""

    def __init__(self) -> None:
        self.messages: list[PushMessage] = []

    async def record(
        self,
        type: str,
        *,
        actor: Actor,
        pickup_id: int | None = None,
        data: dict[str, Any] | None = None,
        to: Iterable[int] = (),
        at: datetime | None = None,
        client_action_id: str | None = None,
        client_at: datetime | None = None,
    ) -> PushMessage:
        at = at or utcnow()
        payload = data or {}
        recipients = sorted(set(to))
        rows = await Event.insert(
            Event(
                pickup=pickup_id,
                type=type,
                actor_kind=actor.kind,
                actor_id=actor.id,
                at=at,
                data=msgspec.json.encode(payload).decode(),
                client_action_id=client_action_id,
                client_at=client_at,
            )
        ).returning(Event.id)
        event_id = rows[0]["id"]
        if recipients:
            await EventRecipient.insert(*(EventRecipient(event=event_id, courier=c) for c in recipients))
        message = PushMessage(
            id=event_id, type=type, at=at.isoformat(), pickup_id=pickup_id, data=payload, to=recipients
        )
        self.messages.append(message)
        return message


# Set by the running app; the CLI (demo seeding, migrations) runs without one and pushes nothing.
_publisher: Any = None


def set_publisher(publisher: Any) -> None:
    global _publisher
    _publisher = publisher


def publish(messages: Sequence[PushMessage]) -> None:
    if _publisher is not None and messages:
        _publisher.publish(messages)


@asynccontextmanager
async def unit_of_work() -> AsyncIterator[UnitOfWork]:
    """A write transaction whose recorded events are pushed after it commits (never if it rolls back)."""
    uow = UnitOfWork()
    async with Pickup._meta.db.transaction():
        yield uow
    publish(uow.messages)


def decode_event_row(row: dict[str, Any], to: list[int] | None = None) -> PushMessage:
    at = row["at"]
    return PushMessage(
        id=row["id"],
        type=row["type"],
        at=at.isoformat() if isinstance(at, datetime) else str(at),
        pickup_id=row["pickup"],
        data=msgspec.json.decode(row["data"]) if row["data"] else {},
        to=to or [],
    )


async def courier_events_since(courier_id: int, after_id: int, limit: int = 500) -> list[PushMessage]:
    """What was pushed to this courier after `after_id`: the SSE resume."""
    links = (
        await EventRecipient.select(EventRecipient.event)
        .where((EventRecipient.courier == courier_id) & (EventRecipient.event > after_id))
        .order_by(EventRecipient.event)
        .limit(limit)
    )
    ids = [link["event"] for link in links]
    if not ids:
        return []
    rows = await Event.select().where(Event.id.is_in(ids)).order_by(Event.id)
    return [decode_event_row(r, [courier_id]) for r in rows]


async def all_events_since(after_id: int, limit: int = 500) -> list[PushMessage]:
    rows = await Event.select().where(Event.id > after_id).order_by(Event.id).limit(limit)
    return [decode_event_row(r) for r in rows]


async def latest_event_id(courier_id: int | None = None) -> int:
    if courier_id is None:
        row = await Event.select(Event.id).order_by(Event.id, ascending=False).first()
        return row["id"] if row else 0
    row = (
        await EventRecipient.select(EventRecipient.event)
        .where(EventRecipient.courier == courier_id)
        .order_by(EventRecipient.event, ascending=False)
        .first()
    )
    return row["event"] if row else 0
