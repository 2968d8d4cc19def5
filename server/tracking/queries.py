"""What the customer's tracking page reads: one pickup by its tracking code, as the customer may see it.

The page is public (the code is its only key), so this is the one place that decides what of a pickup
leaves Lanshou through it: the status and its timeline from the customer-visible events, the slot and
the time limit, the address with its house numbers masked, the courier's family name and masked phone,
the waybill number once collected, why a pickup failed and the new time asked for. Nothing courier-side
(declines, offers seen, alerts, arrivals) nor internal (escalations, withdrawn offers, ids, zones).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from server.domain.contact import looks_like_tracking_code, mask_detail, mask_phone
from server.domain.pickup_states import FINAL_STATES, OPEN_STATES, Status
from server.pages import DEFAULT_TIMEZONE
from server.push.log import COURIER_SIDE_TYPES, PushMessage, decode_event_row, utcnow
from server.tables import Courier, Event, Pickup

CHASE_EVERY = timedelta(minutes=10)  # the "at most once per 10 minutes" (actions enforces it)

# The events a customer is shown, on the page's timeline and down its stream. An allowlist: a type
# added later stays private until someone decides the customer should see it.
CUSTOMER_TYPES = frozenset(
    {
        "pickup.created",
        "pickup.offered",
        "pickup.accepted",
        "pickup.assigned",
        "pickup.reassigned",
        "pickup.unassigned",
        "pickup.contacted",
        "pickup.collected",
        "pickup.failed",
        "pickup.cancelled",
        "pickup.chased",
        "pickup.rescheduled",
        "pickup.address_changed",
        "pickup.rated",
        "pickup.complained",
    }
)
assert not CUSTOMER_TYPES & COURIER_SIDE_TYPES
# Those that change what the customer may do (the status, or who holds it).
STATE_TYPES = CUSTOMER_TYPES - {
    "pickup.chased",
    "pickup.rescheduled",
    "pickup.rated",
    "pickup.complained",
}

# Consecutive offers (re-offers, new rounds) read as one "looking for a courier" step.
_ONCE_IN_A_ROW = frozenset({"pickup.offered"})


def mask_name(name: str) -> str:
    """李四 → 李*; Li Si → L*: the customer's own name, shown only enough to recognise it."""
    name = name.strip()
    return (name[:1] + "*" * min(max(len(name) - 1, 1), 3)) if name else ""


def courier_short_name(display_name: str) -> str:
    """The courier's name as the customer hears it at the door: the family name of a Chinese name
    (王小明 → 王, shown as 王师傅), the first word of a Latin one."""
    name = display_name.strip()
    if not name:
        return ""
    if name.isascii():
        return name.split()[0]
    return name[0]


class TimelineStep(msgspec.Struct):
    key: str  # the event type without "pickup."
    at: datetime
    detail: dict[str, Any] = {}


class CourierView(msgspec.Struct):
    name: str
    phone: str  # masked


class TrackingView(msgspec.Struct):
    id: int  # never shown: the stream and the actions use it
    code: str
    status: str
    created_at: datetime
    window_start: datetime | None
    window_end: datetime | None
    due_at: datetime | None
    timezone: str
    sender_name: str
    province: str
    city: str
    district: str
    street: str
    detail: str  # masked
    parcel_count: int
    courier: CourierView | None
    waybill_no: str | None
    failure_reason: str | None
    new_time: datetime | None
    chase_again_at: datetime | None
    rated: bool
    complained: bool
    timeline: list[TimelineStep]
    last_event_id: int

    @property
    def is_open(self) -> bool:
        return Status(self.status) in OPEN_STATES or self.status == Status.FAILED

    @property
    def can_cancel(self) -> bool:
        return self.status not in FINAL_STATES

    @property
    def can_chase(self) -> bool:
        return Status(self.status) in OPEN_STATES

    def chase_ready(self, now: datetime | None = None) -> bool:
        return self.chase_again_at is None or (now or utcnow()) >= self.chase_again_at

    @property
    def can_change(self) -> bool:
        """Slot and address: while nobody has collected it yet (and it is not cancelled)."""
        return self.status not in FINAL_STATES

    @property
    def can_rate(self) -> bool:
        return self.status == Status.COLLECTED and not self.rated

    @property
    def can_complain(self) -> bool:
        return self.status in (Status.COLLECTED, Status.FAILED) and not self.complained


_PICKUP_COLUMNS = (
    Pickup.id,
    Pickup.tracking_code,
    Pickup.status,
    Pickup.created_at,
    Pickup.window_start,
    Pickup.window_end,
    Pickup.due_at,
    Pickup.sender_name,
    Pickup.province,
    Pickup.city,
    Pickup.district,
    Pickup.street,
    Pickup.address_detail,
    Pickup.parcel_count,
    Pickup.courier,
    Pickup.waybill_no,
    Pickup.failure_reason,
    Pickup.chased_at,
    Pickup.zone,
    Pickup.zone._.station._.timezone.as_alias("timezone"),
)


async def pickup_id_by_code(code: str) -> int | None:
    """The pickup's id, or None. The same indexed query runs for a malformed code as for a well-formed
    one, so the answer takes as long either way."""
    probe = code if looks_like_tracking_code(code) else ""
    row = await Pickup.select(Pickup.id).where(Pickup.tracking_code == probe).first()
    return row["id"] if row and probe else None


async def zone_of(pickup_id: int) -> int | None:
    row = await Pickup.select(Pickup.zone).where(Pickup.id == pickup_id).first()
    return row["zone"] if row else None


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


async def customer_events(pickup_id: int, after_id: int = 0, limit: int = 500) -> list[PushMessage]:
    """The pickup's customer-visible events after `after_id`, oldest first (the stream's replay)."""
    rows = (
        await Event.select()
        .where((Event.pickup == pickup_id) & (Event.id > after_id) & Event.type.is_in(sorted(CUSTOMER_TYPES)))
        .order_by(Event.id)
        .limit(limit)
    )
    return [decode_event_row(r) for r in rows]


async def latest_customer_event_id(pickup_id: int) -> int:
    row = (
        await Event.select(Event.id)
        .where((Event.pickup == pickup_id) & Event.type.is_in(sorted(CUSTOMER_TYPES)))
        .order_by(Event.id, ascending=False)
        .first()
    )
    return row["id"] if row else 0


def _timeline(events: list[PushMessage]) -> list[TimelineStep]:
    steps: list[TimelineStep] = []
    for e in events:
        key = e.type.removeprefix("pickup.")
        if steps and e.type in _ONCE_IN_A_ROW and steps[-1].key == key:
            continue
        detail: dict[str, Any] = {}
        if key == "failed":
            detail = {"reason": e.data.get("reason"), "new_time": _dt(e.data.get("new_time"))}
        elif key == "rated":
            detail = {"stars": e.data.get("stars")}
        steps.append(TimelineStep(key=key, at=_dt(e.at) or utcnow(), detail=detail))
    return steps


async def tracking_view(pickup_id: int) -> TrackingView | None:
    row = await Pickup.select(*_PICKUP_COLUMNS).where(Pickup.id == pickup_id).first()
    if row is None:
        return None
    events: list[PushMessage] = []
    while True:
        page = await customer_events(pickup_id, events[-1].id if events else 0)
        events.extend(page)
        if len(page) < 500:
            break
    courier = None
    if row["courier"] is not None and row["status"] != Status.PENDING:
        user = (
            await Courier.select(
                Courier.user.display_name.as_alias("name"), Courier.user.phone.as_alias("phone")
            )
            .where(Courier.id == row["courier"])
            .first()
        )
        if user:
            courier = CourierView(
                name=courier_short_name(user["name"] or ""),
                phone=mask_phone(user["phone"]) if user["phone"] else "",
            )
    failed = next((e for e in reversed(events) if e.type == "pickup.failed"), None)
    chased_at = _dt(row["chased_at"])
    return TrackingView(
        id=row["id"],
        code=row["tracking_code"],
        status=row["status"],
        created_at=row["created_at"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        due_at=row["due_at"],
        timezone=row["timezone"] or DEFAULT_TIMEZONE,
        sender_name=mask_name(row["sender_name"]),
        province=row["province"],
        city=row["city"],
        district=row["district"],
        street=row["street"],
        detail=mask_detail(row["address_detail"]),
        parcel_count=row["parcel_count"],
        courier=courier,
        waybill_no=row["waybill_no"] if row["status"] == Status.COLLECTED else None,
        failure_reason=row["failure_reason"] if row["status"] == Status.FAILED else None,
        new_time=_dt(failed.data.get("new_time")) if failed and row["status"] == Status.FAILED else None,
        chase_again_at=chased_at + CHASE_EVERY if chased_at else None,
        rated=any(e.type == "pickup.rated" for e in events),
        complained=any(e.type == "pickup.complained" for e in events),
        timeline=_timeline(events),
        last_event_id=events[-1].id if events else 0,
    )
