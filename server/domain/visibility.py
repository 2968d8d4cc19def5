"""Who sees a pickup's customer contact in full: one rule for every place a pickup is shown.

- the partner that booked it: its own customer's phone and address, in full (API and webhooks);
- the courier holding it (or who held it to the end): the phone in full, to call at the door;
- a courier only offered it: the phone masked, the address in full (enough to decide and navigate);
- the customer on the tracking page: the phone masked (a tracking link gets forwarded), the address;
- everyone else (dispatchers, admins, other couriers and partners): the phone masked, no address detail
  (the console shows district and street).
Pure: the caller says who is looking (anything with `kind` and `id`, like push.log.Actor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from server.domain.contact import mask_phone


class Viewer(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> int | None: ...


class ContactView(NamedTuple):
    """The customer's phone and address detail as one viewer may see them."""

    phone: str
    detail: str


class _Anonymous(NamedTuple):
    kind: str
    id: int | None = None


# A courier who has only an offer of the pickup (the offer snapshot, the answer to a decline).
OFFERED_COURIER: Viewer = _Anonymous("courier")


def sees_phone(viewer: Viewer, pickup: Mapping[str, Any]) -> bool:
    if viewer.kind == "partner":
        return viewer.id is not None and viewer.id == pickup["partner"]
    if viewer.kind == "courier":
        return viewer.id is not None and viewer.id == pickup["courier"]
    return False


def sees_address(viewer: Viewer, pickup: Mapping[str, Any]) -> bool:
    if viewer.kind == "partner":
        return viewer.id is not None and viewer.id == pickup["partner"]
    return viewer.kind in ("courier", "customer")


def contact_for(viewer: Viewer, pickup: Mapping[str, Any]) -> ContactView:
    """The phone (masked unless `viewer` may see it) and address detail ("" unless it may)."""
    phone = pickup["sender_phone"]
    return ContactView(
        phone=phone if sees_phone(viewer, pickup) else mask_phone(phone),
        detail=pickup["address_detail"] if sees_address(viewer, pickup) else "",
    )
