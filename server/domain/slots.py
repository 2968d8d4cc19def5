"""Pickup time slots: a zone's opening hours cut into slots, in its station's timezone, answered in UTC.

Pure arithmetic, no I/O. A zone opens at `opens` and closes at `closes` (local wall-clock times, the
same every day, opens < closes) and is cut into slots of `slot_minutes` from opening; a last slot that
would run past closing ends at closing instead. The customer picks one; the courier comes within it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# How far ahead slots are offered and accepted: a week is what a returns pickup is planned within.
HORIZON_DAYS = 7
SLOT_MINUTES = (15, 720)  # a quarter of an hour to half a day
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(text: str) -> time | None:
    """ "08:30" → time(8, 30); None for anything else (the caller reports it against its field)."""
    match = _HHMM.match(text) if isinstance(text, str) else None
    return time(int(match.group(1)), int(match.group(2))) if match else None


def hours_problems(opens: object, closes: object, slot_minutes: object, path: str) -> list[dict[str, str]]:
    """Field errors for a zone's hours ({path}.opens, .closes, .slot_minutes); [] when they are sound."""
    errors = []
    start = parse_hhmm(opens) if isinstance(opens, str) else None
    end = parse_hhmm(closes) if isinstance(closes, str) else None
    if start is None:
        errors.append({"field": f"{path}.opens", "message": "a time of day as HH:MM, e.g. 08:00"})
    if end is None:
        errors.append({"field": f"{path}.closes", "message": "a time of day as HH:MM, e.g. 20:00"})
    if start is not None and end is not None and end <= start:
        errors.append({"field": f"{path}.closes", "message": "closing must come after opening"})
    if (
        not isinstance(slot_minutes, int)
        or isinstance(slot_minutes, bool)
        or not SLOT_MINUTES[0] <= slot_minutes <= SLOT_MINUTES[1]
    ):
        errors.append(
            {
                "field": f"{path}.slot_minutes",
                "message": f"a whole number of minutes from {SLOT_MINUTES[0]} to {SLOT_MINUTES[1]}",
            }
        )
    return errors


def _day_slots(
    day: date, opens: time, closes: time, slot_minutes: int, tz: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    start = datetime.combine(day, opens, tzinfo=tz)
    close = datetime.combine(day, closes, tzinfo=tz)
    step = timedelta(minutes=slot_minutes)
    slots = []
    while start < close:
        end = min(start + step, close)
        # Wall-clock arithmetic in the zone, then UTC: a DST change shortens or lengthens that one slot.
        slots.append((start.astimezone(UTC), end.astimezone(UTC)))
        start = end
    return slots


def day_slots_around(
    opens: time, closes: time, slot_minutes: int, tz: str, now: datetime, days: int = HORIZON_DAYS
) -> list[tuple[datetime, datetime]]:
    """Every slot from the local day of `now` through `days` more days (past ones included), in UTC."""
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    out: list[tuple[datetime, datetime]] = []
    for offset in range(days + 1):
        out.extend(_day_slots(today + timedelta(days=offset), opens, closes, slot_minutes, zone))
    return out


def next_slots(
    opens: time, closes: time, slot_minutes: int, tz: str, now: datetime, count: int
) -> list[tuple[datetime, datetime]]:
    """The next `count` slots that have not started yet, soonest first, as UTC (start, end) pairs.

    A slot already under way is not offered: the courier would have less than the slot to come.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    upcoming = [s for s in day_slots_around(opens, closes, slot_minutes, tz, now) if s[0] >= now]
    return upcoming[:count]


def is_slot(
    opens: time, closes: time, slot_minutes: int, tz: str, start: datetime, end: datetime, now: datetime
) -> bool:
    """Whether [start, end) is one of the zone's slots, not over yet, and within the horizon.

    A slot under way still counts (a reschedule sent a minute after the slot began is not refused for
    it); the offer list (next_slots) leaves those out.
    """
    if start.tzinfo is None or end.tzinfo is None or now.tzinfo is None:
        return False
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= now:
        return False
    return (start, end) in set(day_slots_around(opens, closes, slot_minutes, tz, now))
