"""What partners send and get back for pickups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Short = Annotated[str, msgspec.Meta(max_length=64)]


class Sender(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    phone: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


class Address(msgspec.Struct, forbid_unknown_fields=True):
    province: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    city: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    district: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    detail: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    street: Annotated[str, msgspec.Meta(max_length=64)] = ""
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    # The datum of lat/lng: AMap and Tencent give gcj02, Baidu bd09, a phone's GPS wgs84.
    datum: Literal["wgs84", "gcj02", "bd09"] = "gcj02"


class TimeWindow(msgspec.Struct, forbid_unknown_fields=True):
    start: datetime
    end: datetime


class PickupCreate(msgspec.Struct, forbid_unknown_fields=True):
    sender: Sender
    address: Address
    parcel_count: Annotated[int, msgspec.Meta(ge=1, le=50)] = 1
    weight_kg: Annotated[float, msgspec.Meta(gt=0, le=1000)] | None = None
    window: TimeWindow | None = None
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""
    partner_order_no: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


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


class PickupOut(msgspec.Struct):
    id: int
    tracking_code: str
    status: str
    zone: ZoneRef | None
    courier: CourierRef | None
    partner_order_no: str | None
    sender: Sender
    address: Address
    parcel_count: int
    weight_kg: float | None
    window: TimeWindow | None
    note: str
    waybill_no: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    events: list[EventOut] | None = None


class PickupPage(msgspec.Struct):
    items: list[PickupOut]
    next_cursor: str | None


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""
