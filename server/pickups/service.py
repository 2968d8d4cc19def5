"""Pickups: creation (with zone matching and the first offer), reading, the partner's list."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from server.addresses.service import structured_address
from server.auth.principal import Principal
from server.db.engine import UNIQUE_VIOLATION
from server.db.script import Script, Sql, fetch, insert_steps, run_script
from server.dispatch.first_offer import FirstOffer, apply_to_row, decide_steps, record_offer
from server.dispatch.service import time_limit_rows
from server.domain.contact import new_tracking_code, normalize_mobile
from server.domain.divisions import check_division
from server.domain.geo import point_in_wgs84
from server.domain.pickup_states import Status
from server.domain.visibility import Viewer, contact_for
from server.errors import ApiError, field_errors, not_found
from server.intake.serviceability import active_stop_ship, stop_ship_error
from server.pickups.schemas import (
    Address,
    AddressOut,
    CollectionOut,
    CourierRef,
    EventOut,
    PickupCreate,
    PickupOut,
    PickupPage,
    SenderOut,
    TimeWindow,
    ZoneRef,
)
from server.push.log import COURIER_SIDE_TYPES, STAFF_ONLY_TYPES, Actor, UnitOfWork, run_unit, utcnow
from server.tables import Courier, Event, Pickup
from server.validation import MAX_ID
from server.zones.service import ZoneInfo, directory

# Event data that stays inside Lanshou (courier lists, offer snapshots): not for partners' eyes.
_INTERNAL_KEYS = {"couriers", "pickup", "to"}


# How far ahead a window may lie (create and reschedule): a slot, not a standing order.
WINDOW_AHEAD = timedelta(days=30)


def check_address(
    address: Address, field: str = "address"
) -> tuple[tuple[float, float] | None, list[dict[str, str]]]:
    """The address checks of a create, for a change of address too: the point in WGS-84 (or None) and
    what is wrong, as field errors under `field`: a province/city/district/street combination that
    GB/T 2260 does not have (server/domain/divisions.py), coordinates outside China."""
    problems = check_division(address.province, address.city, address.district, address.street, prefix=field)
    point, point_problems = point_in_wgs84(address.lng, address.lat, address.datum, field)
    return point, problems + point_problems


def match_zone(address: Address, point: tuple[float, float] | None) -> ZoneInfo | None:
    """The zone that serves the address: by its point, else by its street or district name."""
    lng, lat = point if point else (None, None)
    return directory.match(lng, lat, [address.street, address.district])


def check_window(
    window: TimeWindow | None, field: str = "window", now: datetime | None = None
) -> tuple[datetime | None, datetime | None, list[dict[str, str]]]:
    """A window in UTC that ends after it starts, is not over and lies at most WINDOW_AHEAD ahead;
    (start, end, []) or (None, None, field errors)."""
    if window is None:
        return None, None, []
    start, end = window.start, window.end
    if start.tzinfo is None or end.tzinfo is None:
        return (
            None,
            None,
            [{"field": field, "message": "times need a UTC offset, e.g. 2026-11-25T14:00:00+08:00"}],
        )
    if end <= start:
        return None, None, [{"field": f"{field}.end", "message": "the window must end after it starts"}]
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    now = now or utcnow()
    if end < now:
        return None, None, [{"field": f"{field}.end", "message": "the window is already over"}]
    if start > now + WINDOW_AHEAD:
        return (
            None,
            None,
            [
                {
                    "field": f"{field}.start",
                    "message": f"the window starts more than {WINDOW_AHEAD.days} days ahead",
                }
            ],
        )
    return start, end, []


def check_create(
    data: PickupCreate, address: Address
) -> tuple[str, tuple[float, float] | None, datetime | None, datetime | None]:
    """Checks msgspec cannot express, all reported at once; returns the normalised phone, the point in
    WGS-84 and the window in UTC. `address` is data.address as an Address (see structured_address)."""
    errors = []
    phone = normalize_mobile(data.sender.phone)
    if phone is None:
        errors.append(
            {"field": "sender.phone", "message": "not a mainland-China mobile number (11 digits, 1[3-9]…)"}
        )
    point, problems = check_address(address)
    errors.extend(problems)
    start, end, problems = check_window(data.window)
    errors.extend(problems)
    if errors:
        raise field_errors(errors)
    return phone or "", point, start, end


def due_time(created: datetime, zone: ZoneInfo | None, window_end: datetime | None) -> datetime | None:
    """The pickup time limit: the zone's SLA from creation, but never before the customer's slot ends."""
    if zone is None:
        return window_end
    due = created + timedelta(minutes=zone.sla_minutes)
    return max(due, window_end) if window_end else due


class CheckedPickup(msgspec.Struct):
    """A PickupCreate that passed every check, with what the checks worked out."""

    data: PickupCreate
    address: Address  # data.address, split into its parts when it came as one line
    phone: str
    point: tuple[float, float] | None  # WGS-84 (lng, lat)
    window_start: datetime | None
    window_end: datetime | None
    zone: ZoneInfo | None


async def refuse_stop_ship(address: Address, point: tuple[float, float] | None) -> None:
    """422 stop_ship_area, with the reason, when a stop-ship area in force covers the address (a create,
    each batch item and a change of address are refused alike)."""
    lng, lat = point if point else (None, None)
    a = address
    if area := await active_stop_ship(
        province=a.province, city=a.city, district=a.district, street=a.street, lng=lng, lat=lat
    ):
        raise stop_ship_error(area)


async def check_pickup(data: PickupCreate) -> CheckedPickup:
    """Every check a new pickup passes, the same for a single create and each batch item: a new check
    goes here, raising an ApiError whose fields are paths inside one pickup (`sender.phone`; a batch
    reports it as `items[3].sender.phone`). A stop-ship area in force refuses it before anything is
    written."""
    # A one-line address is split first (422 naming the parts it lacks), then checked like any other.
    a = structured_address(data.address)
    phone, point, window_start, window_end = check_create(data, a)
    zone = match_zone(a, point)
    await refuse_stop_ship(a, point)
    return CheckedPickup(data, a, phone, point, window_start, window_end, zone)


def duplicate_error(partner_order_no: str, pickup_id: int) -> ApiError:
    """The 409 naming the pickup that already has this partner_order_no."""
    return ApiError(
        409,
        "duplicate_partner_order_no",
        f"a pickup with partner_order_no {partner_order_no!r} exists already",
        field="partner_order_no",
        pickup_id=pickup_id,
    )


# Order numbers per look-up: well inside SQLite's and PostgreSQL's limits on bound parameters.
_CHUNK = 250


async def existing_orders(partner_id: int, order_nos: list[str]) -> dict[str, int]:
    """The pickups that already carry these partner_order_nos: number -> pickup id."""
    found: dict[str, int] = {}
    for i in range(0, len(order_nos), _CHUNK):
        rows = await Pickup.select(Pickup.id, Pickup.partner_order_no).where(
            (Pickup.partner == partner_id) & Pickup.partner_order_no.is_in(order_nos[i : i + _CHUNK])
        )
        found.update({r["partner_order_no"]: r["id"] for r in rows})
    return found


async def create_pickup(partner: Principal | None, data: PickupCreate, source: str = "api") -> PickupOut:
    """Create a pickup, match its zone and offer it, in one unit of work: for a partner (API) or, with
    no partner, for a customer who booked it themselves (`source` "booking": the booking page)."""
    checked = await check_pickup(data)
    actor = Actor("partner", partner.id) if partner else Actor("customer")
    partner_id = partner.id if partner else None
    try:
        # One transaction in one hop to the database: server/db/script.py.
        (pickup,) = await run_unit(
            lambda uow: insert_pickups_steps(uow, actor, partner_id, [checked], source=source)
        )
    except UNIQUE_VIOLATION:
        # The unique index (partner, partner_order_no) is the check: it also stops the later of two
        # simultaneous creates, which no read before the insert could.
        if data.partner_order_no and partner_id is not None:
            found = await existing_orders(partner_id, [data.partner_order_no])
            if data.partner_order_no in found:
                raise duplicate_error(data.partner_order_no, found[data.partner_order_no]) from None
        raise
    # Everything the answer needs is in hand: no second read of what was just written.
    return pickup_out(pickup, actor)


async def insert_pickups(
    uow: UnitOfWork,
    actor: Actor,
    partner_id: int | None,
    pickups: list[CheckedPickup],
    source: str = "api",
) -> list[dict[str, Any]]:
    """insert_pickups_steps inside the caller's unit of work (a batch's), in one hop."""
    return await run_script(Pickup._meta.db, insert_pickups_steps(uow, actor, partner_id, pickups, source))


def insert_pickups_steps(
    uow: UnitOfWork,
    actor: Actor,
    partner_id: int | None,
    pickups: list[CheckedPickup],
    source: str = "api",
) -> Script[list[dict[str, Any]]]:
    """Write checked pickups — rows, their pickup.created events, time limits, first offers — as steps
    of the caller's script (server/db/script.py), in as few statements as the database allows; the one
    insert path of a single create and a batch. Returns the rows as written, with their ids, in the
    order given. Each zone's couriers are read once and the offer decided first (first_offer.py), so
    a pickup's row goes in already offered."""
    now = utcnow()
    base = _pickup_defaults()
    candidates_seen: dict[Any, Any] = {}
    written: list[dict[str, Any]] = []
    decisions: list[FirstOffer | None] = []
    for c in pickups:
        data = c.data
        lng, lat = c.point if c.point else (None, None)
        row = dict(
            base,
            tracking_code=new_tracking_code(),
            partner=partner_id,
            partner_order_no=data.partner_order_no,
            status=Status.PENDING.value,
            zone=c.zone.id if c.zone else None,
            sender_name=data.sender.name.strip(),
            sender_phone=c.phone,
            sender_phone_last4=c.phone[-4:],
            province=c.address.province.strip(),
            city=c.address.city.strip(),
            district=c.address.district.strip(),
            street=c.address.street.strip(),
            address_detail=c.address.detail.strip(),
            lat=lat,
            lng=lng,
            window_start=c.window_start,
            window_end=c.window_end,
            parcel_count=data.parcel_count,
            weight_kg=data.weight_kg,
            note=data.note,
            created_at=now,
            updated_at=now,
            due_at=due_time(now, c.zone, c.window_end),
        )
        decision = None
        if c.zone is not None:
            # Offers: the system decides.
            decision = yield from decide_steps(c.zone, lat, lng, candidates_seen)
            apply_to_row(row, c.zone, decision)
        written.append(row)
        decisions.append(decision)
    inserted = yield from insert_steps("pickups", written, returning=("id", "tracking_code"))
    ids = {r["tracking_code"]: r["id"] for r in inserted}
    for c, pickup in zip(pickups, written, strict=True):
        pickup["id"] = ids[pickup["tracking_code"]]
        uow.note_zone(pickup["id"], pickup["zone"])
        uow.add(
            "pickup.created",
            actor=actor,
            pickup_id=pickup["id"],
            at=now,
            data={
                "zone": c.zone.code if c.zone else None,
                "partner_order_no": c.data.partner_order_no,
                "source": source,
            },
        )
    timers = time_limit_rows(written)
    offers: list[dict[str, Any]] = []
    for c, pickup, decision in zip(pickups, written, decisions, strict=True):
        if c.zone is not None and decision is not None:
            record_offer(uow, pickup, c.zone, decision, now, offers, timers)
    yield from insert_steps("pickup_offers", offers)
    yield from insert_steps("timers", timers)
    return written


_defaults: dict[str, Any] = {}


def _pickup_defaults() -> dict[str, Any]:
    """Every pickups column's default, worked out once (a Table instance costs a fifth of a millisecond)."""
    if not _defaults:
        _defaults.update({k: v for k, v in Pickup().to_dict().items() if k != "id"})
    return _defaults


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


# A pickup and its courier's name and phone in one statement, written once: every courier action
# answers with this view, and two Piccolo queries built per call were most of such a request's CPU.
_PICKUP_WITH_COURIER = Sql(
    "SELECT p.*, u.display_name AS courier_name, u.phone AS courier_phone FROM pickups p "
    'LEFT JOIN couriers c ON c.id = p.courier LEFT JOIN users u ON u.id = c."user" WHERE p.id = {}'
)


async def pickup_view(
    pickup_id: int, *, with_events: bool, viewer: Viewer, for_partner: bool = True, owner: int | None = None
) -> PickupOut:
    """One pickup as `viewer` may see it (server/domain/visibility.py); `for_partner` leaves out
    what stays between Lanshou and its couriers; with `owner`, only a pickup of that partner (another's is
    "not found", never "forbidden": ids must not leak what exists)."""
    rows = await fetch(Pickup._meta.db, _PICKUP_WITH_COURIER, pickup_id)
    row = rows[0] if rows else None
    if row is None or (owner is not None and row["partner"] != owner):
        raise not_found("pickup")
    courier_name, courier_phone = row.pop("courier_name"), row.pop("courier_phone")
    courier = (
        CourierRef(id=row["courier"], name=courier_name, phone=courier_phone) if row["courier"] else None
    )
    events = None
    if with_events:
        query = Event.select().where(Event.pickup == pickup_id)
        if for_partner:
            query = query.where(Event.type.not_in(sorted(COURIER_SIDE_TYPES | STAFF_ONLY_TYPES)))
        rows = await query.order_by(Event.id)
        events = [
            EventOut(
                id=e["id"],
                type=e["type"],
                at=_iso(e["at"]),
                actor=e["actor_kind"],
                data={
                    k: v
                    for k, v in msgspec.json.decode(e["data"]).items()
                    if not (for_partner and k in _INTERNAL_KEYS)
                },
            )
            for e in rows
        ]
    return pickup_out(row, viewer, courier=courier, events=events)


async def courier_refs(courier_ids: list[int | None]) -> dict[int, CourierRef]:
    ids = sorted({c for c in courier_ids if c})
    if not ids:
        return {}
    rows = await Courier.select(Courier.id, Courier.user.display_name, Courier.user.phone).where(
        Courier.id.is_in(ids)
    )
    return {r["id"]: CourierRef(id=r["id"], name=r["user.display_name"], phone=r["user.phone"]) for r in rows}


def pickup_out(
    row: dict[str, Any],
    viewer: Viewer,
    *,
    courier: CourierRef | None = None,
    events: list[EventOut] | None = None,
) -> PickupOut:
    """The API view of a pickup row, the customer's contact as `viewer` may see it."""
    contact = contact_for(viewer, row)
    zone_info = directory.zones.get(row["zone"]) if row["zone"] else None
    window = TimeWindow(start=row["window_start"], end=row["window_end"]) if row["window_start"] else None
    return PickupOut(
        id=row["id"],
        tracking_code=row["tracking_code"],
        status=Status(row["status"]),
        zone=ZoneRef(id=zone_info.id, code=zone_info.code, name=zone_info.name) if zone_info else None,
        courier=courier,
        partner_order_no=row["partner_order_no"],
        sender=SenderOut(
            name=row["sender_name"],
            phone=contact.phone,
        ),
        address=AddressOut(
            province=row["province"],
            city=row["city"],
            district=row["district"],
            street=row["street"],
            detail=contact.detail,
            lat=row["lat"],
            lng=row["lng"],
        ),
        parcel_count=row["parcel_count"],
        weight_kg=row["weight_kg"],
        window=window,
        note=row["note"],
        waybill_no=row["waybill_no"],
        collection=_collection(row),
        failure_reason=row["failure_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        due_at=row["due_at"],
        events=events,
    )


def _collection(row: dict[str, Any]) -> CollectionOut | None:
    if row["status"] != "collected":
        return None
    photo = row["collected_photo"]
    return CollectionOut(
        pieces=row["collected_pieces"],
        weight_kg=row["collected_weight_kg"],
        repacked=bool(row["repacked"]),
        photo_id=photo,
        photo_url=f"/api/v1/pickups/{row['id']}/photos/{photo}" if photo else None,
    )


async def partner_pickup(partner: Principal, pickup_id: int) -> PickupOut:
    # The row read once, its owner checked on it (one round trip fewer than a separate check).
    return await pickup_view(
        pickup_id, with_events=True, viewer=Actor("partner", partner.id), owner=partner.id
    )


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"p:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = raw.split(":", 1)
        last_id = int(value)
        if prefix != "p" or not 0 < last_id <= MAX_ID:
            raise ValueError
        return last_id
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_cursor", "the cursor is not one this API gave out", field="cursor") from None


async def list_partner_pickups(
    partner: Principal, *, status: Status | None, limit: int, cursor: str | None
) -> PickupPage:
    query = Pickup.select().where(Pickup.partner == partner.id)
    if status is not None:
        query = query.where(Pickup.status == status.value)
    if cursor:
        query = query.where(Pickup.id < decode_cursor(cursor))
    rows = await query.order_by(Pickup.id, ascending=False).limit(limit + 1)
    page = rows[:limit]
    couriers = await courier_refs([r["courier"] for r in page])  # one look-up for the page, not one each
    viewer = Actor("partner", partner.id)
    items = [pickup_out(r, viewer, courier=couriers.get(r["courier"])) for r in page]
    next_cursor = encode_cursor(page[-1]["id"]) if len(rows) > limit else None
    return PickupPage(items=items, next_cursor=next_cursor)
