"""Who sees the customer's phone and address detail: one row per viewer (server/domain/visibility.py)."""

from __future__ import annotations

import pytest

from server.domain.visibility import OFFERED_COURIER, contact_for
from server.push.log import Actor

PICKUP = {"partner": 7, "courier": 3, "sender_phone": "13912345678", "address_detail": "5号楼2单元301"}


@pytest.mark.parametrize(
    ("viewer", "phone", "detail"),
    [
        (Actor("partner", 7), "13912345678", "5号楼2单元301"),  # the partner that booked it
        (Actor("partner", 8), "139****5678", ""),  # another partner (the API answers 404 anyway)
        (Actor("courier", 3), "13912345678", "5号楼2单元301"),  # the courier holding it
        (OFFERED_COURIER, "139****5678", "5号楼2单元301"),  # an offer: enough to decide and go
        (Actor("courier", 4), "139****5678", "5号楼2单元301"),  # a courier it was offered to, not held by
        (Actor("customer"), "139****5678", "*号楼*单元***"),  # the tracking page: a link gets forwarded
        (Actor("dispatcher", 1), "139****5678", "5号楼2单元301"),  # the drawer's exact address
        (Actor("admin", 1), "139****5678", "5号楼2单元301"),
    ],
)
def test_each_viewer_sees_the_contact_it_may(viewer: Actor, phone: str, detail: str) -> None:
    seen = contact_for(viewer, PICKUP)
    assert (seen.phone, seen.detail) == (phone, detail)


def test_a_pickup_nobody_holds_shows_no_courier_the_phone() -> None:
    assert contact_for(Actor("courier", 3), {**PICKUP, "courier": None}).phone == "139****5678"
