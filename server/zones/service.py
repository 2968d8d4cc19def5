"""Zones: the in-memory directory that matches a pickup to its zone, and GeoJSON import/export.

The directory holds a shapely STRtree over every active zone, rebuilt whenever zones change (in this
process directly, in the others through a `zones.changed` event on the push channel).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from piccolo.columns import Column
from shapely.geometry import shape

from server.dispatch.scope import EVERYTHING, Scope, forget_scopes
from server.domain.geo import (
    Datum,
    IndexedZone,
    ZoneFeature,
    ZoneIndex,
    parse_zone_collection,
    to_feature_collection,
)
from server.domain.slots import hours_problems
from server.errors import ApiError, field_errors
from server.push.log import Actor, unit_of_work
from server.tables import Station, Zone


class ZoneInfo(msgspec.Struct, frozen=True):
    id: int
    code: str
    name: str
    station_id: int
    dispatch_mode: str
    offer_ttl_s: int
    sla_minutes: float
    # Opening hours and slots (server/domain/slots.py), and where the zone's station is.
    opens: str = "08:00"
    closes: str = "20:00"
    slot_minutes: int = 120
    timezone: str = "Asia/Shanghai"
    station_code: str = ""
    station_name: str = ""


class ZoneDirectory:
    def __init__(self) -> None:
        self._index = ZoneIndex([])
        self.zones: dict[int, ZoneInfo] = {}

    async def reload(self) -> None:
        rows = await Zone.select(
            *Zone.all_columns(), Zone.station.code, Zone.station.name, Zone.station.timezone
        ).where(Zone.active == True)  # noqa: E712
        indexed = []
        zones = {}
        for row in rows:
            geometry = shape(msgspec.json.decode(row["geojson"])) if row["geojson"] else None
            admin_areas = msgspec.json.decode(row["admin_areas"] or "[]")
            indexed.append(IndexedZone(row["id"], row["priority"], geometry, admin_areas))
            zones[row["id"]] = ZoneInfo(
                id=row["id"],
                code=row["code"],
                name=row["name"],
                station_id=row["station"],
                dispatch_mode=row["dispatch_mode"],
                offer_ttl_s=row["offer_ttl_s"],
                sla_minutes=row["sla_minutes"],
                opens=row["opens"],
                closes=row["closes"],
                slot_minutes=row["slot_minutes"],
                timezone=row["station.timezone"],
                station_code=row["station.code"],
                station_name=row["station.name"],
            )
        # Swap both at once: a request in flight sees the old or the new directory, never a mix.
        self._index, self.zones = ZoneIndex(indexed), zones

    def match(self, lng: float | None, lat: float | None, names: Iterable[str]) -> ZoneInfo | None:
        names = [n for n in names if n]
        if lng is not None and lat is not None:
            zone_id = self._index.match(lng, lat, names)
        else:
            zone_id = self._index.match_admin_area(*names)
        return self.zones.get(zone_id) if zone_id is not None else None


directory = ZoneDirectory()


@dataclass(frozen=True)
class _ZoneRow:
    """A stored zone as to_feature_collection reads it."""

    code: str
    name: str
    priority: int
    admin_areas: tuple[str, ...]
    geojson: dict[str, Any] | None
    station: str
    extra: dict[str, Any]


async def export_zones(scope: Scope = EVERYTHING) -> dict[str, Any]:
    """The active zones in scope as a GeoJSON FeatureCollection (WGS-84), ordered by code: the same
    zones always export the same file (diffable, and stable across engines)."""
    query = Zone.select(*Zone.all_columns(), Zone.station.code).where(Zone.active == True)  # noqa: E712
    if scope.station_ids is not None:
        query = query.where(Zone.station.is_in(sorted(scope.station_ids) or [-1]))
    rows = await query.order_by(Zone.code)
    return to_feature_collection(
        [
            _ZoneRow(
                code=r["code"],
                name=r["name"],
                priority=r["priority"],
                admin_areas=tuple(msgspec.json.decode(r["admin_areas"] or "[]")),
                geojson=msgspec.json.decode(r["geojson"]) if r["geojson"] else None,
                station=r["station.code"],
                extra={
                    "dispatch_mode": r["dispatch_mode"],
                    "offer_ttl_s": r["offer_ttl_s"],
                    "sla_minutes": r["sla_minutes"],
                    "opens": r["opens"],
                    "closes": r["closes"],
                    "slot_minutes": r["slot_minutes"],
                },
            )
            for r in rows
        ]
    )


async def import_zones(
    collection: Any,
    *,
    datum: Datum,
    default_station: str | None,
    actor: Actor,
    deactivate_missing: bool,
    scope: Scope = EVERYTHING,
) -> dict[str, int]:
    """Create or update zones (by code) from a GeoJSON FeatureCollection; all or nothing.

    A dispatcher answering for part of the station tree may only create zones in those stations, edit
    zones that belong to them, and deactivate (replace) among them: anything else is refused whole.
    """
    features: list[ZoneFeature] = parse_zone_collection(collection, datum)  # raises GeoJSONError
    check_zone_extras(features)
    stations = {r["code"]: r["id"] for r in await Station.select(Station.id, Station.code)}
    errors = []
    for i, feature in enumerate(features):
        code = feature.station or default_station
        if code is None:
            errors.append({"field": f"features[{i}].properties.station", "message": "no station given"})
        elif code not in stations:
            errors.append(
                {"field": f"features[{i}].properties.station", "message": f"unknown station {code!r}"}
            )
    if errors:
        raise field_errors(errors)
    created = updated = deactivated = 0
    async with unit_of_work() as uow:
        # One read, inside the transaction: the scope check and the writes see the same zones.
        rows = await Zone.select(Zone.id, Zone.code, Zone.station)
        existing = {r["code"]: r["id"] for r in rows}
        owners = {r["code"]: r["station"] for r in rows}
        outside = _outside_scope(features, default_station, stations, owners, scope)
        if outside:  # raised inside the unit of work: it rolls back before anything is written
            raise ApiError(
                403,
                "out_of_scope",
                "you may change zones only in the stations you answer for; nothing was changed",
                errors=outside,
            )
        for feature in features:
            values: dict[Column | str, Any] = {
                Zone.name: feature.name,
                Zone.station: stations[feature.station or default_station or ""],
                Zone.geojson: msgspec.json.encode(feature.geojson).decode() if feature.geojson else None,
                Zone.admin_areas: msgspec.json.encode(list(feature.admin_areas)).decode(),
                Zone.priority: feature.priority,
                Zone.active: True,
            }
            for key, column in (
                ("dispatch_mode", Zone.dispatch_mode),
                ("offer_ttl_s", Zone.offer_ttl_s),
                ("sla_minutes", Zone.sla_minutes),
                ("opens", Zone.opens),
                ("closes", Zone.closes),
                ("slot_minutes", Zone.slot_minutes),
            ):
                if key in feature.extra:
                    values[column] = feature.extra[key]
            if feature.code in existing:
                await Zone.update(values).where(Zone.id == existing[feature.code])
                updated += 1
            else:
                await Zone.insert(
                    Zone(
                        code=feature.code,
                        **{c._meta.name: v for c, v in values.items() if isinstance(c, Column)},
                    )
                )
                created += 1
        if deactivate_missing:
            # Only among the zones this dispatcher answers for: another station's zones are not theirs
            # to switch off, whatever this file leaves out.
            missing = {c for c in existing if scope.covers_station(owners[c])} - {f.code for f in features}
            if missing:
                await Zone.update({Zone.active: False}).where(Zone.code.is_in(list(missing)))
                deactivated = len(missing)
        uow.add("zones.changed", actor=actor, data={"created": created, "updated": updated})
    await directory.reload()
    forget_scopes()
    return {"created": created, "updated": updated, "deactivated": deactivated}


def _outside_scope(
    features: list[ZoneFeature],
    default_station: str | None,
    stations: dict[str, int],
    owners: dict[str, int],
    scope: Scope,
) -> list[dict[str, str]]:
    """The features that would create a zone in, move one into, or edit one of a station the importer
    does not answer for."""
    outside = []
    for i, feature in enumerate(features):
        code = feature.station or default_station or ""
        if not scope.covers_station(stations[code]):
            outside.append(
                {
                    "field": f"features[{i}].properties.station",
                    "message": f"station {code!r} is outside the stations you answer for",
                }
            )
        elif feature.code in owners and not scope.covers_station(owners[feature.code]):
            outside.append(
                {
                    "field": f"features[{i}].properties.code",
                    "message": f"zone {feature.code!r} belongs to a station outside yours",
                }
            )
    return outside


# Bounds of a zone's settings: a value beyond them is a mistake, and an unbounded one was accepted and
# then made every create in the zone fail (a TTL too large for a date, an integer too large to store).
OFFER_TTL_S = (1, 86_400)  # up to a day, whole seconds
SLA_MINUTES = (0.0, 43_200.0)  # more than 0, at most 30 days; fractions allowed (express zones, tests)


def check_zone_extras(features: list[ZoneFeature]) -> None:
    errors = []
    for i, f in enumerate(features):
        path = f"features[{i}].properties"
        mode = f.extra.get("dispatch_mode")
        if mode is not None and mode not in ("grab", "assign"):
            errors.append({"field": f"{path}.dispatch_mode", "message": "grab or assign"})
        ttl = f.extra.get("offer_ttl_s")
        if ttl is not None and (
            not isinstance(ttl, int) or isinstance(ttl, bool) or not OFFER_TTL_S[0] <= ttl <= OFFER_TTL_S[1]
        ):
            errors.append(
                {
                    "field": f"{path}.offer_ttl_s",
                    "message": f"a whole number of seconds from {OFFER_TTL_S[0]} to {OFFER_TTL_S[1]}",
                }
            )
        sla = f.extra.get("sla_minutes")
        if sla is not None and (
            not isinstance(sla, int | float)
            or isinstance(sla, bool)
            or not SLA_MINUTES[0] < sla <= SLA_MINUTES[1]
        ):
            errors.append(
                {
                    "field": f"{path}.sla_minutes",
                    "message": f"a number of minutes above 0 and at most {SLA_MINUTES[1]:.0f}",
                }
            )
        if any(k in f.extra for k in ("opens", "closes", "slot_minutes")):
            # Checked together (closing after opening), each defaulting to the column's default.
            errors.extend(
                hours_problems(
                    f.extra.get("opens", "08:00"),
                    f.extra.get("closes", "20:00"),
                    f.extra.get("slot_minutes", 120),
                    path,
                )
            )
    if errors:
        raise ApiError(422, "validation_error", "invalid zone settings", errors=errors)
