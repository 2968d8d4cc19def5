"""Read-only: one pickup as the console's drawer shows it, with its offers and its whole event history.

What a dispatcher sees of the customer follows server/domain/visibility.py (the phone masked, no
address detail). Actors are named where the log allows: couriers and staff by their display names,
partners by theirs; the customer and the system need no name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from piccolo.query.functions.aggregate import Count

from server.dispatch.scope import Scope
from server.domain.pickup_states import HELD_STATES
from server.domain.visibility import contact_for
from server.pages import DEFAULT_TIMEZONE
from server.push.log import Actor
from server.tables import Courier, Event, EventRecipient, Partner, Pickup, PickupOffer, PickupPhoto, User

# A pickup's history is tens of events; a pickup offered round after round for a day can have hundreds.
HISTORY_LIMIT = 500
# Event types the drawer says in words (console.drawer.ev.<name>); others are shown by their type.
EVENT_NAMES = (
    "created",
    "offered",
    "offer_seen",
    "alert_sent",
    "declined",
    "accepted",
    "assigned",
    "reassigned",
    "unassigned",
    "withdrawn",
    "escalated",
    "contacted",
    "arrived",
    "collected",
    "failed",
    "cancelled",
    "chased",
    "rescheduled",
    "address_changed",
    "rated",
    "complained",
    "photo_added",
    "sla_warning",
    "sla_breached",
    "noted",
)
ACTOR_KINDS = ("courier", "dispatcher", "admin", "partner", "customer", "system")
OFFER_OUTCOMES = ("accepted", "declined", "withdrawn", "expired")
# Free text a person typed, shown under the event (escaped by the template like everything else).
_TEXT_FIELDS = ("reason", "text", "note", "comment")
# Events whose `reason` is a code the system or the courier app chose, not words someone typed (the
# drawer says those in words of its own, or not at all).
_CODED_REASONS = frozenset({"pickup.offered", "pickup.withdrawn", "pickup.failed", "pickup.declined"})


class OfferRow(msgspec.Struct, frozen=True, kw_only=True):
    courier_id: int
    courier_name: str
    round: int
    offered_at: datetime
    expires_at: datetime | None
    seen_at: datetime | None
    answered_at: datetime | None
    outcome: str | None  # None while open


class HistoryRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    type: str
    name: str | None  # the event's name in EVENT_NAMES, else None
    at: datetime
    actor_kind: str
    actor_name: str | None
    courier_name: str | None  # the courier the event is about (assigned to, accepted by, offered to …)
    text: str  # what someone typed: a reason, a note, a comment
    detail: dict[str, Any]
    until: datetime | None = None  # when an offer made by this event expires
    recipients: int = 0  # couriers an offer event went to (the log's recipients, not its data)


class PickupDetail(msgspec.Struct, kw_only=True):
    id: int
    tracking_code: str
    status: str
    partner_name: str | None
    partner_order_no: str | None
    sender_name: str
    sender_phone: str  # as the dispatcher may see it (masked)
    province: str
    city: str
    district: str
    street: str
    address_detail: str  # "" when the dispatcher may not see it
    lat: float | None
    lng: float | None
    window_start: datetime | None
    window_end: datetime | None
    parcel_count: int
    weight_kg: float | None
    note: str
    zone_id: int | None
    zone_code: str | None
    zone_name: str | None
    timezone: str
    courier_id: int | None
    courier_name: str | None
    waybill_no: str | None
    failure_reason: str | None
    sla_state: str
    chase_count: int
    escalation_stage: int
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    offers: list[OfferRow]
    history: list[HistoryRow]
    history_cut: bool
    photo_ids: list[int]
    # How the courier came to hold it: "assigned" by a dispatcher or "accepted" by the courier, with who.
    held_how: str | None = None
    held_by_name: str | None = None

    @property
    def held(self) -> bool:
        return self.status in HELD_STATES and self.courier_id is not None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite through a join
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def _courier_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await Courier.select(Courier.id, Courier.user._.display_name.as_alias("name")).where(
        Courier.id.is_in(sorted(ids))
    )
    return {r["id"]: r["name"] for r in rows}


async def _user_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await User.select(User.id, User.display_name).where(User.id.is_in(sorted(ids)))
    return {r["id"]: r["display_name"] for r in rows}


async def _partner_names(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await Partner.select(Partner.id, Partner.name).where(Partner.id.is_in(sorted(ids)))
    return {r["id"]: r["name"] for r in rows}


def _event_courier(data: dict[str, Any]) -> int | None:
    """The courier an event is about, from its data (assign, accept, decline, alert …)."""
    for key in ("courier", "courier_id"):
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


async def _recipient_counts(event_ids: list[int]) -> dict[int, int]:
    """How many couriers each of these events went to (an offer names no couriers in its data)."""
    if not event_ids:
        return {}
    rows = (
        await EventRecipient.select(EventRecipient.event, Count(EventRecipient.id).as_alias("n"))
        .where(EventRecipient.event.is_in(event_ids))
        .group_by(EventRecipient.event)
    )
    return {r["event"]: r["n"] for r in rows}


def _moment(value: Any) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _text_of(event_type: str, actor_kind: str, data: dict[str, Any]) -> str:
    coded = event_type in _CODED_REASONS or actor_kind == "system"
    fields = [k for k in _TEXT_FIELDS if not (coded and k == "reason")]
    parts = [str(data[k]).strip() for k in fields if isinstance(data.get(k), str) and data[k].strip()]
    return " · ".join(parts)


async def pickup_detail(pickup_id: int, viewer: Actor, scope: Scope) -> PickupDetail | None:
    """The pickup as the drawer shows it, or None when it does not exist or lies outside `scope`."""
    p = (
        await Pickup.select(
            *Pickup.all_columns(),
            Pickup.zone._.code.as_alias("zone_code"),
            Pickup.zone._.name.as_alias("zone_name"),
            Pickup.zone._.station._.timezone.as_alias("timezone"),
            Pickup.partner._.name.as_alias("partner_name"),
            Pickup.courier._.user._.display_name.as_alias("courier_name"),
        )
        .where(Pickup.id == pickup_id)
        .first()
    )
    if p is None or not scope.covers_zone(p["zone"]):
        return None
    contact = contact_for(viewer, p)

    offers_raw = (
        await PickupOffer.select(
            PickupOffer.courier,
            PickupOffer.round,
            PickupOffer.offered_at,
            PickupOffer.expires_at,
            PickupOffer.seen_at,
            PickupOffer.answered_at,
            PickupOffer.outcome,
            PickupOffer.courier._.user._.display_name.as_alias("courier_name"),
        )
        .where(PickupOffer.pickup == pickup_id)
        .order_by(PickupOffer.offered_at)
        .order_by(PickupOffer.id)
    )
    offers = [
        OfferRow(
            courier_id=o["courier"],
            courier_name=o["courier_name"] or str(o["courier"]),
            round=o["round"],
            offered_at=_utc(o["offered_at"]),  # type: ignore[arg-type]
            expires_at=_utc(o["expires_at"]),
            seen_at=_utc(o["seen_at"]),
            answered_at=_utc(o["answered_at"]),
            outcome=o["outcome"],
        )
        for o in offers_raw
    ]

    # The latest HISTORY_LIMIT events (what a dispatcher acts on), shown oldest first.
    events = (
        await Event.select(Event.id, Event.type, Event.actor_kind, Event.actor_id, Event.at, Event.data)
        .where(Event.pickup == pickup_id)
        .order_by(Event.id, ascending=False)
        .limit(HISTORY_LIMIT + 1)
    )
    cut = len(events) > HISTORY_LIMIT
    events = events[:HISTORY_LIMIT][::-1]
    decoded = []
    for e in events:
        try:
            data = msgspec.json.decode(e["data"] or "{}")
        except msgspec.DecodeError:
            data = {}
        decoded.append((e, data if isinstance(data, dict) else {}))
    courier_ids = {e["actor_id"] for e, _ in decoded if e["actor_kind"] == "courier" and e["actor_id"]}
    courier_ids |= {c for _, d in decoded if (c := _event_courier(d)) is not None}
    staff_ids = {
        e["actor_id"] for e, _ in decoded if e["actor_kind"] in ("dispatcher", "admin") and e["actor_id"]
    }
    partner_ids = {e["actor_id"] for e, _ in decoded if e["actor_kind"] == "partner" and e["actor_id"]}
    couriers = await _courier_names(courier_ids)
    recipients = await _recipient_counts([e["id"] for e, _ in decoded if e["type"] == "pickup.offered"])
    staff = await _user_names(staff_ids)
    partners = await _partner_names(partner_ids)
    names = {"courier": couriers, "dispatcher": staff, "admin": staff, "partner": partners}
    history = []
    for e, data in decoded:
        name = e["type"].removeprefix("pickup.")
        about = _event_courier(data)
        history.append(
            HistoryRow(
                id=e["id"],
                type=e["type"],
                name=name if e["type"].startswith("pickup.") and name in EVENT_NAMES else None,
                at=_utc(e["at"]),  # type: ignore[arg-type]
                actor_kind=e["actor_kind"],
                actor_name=names.get(e["actor_kind"], {}).get(e["actor_id"]),
                courier_name=couriers.get(about) if about is not None else None,
                text=_text_of(e["type"], e["actor_kind"], data),
                detail=data,
                until=_moment(data.get("expires_at")),
                recipients=recipients.get(e["id"], 0),
            )
        )

    detail = PickupDetail(
        id=p["id"],
        tracking_code=p["tracking_code"],
        status=p["status"],
        partner_name=p["partner_name"],
        partner_order_no=p["partner_order_no"],
        sender_name=p["sender_name"],
        sender_phone=contact.phone,
        province=p["province"],
        city=p["city"],
        district=p["district"],
        street=p["street"] or "",
        address_detail=contact.detail,
        lat=p["lat"],
        lng=p["lng"],
        window_start=_utc(p["window_start"]),
        window_end=_utc(p["window_end"]),
        parcel_count=p["parcel_count"],
        weight_kg=p["weight_kg"],
        note=p["note"] or "",
        zone_id=p["zone"],
        zone_code=p["zone_code"],
        zone_name=p["zone_name"],
        timezone=p["timezone"] or DEFAULT_TIMEZONE,
        courier_id=p["courier"],
        courier_name=p["courier_name"],
        waybill_no=p["waybill_no"],
        failure_reason=p["failure_reason"],
        sla_state=p["sla_state"],
        chase_count=p["chase_count"],
        escalation_stage=p["escalation_stage"],
        created_at=_utc(p["created_at"]),  # type: ignore[arg-type]
        updated_at=_utc(p["updated_at"]),  # type: ignore[arg-type]
        due_at=_utc(p["due_at"]),
        offers=offers,
        history=history,
        history_cut=cut,
        photo_ids=[
            r["id"]
            for r in await PickupPhoto.select(PickupPhoto.id)
            .where(PickupPhoto.pickup == pickup_id)
            .order_by(PickupPhoto.id)
        ],
    )
    if detail.held:
        # The latest event that put it in this courier's hands says how: a dispatcher's assign or
        # reassign, or the courier's own accept.
        for h in reversed(history):
            if h.type in ("pickup.assigned", "pickup.reassigned"):
                detail.held_how, detail.held_by_name = "assigned", h.actor_name
                break
            if h.type == "pickup.accepted":
                detail.held_how, detail.held_by_name = "accepted", h.actor_name
                break
    return detail
