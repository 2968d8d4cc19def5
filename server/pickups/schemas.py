"""What partners send and get back for pickups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from server.domain.pickup_states import Status
from server.validation import (
    LINES_PATTERN,
    Line32,
    Line64,
    Line200,
    Moment,
    OptionalLine64,
    Phone,
    Text200,
    Text500,
)


class Sender(msgspec.Struct, forbid_unknown_fields=True):
    name: Line64
    phone: Phone


class Address(msgspec.Struct, forbid_unknown_fields=True):
    province: Line32
    city: Line32
    district: Line32
    detail: Line200
    street: OptionalLine64 = ""
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    # The datum of lat/lng: AMap and Tencent give gcj02, Baidu bd09, a phone's GPS wgs84.
    datum: Literal["wgs84", "gcj02", "bd09"] = "gcj02"


class TimeWindow(msgspec.Struct, forbid_unknown_fields=True):
    start: Moment
    end: Moment


class PickupCreate(msgspec.Struct, forbid_unknown_fields=True):
    sender: Sender
    address: Address
    parcel_count: Annotated[int, msgspec.Meta(ge=1, le=50)] = 1
    weight_kg: Annotated[float, msgspec.Meta(gt=0, le=1000)] | None = None
    window: TimeWindow | None = None
    note: Text500 = ""
    partner_order_no: Line64 | None = None


class SenderOut(msgspec.Struct):
    name: str
    phone: str  # masked (139****5678) except for the courier holding the pickup


class AddressOut(msgspec.Struct):
    province: str
    city: str
    district: str
    street: str
    detail: str
    lat: float | None
    lng: float | None
    datum: Literal["wgs84"] = "wgs84"  # what Lanshou stores, whatever datum the pickup was sent in


class ZoneRef(msgspec.Struct):
    id: int
    code: str
    name: str


class CourierRef(msgspec.Struct):
    id: int
    name: str
    phone: str | None = None


class EventOut(msgspec.Struct):
    id: int
    type: str
    at: str
    actor: str
    data: dict[str, object] = {}


class CollectionOut(msgspec.Struct):
    """What the courier recorded at the door when collecting."""

    pieces: int | None
    weight_kg: float | None
    repacked: bool
    photo_id: int | None
    # GET it with the partner's API key (only the pickup's partner and staff may).
    photo_url: str | None


TrackingCode = Annotated[
    str,
    msgspec.Meta(
        min_length=12,
        max_length=32,
        description=(
            "The customer's key to the public tracking page /t/{tracking_code}: LS and 20 characters "
            "(about 99 bits; codes issued before 2026-11-26 have 10 and stay valid)."
        ),
        examples=["LS7KQ2MZXH4P9RWT3NAB6C"],
    ),
]


class PickupOut(msgspec.Struct):
    id: int
    tracking_code: TrackingCode
    status: Status
    zone: ZoneRef | None
    courier: CourierRef | None
    partner_order_no: str | None
    sender: SenderOut
    address: AddressOut
    parcel_count: int
    weight_kg: float | None
    window: TimeWindow | None
    note: str
    waybill_no: str | None
    collection: CollectionOut | None  # set once collected
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    events: list[EventOut] | None = None


class PickupPage(msgspec.Struct):
    items: list[PickupOut]
    next_cursor: str | None


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Text200 = ""


class RescheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    window: TimeWindow


class AddressChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    address: Address


class RatingIn(msgspec.Struct, forbid_unknown_fields=True):
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Text500 = ""


class ComplaintIn(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=LINES_PATTERN)]
