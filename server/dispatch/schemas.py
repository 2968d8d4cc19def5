from __future__ import annotations

from typing import Annotated

import msgspec

from server.validation import Id, SerialId, Text200

Reason = Text200


class AssignIn(msgspec.Struct, forbid_unknown_fields=True):
    pickup_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=500)]
    courier_id: SerialId
    reason: Reason = ""
    # A dispatcher may send a courier outside their zones, but must say so.
    allow_outside_zone: bool = False


class UnassignIn(msgspec.Struct, forbid_unknown_fields=True):
    pickup_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=500)]
    reason: Reason = ""


class DispatchResult(msgspec.Struct):
    changed: list[int]


class StationSummary(msgspec.Struct):
    code: str
    name: str
    level: str
    counts: dict[str, int]
    children: list[StationSummary] = []
