"""What the courier app shows beyond the JSON API's offers and held pickups: how far each offer is, the
navigation links of a held pickup, and "My day" (today's counts and closed pickups).

Read-only. "Today" is the calendar day in the service's time zone (a courier in Changsha starts the day
at midnight Beijing time, not UTC). Collected and failed count from the event log (one row per change,
found through the events_actor_type index), not from the pickups' current state, so a pickup failed
today and re-dispatched since still counts as failed today.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from server.console.queries import DEFAULT_TIMEZONE
from server.dispatch.rules import distance_m
from server.domain.geo import navigation_links
from server.tables import Courier, Event, Pickup, PickupOffer
from server.zones.service import directory

CLOSING_EVENTS = {"pickup.collected": "collected", "pickup.failed": "failed"}
# Where navigation_links' keys appear on the card, in order: the apps couriers in China use most first.
NAV_APPS = ("amap", "baidu", "apple", "geo")
# My day's counts, in the order the page shows them.
DAY_COUNTS = ("offered", "held", "collected", "failed")


def start_of_today(now: datetime, timezone: str = DEFAULT_TIMEZONE) -> datetime:
    """Midnight today in `timezone`, as an aware datetime (compared with the stored UTC times)."""
    tz = ZoneInfo(timezone)
    return datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)


async def courier_position(courier_id: int) -> tuple[float, float] | None:
    """The courier's last heartbeat position (lat, lng, WGS-84), if they ever sent one."""
    row = await Courier.select(Courier.last_lat, Courier.last_lng).where(Courier.id == courier_id).first()
    if row is None or row["last_lat"] is None or row["last_lng"] is None:
        return None
    return row["last_lat"], row["last_lng"]


def distance_to(position: tuple[float, float] | None, lat: float | None, lng: float | None) -> int | None:
    """Metres from the courier to a pickup, when both positions are known."""
    if position is None or lat is None or lng is None:
        return None
    return round(distance_m(position[0], position[1], lat, lng))


def navigation(pickup: dict[str, Any]) -> list[tuple[str, str]]:
    """(app, deep link) pairs for a held pickup (as the JSON API gives it), or none without coordinates."""
    address = pickup["address"]
    if address["lat"] is None or address["lng"] is None:
        return []
    name = f"{address['district']}{address['street']}{address['detail']}"
    links = navigation_links(address["lng"], address["lat"], name)
    return [(app, links[app]) for app in NAV_APPS]


async def my_day(courier_id: int, held: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Today's counts (offered, held, collected, failed) and the pickups closed today, newest first.

    `held` are the pickups the courier holds (open, whatever day they were accepted): they are the day's
    open work, shown soonest due first."""
    since = start_of_today(now)
    offered = await PickupOffer.count().where(
        (PickupOffer.courier == courier_id) & (PickupOffer.offered_at >= since)
    )
    closing = await Event.select(Event.pickup, Event.type, Event.at).where(
        (Event.actor_kind == "courier")
        & (Event.actor_id == courier_id)
        & Event.type.is_in(list(CLOSING_EVENTS))
        & (Event.at >= since)
    )
    closing.sort(key=lambda e: e["at"], reverse=True)
    ids = list(dict.fromkeys(e["pickup"] for e in closing))
    rows = (
        await Pickup.select(
            Pickup.id,
            Pickup.tracking_code,
            Pickup.district,
            Pickup.street,
            Pickup.parcel_count,
            Pickup.waybill_no,
            Pickup.failure_reason,
            Pickup.zone,
        ).where(Pickup.id.is_in(ids))
        if ids
        else []
    )
    by_id = {r["id"]: r for r in rows}
    closed: list[dict[str, Any]] = []
    for event in closing:
        # The latest closing of each pickup (failed, then collected on a new round: collected).
        pickup = by_id.pop(event["pickup"], None)
        if pickup is None:
            continue
        zone = directory.zones.get(pickup["zone"])
        closed.append(
            pickup
            | {"outcome": CLOSING_EVENTS[event["type"]], "at": event["at"], "zone": zone.code if zone else ""}
        )
    outcomes = [e["type"] for e in closing]
    return {
        "counts": dict(
            zip(
                DAY_COUNTS,
                (offered, len(held), outcomes.count("pickup.collected"), outcomes.count("pickup.failed")),
                strict=True,
            )
        ),
        "open": sorted(held, key=lambda p: (p["due_at"] is None, p["due_at"] or "")),
        "closed": closed,
    }
