"""Serviceability: can Lanshou pick up at this address or point, who would, how soon, in which slots.

The pinned interface other parts of intake build on (the booking form, the partner API, reschedules):
serviceability(), zone_slots(), slot_is_offered(), active_stop_ship() and stop_ship_error().
"""

from __future__ import annotations

from datetime import datetime

from server.domain.slots import is_slot, next_slots, parse_hhmm
from server.i18n import translate
from server.intake.schemas import ServiceabilityOut, SlotOut, StationRef, StopShipOut
from server.intake.stop_ship import active_stop_ship, stop_ship_error
from server.pickups.schemas import ZoneRef
from server.push.log import utcnow
from server.zones.service import ZoneInfo, directory

__all__ = [
    "ServiceabilityOut",
    "SlotOut",
    "StationRef",
    "StopShipOut",
    "active_stop_ship",
    "serviceability",
    "slot_is_offered",
    "slots_of",
    "stop_ship_error",
    "why_not",
    "zone_slots",
]


def slots_of(zone: ZoneInfo, now: datetime | None = None, count: int = 6) -> list[SlotOut]:
    """A zone's next `count` slots (not started yet), soonest first, in UTC."""
    opens, closes = parse_hhmm(zone.opens), parse_hhmm(zone.closes)
    if opens is None or closes is None:  # checked on the way in; a hand-edited row offers nothing
        return []
    pairs = next_slots(opens, closes, zone.slot_minutes, zone.timezone, now or utcnow(), count)
    return [SlotOut(start=s, end=e) for s, e in pairs]


async def zone_slots(zone_id: int, now: datetime | None = None, count: int = 6) -> list[SlotOut]:
    """The next slots of an active zone ([] for a zone that does not exist or is not active)."""
    zone = directory.zones.get(zone_id)
    return slots_of(zone, now, count) if zone else []


def slot_is_offered(zone_id: int, start: datetime, end: datetime, now: datetime | None = None) -> bool:
    """Whether [start, end) is one of the zone's slots, not over yet, within the week ahead (a slot
    already under way still counts). Aware datetimes in any offset."""
    zone = directory.zones.get(zone_id)
    if zone is None:
        return False
    opens, closes = parse_hhmm(zone.opens), parse_hhmm(zone.closes)
    if opens is None or closes is None:
        return False
    return is_slot(opens, closes, zone.slot_minutes, zone.timezone, start, end, now or utcnow())


async def serviceability(
    *,
    province: str,
    city: str,
    district: str,
    street: str = "",
    lng: float | None = None,
    lat: float | None = None,
    now: datetime | None = None,
) -> ServiceabilityOut:
    """Whether a pickup can be taken at this address / WGS-84 point now, and if so by whom and when.

    A stop-ship area in force refuses it first (whatever zone would serve it); then the zone is matched
    as a pickup create matches it (point, then street and district names).
    """
    now = now or utcnow()
    area = await active_stop_ship(
        province=province, city=city, district=district, street=street, lng=lng, lat=lat, now=now
    )
    zone = directory.match(lng, lat, [street, district])
    station = StationRef(id=zone.station_id, code=zone.station_code, name=zone.station_name) if zone else None
    zone_ref = ZoneRef(id=zone.id, code=zone.code, name=zone.name) if zone else None
    if area is not None:
        return ServiceabilityOut(
            serviceable=False,
            code="stop_ship_area",
            message=stop_ship_error(area).message,
            station=station,
            zone=zone_ref,
            time_limit_minutes=None,
            slots=[],
            stop_ship=area,
        )
    if zone is None:
        return ServiceabilityOut(
            serviceable=False,
            code="no_zone",
            message="no Lanshou zone covers this address yet",
            station=None,
            zone=None,
            time_limit_minutes=None,
            slots=[],
            stop_ship=None,
        )
    return ServiceabilityOut(
        serviceable=True,
        code=None,
        message=None,
        station=station,
        zone=zone_ref,
        time_limit_minutes=zone.sla_minutes,
        slots=slots_of(zone, now),
        stop_ship=None,
    )


def why_not(answer: ServiceabilityOut, lang: str) -> str | None:
    """Why an address is not served, in the page's language (None when it is served): for the booking
    form, which shows it next to the address."""
    if answer.stop_ship is not None:
        return translate(
            "serviceability.stop_ship", lang, name=answer.stop_ship.name, reason=answer.stop_ship.reason
        )
    if not answer.serviceable:
        return translate("serviceability.no_zone", lang)
    return None
