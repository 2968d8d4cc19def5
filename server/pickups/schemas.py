"""What partners send and get back for pickups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from server.domain.pickup_states import Status
from server.domain.text import LINE_PATTERN
from server.validation import Line32, Line64, Line200, Moment, OptionalLine64, Phone, Text200, Text500

# A whole address as one line of text, which Lanshou splits into an Address (server/addresses/). 200
# characters at most, so the detail left after the place names fits Address.detail.
OneLineAddress = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=LINE_PATTERN,
        description=(
            "The address in one line, e.g. 湖南省长沙市开福区伍家岭街道xx路12号: split into province, city, "
            "district, street and detail; a 422 names the parts it lacks (address.city, ...). "
            "Try it with POST /api/v1/addresses/parse."
        ),
    ),
]


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
    # The parts, or one line that the create splits first (server.addresses.service.structured_address).
    address: Address | OneLineAddress
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


class PickupOut(msgspec.Struct):
    id: int
    tracking_code: str
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
