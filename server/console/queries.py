"""Read-only queries behind the dispatcher's console: a board row, the list of couriers, stations.

Nothing here writes. The board itself (search, filters, paging, counts) is in board.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from piccolo.query.functions.aggregate import Max

from server.dispatch.offers import open_load
from server.dispatch.scope import EVERYTHING, Scope
from server.domain.pickup_states import HELD_STATES
from server.pages import DEFAULT_TIMEZONE
from server.tables import Courier, CourierZone, Event, Pickup, Station, Zone

# escalation_stage 3: the rules gave up on the couriers and handed the pickup to the dispatcher.
ESCALATED_TO_DISPATCHER = 3
SECTIONS = ("queue", "offered", "held", "failed", "closed")
CLOSED_STATES = ("collected", "failed", "cancelled")


class PickupRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    tracking_code: str
    status: str
    section: str
    zone_code: str | None
    zone_name: str | None
    district: str
    street: str
    courier_id: int | None
    courier_name: str | None
    due_at: datetime | None
    timezone: str
    sla_state: str
    chase_count: int
    escalation_stage: int
    failure_reason: str | None
    assigned_by_dispatcher: bool  # held, handed over by a dispatcher, not (yet) accepted by the courier
    created_at: datetime
    updated_at: datetime

    @property
    def escalated(self) -> bool:
        return self.escalation_stage >= ESCALATED_TO_DISPATCHER

    @property
    def sort_key(self) -> str:
        """Ascending order inside the row's section (console.js inserts live rows by it)."""
        if self.section in ("failed", "closed"):
            # Newest first: invert the timestamp so that ascending string order is newest first.
            return f"{10**13 - int(self.updated_at.timestamp() * 1000):013d}|{self.id:012d}"
        due = self.due_at.isoformat() if self.due_at else "9999"
        return f"{due}|{self.created_at.isoformat()}|{self.id:012d}"


class CourierRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    username: str
    on_duty: bool
    capacity: int
    open_count: int
    last_seen_at: datetime | None
    last_accept_at: datetime | None


class ZoneRef(msgspec.Struct, frozen=True):
    id: int
    code: str
    name: str


def section_of(status: str, escalation_stage: int) -> str:
    if status == "pending" or (status == "offered" and escalation_stage >= ESCALATED_TO_DISPATCHER):
        return "queue"
    if status == "offered":
        return "offered"
    if status in HELD_STATES:
        return "held"
    if status == "failed":
        return "failed"  # waiting for re-dispatch: a queue of its own, not among the closed
    return "closed"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


ROW_COLUMNS = (
    Pickup.id,
    Pickup.tracking_code,
    Pickup.status,
    Pickup.district,
    Pickup.street,
    Pickup.courier,
    Pickup.due_at,
    Pickup.sla_state,
    Pickup.chase_count,
    Pickup.escalation_stage,
    Pickup.failure_reason,
    Pickup.assigned_by_dispatcher,
    Pickup.zone,
    Pickup.created_at,
    Pickup.updated_at,
    Pickup.zone._.code.as_alias("zone_code"),
    Pickup.zone._.name.as_alias("zone_name"),
    Pickup.zone._.station._.timezone.as_alias("timezone"),
    Pickup.courier._.user._.display_name.as_alias("courier_name"),
)


def to_row(r: dict[str, Any]) -> PickupRow:
    created = _utc(r["created_at"])
    updated = _utc(r["updated_at"])
    assert created is not None and updated is not None
    return PickupRow(
        id=r["id"],
        tracking_code=r["tracking_code"],
        status=r["status"],
        section=section_of(r["status"], r["escalation_stage"]),
        zone_code=r["zone_code"],
        zone_name=r["zone_name"],
        district=r["district"],
        street=r["street"] or "",
        courier_id=r["courier"],
        courier_name=r["courier_name"],
        due_at=_utc(r["due_at"]),
        timezone=r["timezone"] or DEFAULT_TIMEZONE,
        sla_state=r["sla_state"],
        chase_count=r["chase_count"],
        escalation_stage=r["escalation_stage"],
        failure_reason=r["failure_reason"],
        assigned_by_dispatcher=bool(r["assigned_by_dispatcher"]) and r["status"] in HELD_STATES,
        created_at=created,
        updated_at=updated,
    )


async def zone_by_code(code: str) -> ZoneRef | None:
    row = await Zone.select(Zone.id, Zone.code, Zone.name).where(Zone.code == code).first()
    return ZoneRef(row["id"], row["code"], row["name"]) if row else None


async def pickup_row(pickup_id: int, scope: Scope = EVERYTHING) -> PickupRow | None:
    row = await Pickup.select(*ROW_COLUMNS).where(Pickup.id == pickup_id).first()
    return to_row(row) if row and scope.covers_zone(row["zone"]) else None


async def couriers(zone: ZoneRef | None = None, scope: Scope = EVERYTHING) -> list[CourierRow]:
    """Active couriers (of one zone, primary or backup, when given): on duty first, then by name."""
    query = Courier.select(
        Courier.id,
        Courier.on_duty,
        Courier.capacity,
        Courier.last_seen_at,
        Courier.user._.display_name.as_alias("name"),
        Courier.user._.username.as_alias("username"),
    ).where(Courier.user._.active == True)  # noqa: E712
    if zone is not None:
        members = await CourierZone.select(CourierZone.courier).where(CourierZone.zone == zone.id)
        ids = sorted({m["courier"] for m in members})
        if not ids:
            return []
        query = query.where(Courier.id.is_in(ids))
    if scope.station_ids is not None and scope.zone_ids is not None:
        members = await CourierZone.select(CourierZone.courier).where(
            CourierZone.zone.is_in(sorted(scope.zone_ids) or [-1])
        )
        stationed = await Courier.select(Courier.id).where(
            Courier.user.station.is_in(sorted(scope.station_ids))
        )
        ids = sorted({m["courier"] for m in members} | {c["id"] for c in stationed})
        query = query.where(Courier.id.is_in(ids or [-1]))
    rows = await query
    ids = [r["id"] for r in rows]
    load = await open_load(ids)
    accepts = await last_accepts(ids)
    out = [
        CourierRow(
            id=r["id"],
            name=r["name"],
            username=r["username"],
            on_duty=bool(r["on_duty"]),
            capacity=r["capacity"],
            open_count=load.get(r["id"], 0),
            last_seen_at=_utc(r["last_seen_at"]),
            last_accept_at=accepts.get(r["id"]),
        )
        for r in rows
    ]
    out.sort(key=lambda c: (not c.on_duty, c.name, c.id))
    return out


async def courier_name(courier_id: int) -> str:
    row = (
        await Courier.select(Courier.user._.display_name.as_alias("name"))
        .where(Courier.id == courier_id)
        .first()
    )
    return row["name"] if row else str(courier_id)


async def last_accepts(courier_ids: list[int]) -> dict[int, datetime]:
    """Each courier's latest pickup.accepted event (index events_actor_type)."""
    if not courier_ids:
        return {}
    rows = (
        await Event.select(Event.actor_id, Max(Event.at, alias="last"))
        .where(
            (Event.type == "pickup.accepted")
            & (Event.actor_kind == "courier")
            & Event.actor_id.is_in(courier_ids)
        )
        .group_by(Event.actor_id)
    )
    out: dict[int, datetime] = {}
    for r in rows:
        last = r["last"]
        if isinstance(last, str):  # SQLite returns MAX() of a timestamp as text
            last = datetime.fromisoformat(last)
        if last is not None:
            out[r["actor_id"]] = _utc(last)  # type: ignore[assignment]
    return out


async def stations() -> list[dict[str, Any]]:
    """Stations (leaves of the tree) for the zone import's default-station choice."""
    return list(
        await Station.select(Station.code, Station.name)
        .where(Station.level == "station")
        .order_by(Station.code)
    )
