"""What the courier app (PWA, PDA or native) sends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class DutyIn(msgspec.Struct, forbid_unknown_fields=True):
    on_duty: bool


class ActionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every courier action may carry the app's own id for it (replays are answered, not redone)
    and the time it was done on the phone (offline actions arrive late)."""

    client_action_id: ClientId | None = None
    client_at: datetime | None = None


class CollectIn(ActionIn, forbid_unknown_fields=True):
    waybill_no: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class FailIn(ActionIn, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class DutyOut(msgspec.Struct):
    on_duty: bool
    zones: list[str]
    offers_sent: int = 0
