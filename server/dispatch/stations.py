"""Figures rolled up the station tree (province → city → district → station)."""

from __future__ import annotations

from collections import Counter

from server.dispatch.schemas import StationSummary
from server.dispatch.scope import EVERYTHING, Scope
from server.tables import Pickup, Station, Zone


async def station_summary(scope: Scope = EVERYTHING) -> list[StationSummary]:
    """The tree with counts; a scoped dispatcher gets the subtrees they answer for."""
    stations = await Station.select(Station.id, Station.code, Station.name, Station.level, Station.parent)
    zone_station = {z["id"]: z["station"] for z in await Zone.select(Zone.id, Zone.station)}
    counts: dict[int, Counter[str]] = {s["id"]: Counter() for s in stations}
    rows = await Pickup.raw(
        "SELECT zone, status, COUNT(*) AS n FROM pickups WHERE zone IS NOT NULL GROUP BY zone, status"
    )
    for row in rows:
        station_id = zone_station.get(row["zone"])
        if station_id in counts:
            counts[station_id][row["status"]] += row["n"]
    children: dict[int | None, list[dict]] = {}  # type: ignore[type-arg]
    for s in stations:
        children.setdefault(s["parent"], []).append(s)

    def build(node: dict) -> StationSummary:  # type: ignore[type-arg]
        kids = [build(c) for c in children.get(node["id"], [])]
        total = Counter(counts[node["id"]])
        for kid in kids:
            total.update(kid.counts)
        return StationSummary(
            code=node["code"], name=node["name"], level=node["level"], counts=dict(total), children=kids
        )

    if scope.station_ids is None:
        roots = children.get(None, [])
    else:
        roots = [s for s in stations if s["id"] in scope.station_ids and s["parent"] not in scope.station_ids]
    return [build(root) for root in roots]
