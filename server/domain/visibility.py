"""Who sees a pickup's customer contact in full: one rule for every place a pickup is shown.

- the partner that booked it: its own customer's phone and address, in full (API and webhooks);
- the courier holding it (or who held it to the end): the phone in full, to call at the door;
- a courier only offered it: the phone masked, the address in full (enough to decide and navigate);
- the customer on the tracking page: the phone and the address detail masked (a tracking link gets
  forwarded: the customer recognises their own, someone with the link learns neither number nor door);
- dispatchers and admins (only ever for pickups of their stations): the phone masked, the address in
  full (the pickup drawer shows the exact address, to re-dispatch it or send someone to the door);
- other partners: the phone masked, no address detail.
Pure: the caller says who is looking (anything with `kind` and `id`, like push.log.Actor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from server.domain.contact import mask_detail, mask_phone


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
    return viewer.kind in ("courier", "dispatcher", "admin")


def contact_for(viewer: Viewer, pickup: Mapping[str, Any]) -> ContactView:
    """The phone (masked unless `viewer` may see it) and the address detail (in full if it may, its
    numbers hidden for the customer, "" for anyone else)."""
    phone, detail = pickup["sender_phone"], pickup["address_detail"]
    if not sees_address(viewer, pickup):
        detail = mask_detail(detail) if viewer.kind == "customer" else ""
    return ContactView(phone=phone if sees_phone(viewer, pickup) else mask_phone(phone), detail=detail)
