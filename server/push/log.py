"""The one place that writes events: every state change records its event here, in the caller's
transaction, and the push messages go out only after that transaction commits, in id order.

Nothing is lost if the process dies between commit and publish: the event is in the log, and a client
reconnecting with Last-Event-ID receives it from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec

from server.db.script import TURN, Script, Sql, T, insert_steps, run_script
from server.tables import Event, EventRecipient, Pickup


class Actor(msgspec.Struct, frozen=True):
    kind: str  # partner | courier | dispatcher | admin | system | customer
    id: int | None = None


SYSTEM = Actor("system")

# Between Lanshou and its couriers: never in a partner's history or webhooks (who declined and why,
# when the offer was on a screen, the gateway alerts to the courier's phone, the arrival at the door).
COURIER_SIDE_TYPES = frozenset(
    {"pickup.declined", "pickup.offer_seen", "pickup.alert_sent", "pickup.arrived"}
)
# Between Lanshou's staff: a dispatcher's note on a pickup (the console's drawer). Never in a partner's
# history or webhooks, nor on the customer's tracking page (its allowlist leaves it out).
STAFF_ONLY_TYPES = frozenset({"pickup.noted"})


class PushMessage(msgspec.Struct, frozen=True):
    """One event as it travels between processes and down SSE streams."""

    id: int
    type: str
    at: str
    pickup_id: int | None
    data: dict[str, Any]
    to: list[int] = []  # courier ids it is addressed to
    # The pickup's zone when the event was written: which dispatchers' consoles may see it.
    zone: int | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


# A transaction-level advisory lock taken just before a transaction writes its events (PostgreSQL only).
EVENT_LOG_LOCK = 0x4C53_4556  # "LSEV"
_EVENTS_PER_INSERT = 300
_encoder = msgspec.json.Encoder()
_publish_order: tuple[Any, asyncio.Lock] | None = None


def _publish_order_lock() -> asyncio.Lock:
    """This process's lock from writing events to publishing them (one per event loop)."""
    global _publish_order
    loop = asyncio.get_running_loop()
    if _publish_order is None or _publish_order[0] is not loop:
        _publish_order = (loop, asyncio.Lock())
    return _publish_order[1]


class _Pending(msgspec.Struct):
    row: dict[str, Any]  # the events row's columns (written by insert_rows, no Table instance each)
    type: str
    at: datetime
    pickup_id: int | None
    data: dict[str, Any]
    to: list[int]


class UnitOfWork:
    """Collects a transaction's events, writes them as its last step, and publishes them once it has
    committed.

    Why last, and under a lock: SSE resume (Last-Event-ID) and every other reader of the log ask for the
    events "after id N", which is only sound if no event with a smaller id can appear later. On SQLite
    write transactions run one at a time, so that holds. On PostgreSQL ids come from a sequence and
    transactions commit in any order: a courier could receive event 11, drop, and resume after 11 just
    before event 10 commits, and never see 10. So the events are inserted after all the transaction's
    other work, under a transaction-level advisory lock held until commit: ids are handed out in commit
    order. While it holds the lock a transaction only inserts events and commits, so it waits on no
    lock that a transaction queued behind it could hold: no deadlock. Within the process an asyncio
    lock is held from there until the messages are handed to the publisher, so they also go out in
    commit order (a live stream that delivered 11 before 10 would make the client resume after 11).
    """

    def __init__(self) -> None:
        self.messages: list[PushMessage] = []
        self._pending: list[_Pending] = []
        self._ordering: asyncio.Lock | None = None
        # Pickups' zones this transaction set itself (a create, an offer): no need to read them back.
        self._zones: dict[int, int | None] = {}

    def note_zone(self, pickup_id: int, zone_id: int | None) -> None:
        """The zone this transaction just gave the pickup (saves write() reading it back)."""
        self._zones[pickup_id] = zone_id

    def add(
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
    ) -> None:
        """Record an event in this transaction: written with it, published once it commits. Nothing is
        awaited, so scripts (server/db/script.py) call it as well as coroutines."""
        at = at or utcnow()
        payload = data or {}
        row = {
            "pickup": pickup_id,
            "type": type,
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "at": at,
            "data": _encoder.encode(payload).decode(),
            "client_action_id": client_action_id,
            "client_at": client_at,
        }
        self._pending.append(_Pending(row, type, at, pickup_id, payload, sorted(set(to))))

    async def write(self) -> None:
        """Insert the recorded events inside the caller's transaction, as its last step (one hop)."""
        if self._pending:
            await run_script(Event._meta.db, self.write_steps(), on_turn=self.take_turn)

    async def take_turn(self) -> None:
        """Take the process's publish-order lock (held until release(), after publishing)."""
        if self._ordering is None:
            ordering = _publish_order_lock()
            await ordering.acquire()
            self._ordering = ordering

    def write_steps(self) -> Script[None]:
        """The statements of write(), as a script's last steps (yields TURN before taking ids)."""
        if not self._pending:
            return
        # One read for every pickup the events name: their zones say which consoles see each live
        # message (replays read the same through a join).
        named = sorted({p.pickup_id for p in self._pending if p.pickup_id is not None} - self._zones.keys())
        zones = dict(self._zones)
        for i in range(0, len(named), _EVENTS_PER_INSERT):
            part = named[i : i + _EVENTS_PER_INSERT]
            rows = yield _zones_sql(len(part)), tuple(part)
            zones.update({r["id"]: r["zone"] for r in rows})
        yield TURN
        if Event._meta.db.engine_type in ("postgres", "cockroach"):
            yield _ADVISORY_LOCK, (EVENT_LOG_LOCK,)
        # One INSERT per few hundred events (a batch create records hundreds). Ids are handed out in
        # the order of the VALUES on both engines, and under the lock above nothing else takes ids
        # between, so the returned ids, sorted, are the events' in the order recorded.
        event_ids: list[int] = []
        for i in range(0, len(self._pending), _EVENTS_PER_INSERT):
            chunk = self._pending[i : i + _EVENTS_PER_INSERT]
            rows = yield from insert_steps("events", [p.row for p in chunk], returning=("id",))
            event_ids.extend(sorted(r["id"] for r in rows))
        links = [
            {"event": event_id, "courier": c}
            for p, event_id in zip(self._pending, event_ids, strict=True)
            for c in p.to
        ]
        yield from insert_steps("event_recipients", links)
        for p, event_id in zip(self._pending, event_ids, strict=True):
            self.messages.append(
                PushMessage(
                    id=event_id,
                    type=p.type,
                    at=p.at.isoformat(),
                    pickup_id=p.pickup_id,
                    data=p.data,
                    to=p.to,
                    zone=zones.get(p.pickup_id) if p.pickup_id is not None else None,
                )
            )
        self._pending.clear()

    def release(self) -> None:
        if self._ordering is not None:
            self._ordering.release()
            self._ordering = None


_ADVISORY_LOCK = Sql("SELECT pg_advisory_xact_lock({})")


@lru_cache(maxsize=64)
def _zones_sql(n: int) -> Sql:
    return Sql("SELECT id, zone FROM pickups WHERE id IN (" + ", ".join(["{}"] * n) + ")")


# Set by the running app; the CLI (demo seeding, migrations) runs without one and pushes nothing.
_publisher: Any = None


def set_publisher(publisher: Any) -> None:
    global _publisher
    _publisher = publisher


def publish(messages: Sequence[PushMessage]) -> None:
    if _publisher is not None and messages:
        _publisher.publish(messages)


async def run_unit(steps: Callable[[UnitOfWork], Script[T]]) -> T:
    """A write transaction made of one script (server/db/script.py: one hop to SQLite), its recorded
    events written as its last steps and pushed after it commits: unit_of_work for the hot paths."""
    uow = UnitOfWork()

    def script() -> Script[T]:
        result = yield from steps(uow)
        yield from uow.write_steps()
        return result

    try:
        return await run_script(
            Pickup._meta.db, script(), on_turn=uow.take_turn, on_commit=lambda: publish(uow.messages)
        )
    finally:
        uow.release()


@asynccontextmanager
async def unit_of_work() -> AsyncIterator[UnitOfWork]:
    """A write transaction whose recorded events are pushed after it commits (never if it rolls back)."""
    uow = UnitOfWork()
    try:
        async with Pickup._meta.db.transaction():
            yield uow
            await uow.write()
        publish(uow.messages)
    finally:
        uow.release()


# How many events one read of the log returns; a replay reads page after page until it is short.
REPLAY_PAGE = 500


def decode_event_row(row: dict[str, Any], to: list[int] | None = None) -> PushMessage:
    at = row["at"]
    return PushMessage(
        id=row["id"],
        type=row["type"],
        at=at.isoformat() if isinstance(at, datetime) else str(at),
        pickup_id=row["pickup"],
        data=msgspec.json.decode(row["data"]) if row["data"] else {},
        to=to or [],
        zone=row.get("pickup_zone"),
    )


def events_with_zone() -> Any:
    """SELECT of whole events with their pickup's zone (LEFT JOIN: events without a pickup have none)."""
    return Event.select(*Event.all_columns(), Event.pickup.zone.as_alias("pickup_zone"))


async def courier_events_since(courier_id: int, after_id: int, limit: int = REPLAY_PAGE) -> list[PushMessage]:
    """One page of what was pushed to this courier after `after_id`, oldest first: the SSE resume."""
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


async def all_events_since(
    after_id: int, limit: int = REPLAY_PAGE, zone_filter: Callable[[Any], Any] | None = None
) -> list[PushMessage]:
    """One page of the log after `after_id`, oldest first; `zone_filter` makes the WHERE clause that
    limits it by the pickup's zone (Scope.pickup_filter), None for the whole log."""
    query = events_with_zone().where(Event.id > after_id)
    where = zone_filter(Event.pickup.zone) if zone_filter is not None else None
    if where is not None:
        query = query.where(where)
    rows = await query.order_by(Event.id).limit(limit)
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
