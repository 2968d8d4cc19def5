"""What the courier app (PWA, PDA or native) sends."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from server.domain.pickup_states import FAILURE_REASONS
from server.validation import ClientId, Id, Moment, Text500

# Written out so that type checkers and the OpenAPI document read it as an enum; kept equal to the
# domain's list (checked below, at import).
FailureReason = Literal[
    "customer_absent",
    "customer_unreachable",
    "customer_refused",
    "address_wrong",
    "parcel_not_ready",
    "parcel_prohibited",
    "packaging_unfit",
    "out_of_capacity",
    "other",
]
assert set(get_args(FailureReason)) == set(FAILURE_REASONS), "FailureReason and FAILURE_REASONS differ"


class DutyIn(msgspec.Struct, forbid_unknown_fields=True):
    on_duty: bool


class ActionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every courier action may carry the app's own id for it (replays are answered, not redone)
    and the time it was done on the phone (offline actions arrive late)."""

    client_action_id: ClientId | None = None
    client_at: Moment | None = None


class CollectIn(ActionIn, forbid_unknown_fields=True):
    # Letters and digits (spaces, as a keyboard or scanner may add them, are removed).
    waybill_no: Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 ]+$")]
    # What the courier found at the door: pieces (default: the pickup's parcel_count), the weight
    # they weighed, whether they re-packed it, and a photo uploaded first (POST …/photos).
    pieces: Annotated[int, msgspec.Meta(ge=1, le=999)] | None = None
    weight_kg: Annotated[float, msgspec.Meta(gt=0, le=1000)] | None = None
    repacked: bool = False
    photo_id: Id | None = None


class PhotoOut(msgspec.Struct):
    photo_id: int


class FailIn(ActionIn, forbid_unknown_fields=True):
    reason: FailureReason
    note: Text500 = ""
    # The time the customer asked the courier to come back, when they agreed one (in the future).
    new_time: Moment | None = None


# Why a courier lets an offer pass (reports group by it).
DeclineReason = Literal["too_far", "busy", "vehicle_full", "wrong_zone", "other"]


class DeclineIn(ActionIn, forbid_unknown_fields=True):
    reason: DeclineReason
    note: Text500 = ""


class DutyOut(msgspec.Struct):
    on_duty: bool
    zones: list[str]
    offers_sent: int = 0


class HeartbeatIn(msgspec.Struct, forbid_unknown_fields=True):
    """The app says it is alive, and where the phone is (GPS: wgs84 unless the map SDK gave another)."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    datum: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
