from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from server.validation import Line64, Line128, OptionalLine128, Phone

# Codes (zones, stations) and user names: one line, no control characters, not blank.
Name = Line64


class ZoneMembership(msgspec.Struct, forbid_unknown_fields=True):
    zone: Name  # zone code
    role: Literal["primary", "backup"] = "primary"


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: Name
    password: Annotated[str, msgspec.Meta(min_length=4, max_length=200)]
    role: Literal["courier", "dispatcher", "admin"]
    display_name: OptionalLine128 | None = None
    phone: Phone | None = None
    station: Name | None = None
    capacity: Annotated[int, msgspec.Meta(ge=1, le=200)] = 8
    zones: list[ZoneMembership] = []


class UserOut(msgspec.Struct):
    id: int
    username: str
    role: str
    courier_id: int | None


class CourierZonesIn(msgspec.Struct, forbid_unknown_fields=True):
    zones: list[ZoneMembership]


class StationCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Name
    name: Line128
    level: Literal["province", "city", "district", "station"] = "station"
    parent: Name | None = None  # parent station's code


class StationOut(msgspec.Struct):
    id: int
    code: str
    name: str
    level: str
    parent: str | None
