"""A day's figures per station, rolled up the tree (province → city → district → station).

Read-only. What the console's stations page shows, and the base the reports will grow from (volumes by
day and week, alert → accept → collect times): every figure but "open now" is counted from the event
log over a time window [since, until), so a report asks the same query for other windows.

- open: pickups open now (pending, offered, accepted, contacted), from the pickups' status index.
- created, collected, failed, cancelled, breached: pickups with a pickup.created, pickup.collected,
  pickup.failed, pickup.cancelled or pickup.sla_breached event in the window (each pickup once per kind:
  one failed twice today is one failed pickup).
- time to accept and to collect: from the pickup's creation to its first pickup.accepted (a courier
  accepting; a dispatcher's assignment is not an acceptance) or pickup.collected event in the window,
  over the pickups that have one there. Kept as a count and a sum of seconds, so that a parent's average
  is its stations' pickups' average, not an average of averages.

A pickup counts for the station of its zone (its current one); pickups in no zone belong to no station.
"Today" starts at midnight in each station's own time zone.

Two grouped queries whatever the size of the tree or the dispatcher's scope (one more per extra time
zone among the stations), plus the stations and zones. The event log has no index on its time: today's events are found from the
first event id of the day (events get increasing ids as they are written), looked up once a day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any

import msgspec

from server.dispatch.scope import EVERYTHING, Scope
from server.domain.pickup_states import OPEN_STATES
from server.pages import station_timezone
from server.tables import Event, Pickup, Station, Zone

LEVELS = ("province", "city", "district", "station")
# Event type → the figure it counts.
COUNTED_EVENTS = {
    "pickup.created": "created",
    "pickup.collected": "collected",
    "pickup.failed": "failed",
    "pickup.cancelled": "cancelled",
    "pickup.sla_breached": "breached",
}
# Event type → the duration (from the pickup's creation) it ends.
TIMED_EVENTS = {"pickup.accepted": "accept", "pickup.collected": "collect"}
# How far an event's time may lag its id: the first id of a day is looked for this much earlier.
EVENT_ORDER_SLACK = timedelta(hours=1)


class Figures(msgspec.Struct, kw_only=True):
    open: int = 0
    created: int = 0
    collected: int = 0
    failed: int = 0
    cancelled: int = 0
    breached: int = 0
    accepted_n: int = 0  # pickups accepted in the window, and their seconds from creation summed
    accept_seconds: float = 0.0
    collected_n: int = 0  # the same for collection (collected_n == collected)
    collect_seconds: float = 0.0

    def add(self, other: Figures) -> None:
        for field in self.__struct_fields__:
            setattr(self, field, getattr(self, field) + getattr(other, field))

    @property
    def avg_accept_seconds(self) -> float | None:
        return self.accept_seconds / self.accepted_n if self.accepted_n else None

    @property
    def avg_collect_seconds(self) -> float | None:
        return self.collect_seconds / self.collected_n if self.collected_n else None


class StationNode(msgspec.Struct, kw_only=True):
    id: int
    code: str
    name: str
    level: str
    timezone: str
    figures: Figures
    children: list[StationNode] = []


def start_of_day(now: datetime, timezone: str) -> datetime:
    """Midnight of `now`'s date in `timezone` (an aware datetime)."""
    tz = station_timezone(timezone)
    return datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)


# -- the event log's first id of a window ----------------------------------------------------------------

_first_ids: dict[datetime, int] = {}


async def first_event_id_since(since: datetime) -> int:
    """An event id at or below the first one written at or after `since`, remembered per `since` (a new
    event always gets a higher id, so the answer stays right as the log grows)."""
    hit = _first_ids.get(since)
    if hit is not None:
        return hit
    rows = await Event.raw("SELECT MIN(id) AS id FROM events WHERE at >= {}", since - EVENT_ORDER_SLACK)
    first = rows[0]["id"] if rows and rows[0]["id"] is not None else None
    if first is None:  # nothing yet: whatever comes next
        rows = await Event.raw("SELECT MAX(id) AS id FROM events")
        first = (rows[0]["id"] or 0) + 1 if rows else 1
    if len(_first_ids) > 64:  # yesterday's days are not asked again
        _first_ids.clear()
    _first_ids[since] = first
    return first


def forget_first_event_ids() -> None:
    _first_ids.clear()


# -- the grouped queries -----------------------------------------------------------------------------------


def _postgres() -> bool:
    return Event._meta.db.engine_type in ("postgres", "cockroach")


def _seconds_between(later: str, earlier: str) -> str:
    if _postgres():
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    # SQLite keeps timestamps as text ("2026-11-26 05:11:42.5+00:00"), which julianday reads.
    return f"(julianday({later}) - julianday({earlier})) * 86400.0"


def _placeholders(values: Iterable[Any]) -> tuple[str, list[Any]]:
    args = list(values)
    return ", ".join("{}" for _ in args), args


async def event_figures(
    since: datetime, until: datetime | None, zone_ids: Iterable[int] | None
) -> dict[int, Figures]:
    """Per zone: the counted events and timed durations of the window (`zone_ids` None: every zone)."""
    types, type_args = _placeholders([*COUNTED_EVENTS, *TIMED_EVENTS.keys() - COUNTED_EVENTS.keys()])
    args: list[Any] = [await first_event_id_since(since), since]
    window = "e.id >= {} AND e.at >= {}"
    if until is not None:
        window += " AND e.at < {}"
        args.append(until)
    zone_filter = ""
    if zone_ids is not None:
        zones, zone_args = _placeholders(sorted(zone_ids) or [-1])
        # "+": not through the zone index, which would read all of those zones' pickups ever made.
        zone_filter = f" AND +p.zone IN ({zones})"
    else:
        zone_args = []
    # Without statistics SQLite would rather walk the events_pickup index (it is in GROUP BY order) over
    # the whole log than read the window's id range; NOT INDEXED leaves it the range.
    events = "events e" if _postgres() else "events e NOT INDEXED"
    sql = (
        "SELECT p.zone AS zone, f.type AS type, COUNT(*) AS n, "
        f"SUM({_seconds_between('f.at', 'p.created_at')}) AS seconds "
        f"FROM (SELECT e.pickup AS pickup, e.type AS type, MIN(e.at) AS at FROM {events} "
        f"WHERE {window} AND e.type IN ({types}) GROUP BY e.pickup, e.type) f "
        f"JOIN pickups p ON p.id = f.pickup WHERE p.zone IS NOT NULL{zone_filter} "
        "GROUP BY p.zone, f.type"
    )
    out: dict[int, Figures] = defaultdict(Figures)
    for row in await Event.raw(sql, *args, *type_args, *zone_args):
        figures = out[row["zone"]]
        if row["type"] in COUNTED_EVENTS:
            setattr(figures, COUNTED_EVENTS[row["type"]], row["n"])
        timed = TIMED_EVENTS.get(row["type"])
        if timed == "accept":
            figures.accepted_n, figures.accept_seconds = row["n"], float(row["seconds"] or 0)
        elif timed == "collect":
            figures.collected_n, figures.collect_seconds = row["n"], float(row["seconds"] or 0)
    return out


async def open_counts() -> dict[int, int]:
    """Open pickups per zone, now (through the status index; the caller keeps the zones it wants)."""
    states, args = _placeholders(sorted(OPEN_STATES))
    rows = await Pickup.raw(
        f"SELECT zone, COUNT(*) AS n FROM pickups WHERE status IN ({states}) AND zone IS NOT NULL "
        "GROUP BY zone",
        *args,
    )
    return {r["zone"]: r["n"] for r in rows}


# -- the tree ----------------------------------------------------------------------------------------------


async def station_rollup(scope: Scope = EVERYTHING, now: datetime | None = None) -> list[StationNode]:
    """The station tree with today's figures per node, each node's summed over its subtree.

    A scoped dispatcher gets their stations and, above them, the chain of their ancestors up to the
    root, whose figures then sum only what the dispatcher answers for."""
    now = now or datetime.now().astimezone()
    stations = await Station.select(
        Station.id, Station.code, Station.name, Station.level, Station.parent, Station.timezone
    )
    by_id = {s["id"]: s for s in stations}
    zones = await Zone.select(Zone.id, Zone.station)
    if scope.zone_ids is not None:
        zones = [z for z in zones if z["id"] in scope.zone_ids]
    zone_station = {z["id"]: z["station"] for z in zones}

    # One window per time zone among the stations (in practice one: Asia/Shanghai).
    zones_by_tz: dict[str, list[int]] = defaultdict(list)
    for zone_id, station_id in zone_station.items():
        zones_by_tz[by_id[station_id]["timezone"]].append(zone_id)
    # Every zone's figures are read and those out of scope dropped here: a few hundred rows at most,
    # where filtering by zone in SQL would lead the planners to every pickup those zones ever had.
    per_zone: dict[int, Figures] = {}
    for tz, zone_ids in zones_by_tz.items():
        found = await event_figures(start_of_day(now, tz), None, zone_ids if len(zones_by_tz) > 1 else None)
        per_zone.update({z: f for z, f in found.items() if z in zone_station})
    for zone_id, n in (await open_counts()).items():
        if zone_id in zone_station:
            per_zone.setdefault(zone_id, Figures()).open = n

    own: dict[int, Figures] = defaultdict(Figures)
    for zone_id, figures in per_zone.items():
        own[zone_station[zone_id]].add(figures)

    # What to show: the stations in scope and their ancestors.
    shown: set[int] = set()
    for s in stations:
        if scope.covers_station(s["id"]):
            node: int | None = s["id"]
            while node is not None and node not in shown:
                shown.add(node)
                node = by_id[node]["parent"]
    children: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for s in sorted(stations, key=lambda s: s["code"]):
        if s["id"] in shown:
            children[s["parent"]].append(s)

    def build(s: dict[str, Any]) -> StationNode:
        kids = [build(c) for c in children.get(s["id"], [])]
        total = Figures()
        total.add(own.get(s["id"], Figures()))
        for kid in kids:
            total.add(kid.figures)
        return StationNode(
            id=s["id"],
            code=s["code"],
            name=s["name"],
            level=s["level"],
            timezone=s["timezone"],
            figures=total,
            children=kids,
        )

    return [build(root) for root in children.get(None, [])]
