"""What goes in and out of the serviceability and stop-ship-area API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from server.pickups.schemas import ZoneRef
from server.validation import Line64, Line128, Line200, Moment

AreaName = Line64


class SlotOut(msgspec.Struct):
    start: datetime  # UTC
    end: datetime


class StopShipOut(msgspec.Struct):
    """An area in force, as a refusal names it."""

    id: int
    name: str
    reason: str
    starts_at: datetime
    ends_at: datetime | None


class StationRef(msgspec.Struct):
    id: int
    code: str
    name: str


class ServiceabilityOut(msgspec.Struct):
    serviceable: bool
    code: str | None  # why not: "stop_ship_area" | "no_zone"
    message: str | None  # English, for people
    station: StationRef | None
    zone: ZoneRef | None
    time_limit_minutes: float | None  # the zone's pickup time limit
    slots: list[SlotOut]  # the zone's next slots, soonest first
    stop_ship: StopShipOut | None


class StopShipIn(msgspec.Struct, forbid_unknown_fields=True):
    """A stop-ship area: a polygon and/or admin-area names, with a reason and a validity period."""

    name: Line128
    reason: Line200
    # A GeoJSON Polygon or MultiPolygon geometry, in `datum`.
    geometry: dict[str, Any] | None = None
    datum: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    # Province, city, district or street names (an address naming any of them is inside).
    admin_areas: Annotated[list[AreaName], msgspec.Meta(max_length=100)] = []
    starts_at: Moment | None = None  # now when left out
    ends_at: Moment | None = None  # open-ended when left out
    station: Line64 | None = None  # the owning station's code; a dispatcher's own when left out


class StopShipAreaOut(msgspec.Struct):
    id: int
    name: str
    reason: str
    geometry: dict[str, Any] | None  # WGS-84
    admin_areas: list[str]
    starts_at: datetime
    ends_at: datetime | None
    station: str | None  # owning station's code; None: nationwide (admins')
    active: bool  # in force now
    created_at: datetime
    updated_at: datetime


class ActiveStopShipOut(msgspec.Struct):
    """An area in force, as partners see it."""

    id: int
    name: str
    reason: str
    geometry: dict[str, Any] | None  # WGS-84
    admin_areas: list[str]
    starts_at: datetime
    ends_at: datetime | None
