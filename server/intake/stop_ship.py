"""Stop-ship areas (停发区域): where no pickup is taken while an area is in force.

Areas are few and change rarely, and every pickup create asks about them: each process keeps them in
memory (polygons prepared for point tests), reloaded on a change here and, in the other processes, on
the `stop_ship.changed` event (server/app.py), as the zone directory is. Whether an area is in force is
decided per check from its validity period, so an area starts and ends on time without a reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import shapely
from piccolo.columns import Column
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from server.auth.principal import Principal
from server.dispatch.scope import Scope
from server.domain.geo import parse_area_geometry
from server.errors import ApiError, field_errors, not_found
from server.intake.schemas import ActiveStopShipOut, StopShipAreaOut, StopShipIn, StopShipOut
from server.push.log import Actor, unit_of_work, utcnow
from server.tables import Station, StopShipArea


@dataclass(frozen=True)
class _Area:
    id: int
    name: str
    reason: str
    station_id: int | None
    geometry: BaseGeometry | None
    geojson: dict[str, Any] | None
    names: frozenset[str]
    starts_at: datetime
    ends_at: datetime | None

    def in_force(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def out(self) -> StopShipOut:
        return StopShipOut(
            id=self.id, name=self.name, reason=self.reason, starts_at=self.starts_at, ends_at=self.ends_at
        )


class StopShipDirectory:
    def __init__(self) -> None:
        self.areas: list[_Area] = []
        self._by_name: dict[str, list[_Area]] = {}
        self._shaped: list[_Area] = []
        self._tree = shapely.STRtree([])
        self.loaded = False

    async def reload(self) -> None:
        now = utcnow()
        areas = []
        for row in await StopShipArea.select().order_by(StopShipArea.id):
            if row["ends_at"] is not None and row["ends_at"] <= now:
                continue  # over for good: an area is never reopened, only replaced
            geometry = shape(msgspec.json.decode(row["geojson"])) if row["geojson"] else None
            if geometry is not None:
                shapely.prepare(geometry)
            areas.append(
                _Area(
                    id=row["id"],
                    name=row["name"],
                    reason=row["reason"],
                    station_id=row["station"],
                    geometry=geometry,
                    geojson=msgspec.json.decode(row["geojson"]) if row["geojson"] else None,
                    names=frozenset(msgspec.json.decode(row["admin_areas"] or "[]")),
                    starts_at=row["starts_at"],
                    ends_at=row["ends_at"],
                )
            )
        by_name: dict[str, list[_Area]] = {}
        for area in areas:
            for name in area.names:
                by_name.setdefault(name, []).append(area)
        shaped = [a for a in areas if a.geometry is not None]
        # Swapped at once: a check in flight sees the old or the new areas, never a mix.
        self.areas, self._by_name, self._shaped = areas, by_name, shaped
        self._tree = shapely.STRtree([a.geometry for a in shaped])
        self.loaded = True

    async def covering(
        self, names: list[str], lng: float | None, lat: float | None, now: datetime
    ) -> _Area | None:
        """The oldest area in force that lists one of the names or whose polygon covers the point."""
        if not self.loaded:
            await self.reload()
        hits = [a for n in names for a in self._by_name.get(n, ())]
        if lng is not None and lat is not None and self._shaped:  # no drawn areas: no point to build
            # The tree narrows by bounding box; "intersects" for a point is "covers": a point on the
            # boundary is inside, as for zones.
            found = self._tree.query(shapely.Point(lng, lat), predicate="intersects")
            hits.extend(self._shaped[i] for i in found.tolist())
        in_force = [a for a in hits if a.in_force(now)]
        return min(in_force, key=lambda a: a.id) if in_force else None

    async def in_force(self, now: datetime) -> list[_Area]:
        if not self.loaded:
            await self.reload()
        return [a for a in self.areas if a.in_force(now)]


directory = StopShipDirectory()


async def active_stop_ship(
    *,
    province: str,
    city: str,
    district: str,
    street: str = "",
    lng: float | None = None,
    lat: float | None = None,
    now: datetime | None = None,
) -> StopShipOut | None:
    """The first area in force (oldest first) that the address or the WGS-84 point lies in, or None."""
    names = [n.strip() for n in (province, city, district, street) if n and n.strip()]
    area = await directory.covering(names, lng, lat, now or utcnow())
    return area.out() if area else None


def stop_ship_error(area: StopShipOut, field: str = "address") -> ApiError:
    """The 422 refusing a pickup inside a stop-ship area, with the area's reason."""
    return ApiError(
        422,
        "stop_ship_area",
        f"no pickups here for now: stop-ship area {area.name!r}: {area.reason}",
        field=field,
        reason=area.reason,
        stop_ship=msgspec.to_builtins(area),
    )


async def list_active() -> list[ActiveStopShipOut]:
    """The areas in force now (what a partner may check its addresses against)."""
    return [
        ActiveStopShipOut(
            id=a.id,
            name=a.name,
            reason=a.reason,
            geometry=a.geojson,
            admin_areas=sorted(a.names),
            starts_at=a.starts_at,
            ends_at=a.ends_at,
        )
        for a in await directory.in_force(utcnow())
    ]


# -- managing areas (admins anywhere, dispatchers in their station subtree) --------------------------


def _out(row: dict[str, Any], station_code: str | None, now: datetime) -> StopShipAreaOut:
    return StopShipAreaOut(
        id=row["id"],
        name=row["name"],
        reason=row["reason"],
        geometry=msgspec.json.decode(row["geojson"]) if row["geojson"] else None,
        admin_areas=msgspec.json.decode(row["admin_areas"] or "[]"),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        station=station_code,
        active=row["starts_at"] <= now and (row["ends_at"] is None or now < row["ends_at"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _checked(
    data: StopShipIn, principal: Principal, scope: Scope, now: datetime
) -> tuple[dict[str, Any], int | None, str | None]:
    """The column values for an area, its station's id and code; 422 for bad input, 403 out of scope."""
    errors: list[dict[str, str]] = []
    geojson = None
    if data.geometry is not None:
        geojson, problems = parse_area_geometry(data.geometry, data.datum, "geometry")
        errors.extend(problems)
    names = sorted({n.strip() for n in data.admin_areas if n.strip()})
    if data.geometry is None and not names:
        errors.append({"field": "geometry", "message": "give a geometry, admin_areas, or both"})
    starts_at = data.starts_at or now
    if data.ends_at is not None and data.ends_at <= starts_at:
        errors.append({"field": "ends_at", "message": "the area must end after it starts"})
    station_code = data.station
    if station_code is None and principal.role != "admin":
        station_id = principal.station_id  # a dispatcher's area is its own station's by default
        row = (
            await Station.select(Station.code).where(Station.id == station_id).first() if station_id else None
        )
        station_code = row["code"] if row else None
    else:
        station_id = None
        if station_code is not None:
            row = await Station.select(Station.id).where(Station.code == station_code).first()
            if row is None:
                errors.append({"field": "station", "message": f"unknown station {station_code!r}"})
            else:
                station_id = row["id"]
    if errors:
        raise field_errors(errors)
    if not scope.everything and not scope.covers_station(station_id):
        # Nationwide areas (no station) are the admins' alone.
        raise ApiError(
            403,
            "out_of_scope",
            "you may manage stop-ship areas only in the stations you answer for",
            field="station",
        )
    values = {
        "name": data.name.strip(),
        "reason": data.reason.strip(),
        "geojson": msgspec.json.encode(geojson).decode() if geojson else None,
        "admin_areas": msgspec.json.encode(names).decode(),
        "starts_at": starts_at,
        "ends_at": data.ends_at,
        "station": station_id,
    }
    return values, station_id, station_code


async def _owned(area_id: int, scope: Scope) -> dict[str, Any]:
    """The area if it exists and is in the caller's scope; otherwise not found, as for pickups."""
    row = await StopShipArea.select().where(StopShipArea.id == area_id).first()
    if row is None or (row["station"] is not None and not scope.covers_station(row["station"])):
        raise not_found("stop-ship area")
    if not scope.covers_station(row["station"]):  # nationwide: every dispatcher sees it, admins own it
        raise ApiError(403, "out_of_scope", "nationwide stop-ship areas are managed by admins")
    return row


def _actor(principal: Principal) -> Actor:
    return Actor(principal.role, principal.id)


async def create_area(principal: Principal, scope: Scope, data: StopShipIn) -> StopShipAreaOut:
    """Create an area and write its event (stop_ship.changed) in one transaction."""
    now = utcnow()
    values, _, station_code = await _checked(data, principal, scope, now)
    async with unit_of_work() as uow:
        inserted = await StopShipArea.insert(
            StopShipArea(**values, created_at=now, updated_at=now)
        ).returning(StopShipArea.id)
        area_id = inserted[0]["id"]
        uow.add("stop_ship.changed", actor=_actor(principal), data={"area": area_id, "change": "created"})
    await directory.reload()
    return _out({**values, "id": area_id, "created_at": now, "updated_at": now}, station_code, now)


async def update_area(principal: Principal, scope: Scope, area_id: int, data: StopShipIn) -> StopShipAreaOut:
    """Replace an area's definition (it must stay within the caller's scope)."""
    now = utcnow()
    row = await _owned(area_id, scope)  # not found before anything is said about the body
    values, _, station_code = await _checked(data, principal, scope, now)
    async with unit_of_work() as uow:
        changes: dict[Column | str, Any] = {k: v for k, v in values.items()}
        changes["updated_at"] = now
        await StopShipArea.update(changes).where(StopShipArea.id == area_id)
        uow.add("stop_ship.changed", actor=_actor(principal), data={"area": area_id, "change": "updated"})
    await directory.reload()
    return _out({**row, **values, "updated_at": now}, station_code, now)


async def end_area(principal: Principal, scope: Scope, area_id: int) -> StopShipAreaOut:
    """End an area now (an area already over keeps its end)."""
    now = utcnow()
    async with unit_of_work() as uow:
        row = await _owned(area_id, scope)
        ends_at = row["ends_at"] if row["ends_at"] is not None and row["ends_at"] <= now else now
        starts_at = min(row["starts_at"], ends_at)  # a future area ended before it starts: never in force
        await StopShipArea.update(
            {StopShipArea.ends_at: ends_at, StopShipArea.starts_at: starts_at, StopShipArea.updated_at: now}
        ).where(StopShipArea.id == area_id)
        uow.add("stop_ship.changed", actor=_actor(principal), data={"area": area_id, "change": "ended"})
    await directory.reload()
    station = await _station_code(row["station"])
    return _out({**row, "ends_at": ends_at, "starts_at": starts_at, "updated_at": now}, station, now)


async def _station_code(station_id: int | None) -> str | None:
    if station_id is None:
        return None
    row = await Station.select(Station.code).where(Station.id == station_id).first()
    return row["code"] if row else None


async def list_areas(scope: Scope, include_ended: bool = False) -> list[StopShipAreaOut]:
    """The areas in the caller's scope (nationwide ones too: they apply everywhere), newest first."""
    now = utcnow()
    rows = await StopShipArea.select(*StopShipArea.all_columns(), StopShipArea.station.code).order_by(
        StopShipArea.id, ascending=False
    )
    out = []
    for row in rows:
        if not scope.everything and row["station"] is not None and not scope.covers_station(row["station"]):
            continue
        area = _out(row, row["station.code"], now)
        if include_ended or area.ends_at is None or area.ends_at > now:
            out.append(area)
    return out
