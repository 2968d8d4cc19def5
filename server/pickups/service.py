"""Pickups: creation (with zone matching and the first offer), reading, the partner's list."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from server.addresses.service import structured_address
from server.auth.principal import Principal
from server.db.engine import UNIQUE_VIOLATION
from server.dispatch.service import dispatch_pickup, start_time_limit
from server.domain.contact import mask_phone, new_tracking_code, normalize_mobile
from server.domain.geo import point_in_wgs84
from server.domain.pickup_states import Status
from server.errors import ApiError, field_errors, not_found
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
from server.push.log import COURIER_SIDE_TYPES, Actor, unit_of_work, utcnow
from server.tables import Courier, Event, Pickup
from server.validation import MAX_ID
from server.zones.service import ZoneInfo, directory

# Event data that stays inside Lanshou (courier lists, offer snapshots): not for partners' eyes.
_INTERNAL_KEYS = {"couriers", "pickup", "to"}


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
    point, problems = point_in_wgs84(address.lng, address.lat, address.datum, "address")
    errors.extend(problems)
    start = end = None
    if data.window is not None:
        start, end = data.window.start, data.window.end
        if start.tzinfo is None or end.tzinfo is None:
            errors.append(
                {"field": "window", "message": "times need a UTC offset, e.g. 2026-11-25T14:00:00+08:00"}
            )
        elif end <= start:
            errors.append({"field": "window.end", "message": "the window must end after it starts"})
        else:
            start, end = start.astimezone(UTC), end.astimezone(UTC)
            if end < utcnow():
                errors.append({"field": "window.end", "message": "the window is already over"})
    if errors:
        raise field_errors(errors)
    return phone or "", point, start, end


def due_time(created: datetime, zone: ZoneInfo | None, window_end: datetime | None) -> datetime | None:
    """The pickup time limit: the zone's SLA from creation, but never before the customer's slot ends."""
    if zone is None:
        return window_end
    due = created + timedelta(minutes=zone.sla_minutes)
    return max(due, window_end) if window_end else due


async def create_pickup(partner: Principal, data: PickupCreate) -> PickupOut:
    # A one-line address is split first (422 naming the parts it lacks), then checked like any other.
    address = structured_address(data.address)
    phone, point, window_start, window_end = check_create(data, address)
    lng, lat = point if point else (None, None)
    zone = directory.match(lng, lat, [address.street, address.district])
    now = utcnow()
    actor = Actor("partner", partner.id)

    async def duplicate_of_order() -> ApiError | None:
        """The 409 naming the pickup that already has this partner_order_no, if one has."""
        if not data.partner_order_no:
            return None
        existing = (
            await Pickup.select(Pickup.id)
            .where((Pickup.partner == partner.id) & (Pickup.partner_order_no == data.partner_order_no))
            .first()
        )
        if existing is None:
            return None
        return ApiError(
            409,
            "duplicate_partner_order_no",
            f"a pickup with partner_order_no {data.partner_order_no!r} exists already",
            field="partner_order_no",
            pickup_id=existing["id"],
        )

    try:
        async with unit_of_work() as uow:
            row = Pickup(
                tracking_code=new_tracking_code(),
                partner=partner.id,
                partner_order_no=data.partner_order_no,
                status=Status.PENDING.value,
                zone=zone.id if zone else None,
                sender_name=data.sender.name.strip(),
                sender_phone=phone,
                province=address.province.strip(),
                city=address.city.strip(),
                district=address.district.strip(),
                street=address.street.strip(),
                address_detail=address.detail.strip(),
                lat=lat,
                lng=lng,
                window_start=window_start,
                window_end=window_end,
                parcel_count=data.parcel_count,
                weight_kg=data.weight_kg,
                note=data.note,
                created_at=now,
                updated_at=now,
                due_at=due_time(now, zone, window_end),
            )
            inserted = await Pickup.insert(row).returning(Pickup.id)
            pickup_id = inserted[0]["id"]
            pickup = row.to_dict()
            pickup["id"] = pickup_id
            uow.note_zone(pickup_id, pickup["zone"])
            await uow.record(
                "pickup.created",
                actor=actor,
                pickup_id=pickup_id,
                at=now,
                data={"zone": zone.code if zone else None, "partner_order_no": data.partner_order_no},
            )
            await start_time_limit(pickup)
            if zone is not None:
                await dispatch_pickup(uow, pickup, zone, reason="new")  # offers: the system decides
    except UNIQUE_VIOLATION:
        # The unique index (partner, partner_order_no) is the check: it also stops the later of two
        # simultaneous creates, which no read before the insert could.
        if duplicate := await duplicate_of_order():
            raise duplicate from None
        raise
    # Everything the answer needs is in hand: no second read of what was just written.
    return pickup_out(pickup)


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


async def pickup_view(
    pickup_id: int, *, with_events: bool, full_phone: bool = False, for_partner: bool = True
) -> PickupOut:
    row = await Pickup.select().where(Pickup.id == pickup_id).first()
    if row is None:
        raise not_found("pickup")
    courier = (await courier_refs([row["courier"]])).get(row["courier"])
    events = None
    if with_events:
        query = Event.select().where(Event.pickup == pickup_id)
        if for_partner:
            query = query.where(Event.type.not_in(list(COURIER_SIDE_TYPES)))
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
    return pickup_out(row, courier=courier, events=events, full_phone=full_phone)


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
    *,
    courier: CourierRef | None = None,
    events: list[EventOut] | None = None,
    full_phone: bool = False,
) -> PickupOut:
    """The API view of a pickup row (partners see the phone masked; the courier holding it does not)."""
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
            phone=row["sender_phone"] if full_phone else mask_phone(row["sender_phone"]),
        ),
        address=AddressOut(
            province=row["province"],
            city=row["city"],
            district=row["district"],
            street=row["street"],
            detail=row["address_detail"],
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
    owner = await Pickup.select(Pickup.partner).where(Pickup.id == pickup_id).first()
    # Another partner's pickup is "not found", never "forbidden": ids must not leak what exists.
    if owner is None or owner["partner"] != partner.id:
        raise not_found("pickup")
    return await pickup_view(pickup_id, with_events=True)


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
    items = [pickup_out(r, courier=couriers.get(r["courier"])) for r in page]
    next_cursor = encode_cursor(page[-1]["id"]) if len(rows) > limit else None
    return PickupPage(items=items, next_cursor=next_cursor)
