"""Who a dispatcher answers for: the stations under their own in the province → city → district →
station tree, and those stations' zones. An admin, or a dispatcher with no station, answers for all.

Pickups that matched no zone belong to nobody's station yet: every dispatcher sees them, so that
someone places them.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from server.auth.principal import Principal
from server.tables import Courier, CourierZone, Station, Zone

# Stations and zones change rarely; a dispatcher's board refreshes often.
_CACHE_SECONDS = 10.0
_cache: dict[int, tuple[float, Scope]] = {}


class Scope(msgspec.Struct, frozen=True):
    station_ids: frozenset[int] | None = None  # None: everything
    zone_ids: frozenset[int] | None = None

    @property
    def everything(self) -> bool:
        return self.station_ids is None

    def covers_station(self, station_id: int | None) -> bool:
        return self.station_ids is None or station_id in self.station_ids

    def covers_zone(self, zone_id: int | None) -> bool:
        return self.zone_ids is None or zone_id is None or zone_id in self.zone_ids

    def pickup_filter(self, zone_column: Any) -> Any:
        """A WHERE clause for pickups in scope (None when there is nothing to filter)."""
        if self.zone_ids is None:
            return None
        return zone_column.is_in(sorted(self.zone_ids) or [-1]) | zone_column.is_null()


EVERYTHING = Scope()


async def scope_of(principal: Principal) -> Scope:
    if principal.role == "admin" or principal.station_id is None:
        return EVERYTHING
    hit = _cache.get(principal.station_id)
    if hit and time.monotonic() - hit[0] < _CACHE_SECONDS:
        return hit[1]
    stations = await Station.select(Station.id, Station.parent)
    children: dict[int | None, list[int]] = {}
    for s in stations:
        children.setdefault(s["parent"], []).append(s["id"])
    subtree, todo = set(), [principal.station_id]
    while todo:
        node = todo.pop()
        if node not in subtree:
            subtree.add(node)
            todo.extend(children.get(node, []))
    zones = await Zone.select(Zone.id).where(Zone.station.is_in(sorted(subtree)))
    scope = Scope(station_ids=frozenset(subtree), zone_ids=frozenset(z["id"] for z in zones))
    _cache[principal.station_id] = (time.monotonic(), scope)
    return scope


async def courier_in_scope(scope: Scope, courier_id: int) -> bool:
    """A courier is in scope if their station is, or any zone they work is (a courier who does not
    exist is in no narrower scope than everything)."""
    if scope.everything:
        return True
    assert scope.station_ids is not None and scope.zone_ids is not None
    user = await Courier.select(Courier.user.station).where(Courier.id == courier_id).first()
    if user is None:
        return False
    if user["user.station"] in scope.station_ids:
        return True
    zones = await CourierZone.select(CourierZone.zone).where(CourierZone.courier == courier_id)
    return any(z["zone"] in scope.zone_ids for z in zones)


def forget_scopes() -> None:
    _cache.clear()
