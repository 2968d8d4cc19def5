"""The customer's booking form: what its pickers offer, whether the address is served, and booking.

The form sends division codes (from the pickers) and a slot as "start/end" in ISO 8601. Each field is
checked against the same types as the API's PickupCreate, each code against the one above it
(server/domain/divisions.py) and the slot against the zone's offered slots (server/intake), all at once
so that the page can show every error beside its field; `create_pickup` then checks again, as for a
partner, and has the last word. Errors are translation keys (or a stop-ship reason, which is the
dispatcher's own text), keyed by form field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import msgspec

from server.domain.contact import normalize_mobile
from server.domain.divisions import Division, pickers
from server.errors import ApiError
from server.intake.serviceability import ServiceabilityOut, serviceability, slot_is_offered
from server.pickups.schemas import Address, PickupCreate, Sender, TimeWindow
from server.pickups.service import create_pickup
from server.validation import EARLIEST, LATEST, Line64, Line200, OptionalLine64, Text500

FIELDS = (
    "name",
    "phone",
    "province",
    "city",
    "district",
    "street",
    "detail",
    "slot",
    "parcel_count",
    "weight_kg",
    "note",
    "order_no",
)
PLACE_FIELDS = ("province", "city", "district", "street", "slot")
# The form's limits are the API's (PickupCreate); the form's text fields by their API type.
_TYPES: dict[str, Any] = {
    "name": Line64,
    "detail": Line200,
    "note": Text500,
    "order_no": OptionalLine64,
}
ParcelCount = Annotated[int, msgspec.Meta(ge=1, le=50)]
Weight = Annotated[float, msgspec.Meta(gt=0, le=1000)]
# The form's errors, by field (translation keys). A stop-ship area's reason is shown in its own words.
ERRORS = {
    "name": "book.error.name",
    "phone": "book.error.phone",
    "province": "book.error.province",
    "city": "book.error.city",
    "district": "book.error.district",
    "street": "book.error.street",
    "detail": "book.error.detail",
    "slot": "book.error.slot",
    "slot_gone": "book.error.slot_gone",
    "parcel_count": "book.error.parcel_count",
    "weight_kg": "book.error.weight_kg",
    "note": "book.error.note",
    "order_no": "book.error.order_no",
    "form": "book.error.form",
    "stop_ship": "book.stop_ship",
    "not_served": "book.not_served",
}
# Where an API field error belongs on the form.
_API_FIELDS = {
    "sender.name": "name",
    "sender.phone": "phone",
    "address.province": "province",
    "address.city": "city",
    "address.district": "district",
    "address.street": "street",
    "address.detail": "detail",
    "address": "district",
    "window": "slot",
    "window.start": "slot",
    "window.end": "slot",
    "parcel_count": "parcel_count",
    "weight_kg": "weight_kg",
    "note": "note",
    "partner_order_no": "order_no",
}


class Place(NamedTuple):
    """The address as far as it has been picked, with what each picker offers (divisions.pickers)."""

    provinces: list[Division]
    cities: list[Division]
    districts: list[Division]
    streets: list[Division]
    chosen: dict[str, Division | None]  # province, city, district, street
    served: ServiceabilityOut | None  # None until a district is chosen


def form_values(raw: Any) -> dict[str, str]:
    """The form's fields as text (a missing or non-text field is empty), surrounding blanks kept off."""
    values = {}
    for name in FIELDS:
        value = raw.get(name) if raw is not None else None
        values[name] = value.strip() if isinstance(value, str) else ""
    return values


async def place(values: dict[str, str]) -> Place:
    """The pickers for the codes in `values` (divisions.pickers), and whether the address is served."""
    picked = pickers(values["province"], values["city"], values["district"], values["street"])
    province, city, district, street = picked.chosen.values()
    served = None
    if province and city and district:
        served = await serviceability(
            province=province.name,
            city=city.name,
            district=district.name,
            street=street.name if street else "",
        )
    return Place(*picked, served=served)


def slot_value(start: datetime, end: datetime) -> str:
    return f"{start.isoformat()}/{end.isoformat()}"


def _slot(value: str) -> tuple[datetime, datetime] | None:
    start, _, end = value.partition("/")
    try:
        pair = datetime.fromisoformat(start), datetime.fromisoformat(end)
        if any(t.tzinfo is None for t in pair):
            return None
        # In UTC, and within the API's range: 9999-12-31T23:59-23:59 would overflow further on.
        utc = pair[0].astimezone(UTC), pair[1].astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return utc if all(EARLIEST <= t <= LATEST for t in utc) else None


def _convert(value: str, kind: Any) -> tuple[Any, bool]:
    try:
        return msgspec.convert(value, kind, strict=False), True
    except msgspec.ValidationError:
        return None, False


def check_form(values: dict[str, str], where: Place) -> tuple[PickupCreate | None, dict[str, str]]:
    """The pickup the form asks for, or the errors by field (translation keys; a stop-ship area's
    reason as it was written)."""
    errors: dict[str, str] = {}
    checked: dict[str, Any] = {}
    for name, kind in _TYPES.items():
        checked[name], ok = _convert(values[name], kind)
        if not ok:
            errors[name] = ERRORS[name]
    if normalize_mobile(values["phone"]) is None:
        errors["phone"] = ERRORS["phone"]
    checked["parcel_count"], ok = _convert(values["parcel_count"] or "1", ParcelCount)
    if not ok:
        errors["parcel_count"] = ERRORS["parcel_count"]
    checked["weight_kg"] = None
    if values["weight_kg"]:
        checked["weight_kg"], ok = _convert(values["weight_kg"], Weight)
        if not ok:
            errors["weight_kg"] = ERRORS["weight_kg"]
    chosen = where.chosen
    for level in ("province", "city", "district"):
        if chosen[level] is None:
            errors[level] = ERRORS[level]
            break
    if values["street"] and chosen["street"] is None and "district" not in errors and where.streets:
        errors["street"] = ERRORS["street"]
    window = None
    served = where.served
    if served is not None and not served.serviceable:
        if served.stop_ship is not None:
            errors["district"] = served.stop_ship.reason or ERRORS["stop_ship"]
        else:
            errors["district"] = ERRORS["not_served"]
    elif served is not None:
        slot = _slot(values["slot"]) if values["slot"] else None
        if slot is None:
            errors["slot"] = ERRORS["slot"]
        elif served.zone is None or not slot_is_offered(served.zone.id, *slot):
            errors["slot"] = ERRORS["slot_gone"]
        else:
            window = TimeWindow(start=slot[0], end=slot[1])
    if errors:
        return None, errors
    # Picked from the data by code, the names are a real combination; create_pickup checks them again.
    names = {k: d.name if d else "" for k, d in chosen.items()}
    data = PickupCreate(
        sender=Sender(name=checked["name"], phone=values["phone"]),
        address=Address(
            province=names["province"],
            city=names["city"],
            district=names["district"],
            street=names["street"],
            detail=checked["detail"],
        ),
        parcel_count=checked["parcel_count"],
        weight_kg=checked["weight_kg"],
        window=window,
        note=checked["note"],
        partner_order_no=checked["order_no"] or None,
    )
    return data, {}


def api_errors(exc: ApiError) -> dict[str, str]:
    """The form's errors for a refusal from create_pickup (a stop-ship area set up a moment ago, a slot
    that ended while the customer typed): each beside the field it is about."""
    if exc.code == "stop_ship_area":
        reason = exc.extra_fields.get("reason") or exc.message
        return {"district": str(reason)}
    errors: dict[str, str] = {}
    for error in exc.errors or [{"field": "", "message": exc.message}]:
        field = _API_FIELDS.get(str(error.get("field") or ""), "form")
        errors.setdefault(field, ERRORS.get(field, ERRORS["form"]))
    return errors


async def book(values: dict[str, str], where: Place) -> tuple[str | None, dict[str, str]]:
    """Create the pickup the form asks for (no partner: the customer's own, source "booking"); its
    tracking code, or the errors by field with nothing written."""
    data, errors = check_form(values, where)
    if data is None:
        return None, errors
    try:
        created = await create_pickup(None, data, source="booking")
    except ApiError as exc:
        if exc.status_code != 422:
            raise
        return None, api_errors(exc)
    return created.tracking_code, {}
