"""The console's couriers page behind the scenes: the list a dispatcher reads (filtered like the board),
and the changes they make to a courier of their stations: duty, zones, capacity.

Every change is an event with the dispatcher as its actor, written in the change's own transaction
(server/push/log.py). A courier outside the dispatcher's stations is "not found", as on the API
(server/admin/service.py); a zone outside them is refused without writing anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from server.console.queries import last_accepts
from server.courier.duty import change_duty
from server.courier.schemas import DutyOut
from server.dispatch.offers import open_load
from server.dispatch.scope import Scope, courier_in_scope
from server.domain.contact import mask_phone
from server.errors import ApiError, not_found
from server.push.log import Actor, unit_of_work
from server.tables import Courier, CourierZone, Station, Zone
from server.zones.service import directory

# The courier app sends a heartbeat every minute while on duty (pwa/static/courier.js, setInterval
# heartbeat 60_000); three missed in a row is a phone that is off, out of coverage or closed.
HEARTBEAT_INTERVAL_S = 60
STALE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S
# A person reads the first screens; a province's admin narrows the list with the filters.
LIST_LIMIT = 300
CAPACITY_MIN, CAPACITY_MAX = 1, 50
ROLES = ("primary", "backup")


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    zone_id: int
    code: str
    name: str
    role: str
    station_id: int
    station_name: str
    in_scope: bool  # the dispatcher may change it


class CourierEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    username: str
    phone: str  # masked: the domain's visibility rule shows staff no phone numbers in full
    station_code: str | None
    station_name: str | None
    zones: list[Membership]
    on_duty: bool
    capacity: int
    open_count: int
    last_seen_at: datetime | None
    last_lat: float | None
    last_lng: float | None
    position_zone: str | None  # the zone the last position lies in, if any
    last_accept_at: datetime | None

    def stale(self, now: datetime) -> bool:
        """On duty, yet no heartbeat for STALE_AFTER_S (or never): the phone is not answering. Off duty
        the app sends none, so silence means nothing there."""
        if not self.on_duty:
            return False
        return self.last_seen_at is None or (now - self.last_seen_at).total_seconds() > STALE_AFTER_S

    @property
    def full(self) -> bool:
        return self.open_count >= self.capacity


class StationRef(msgspec.Struct, frozen=True):
    id: int
    code: str
    name: str
    level: str
    depth: int  # below the top of what the dispatcher answers for, for indenting the filter's options


class Filters(msgspec.Struct, frozen=True, kw_only=True):
    station: str | None = None
    zone: str | None = None
    q: str = ""


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # type: ignore[no-any-return]


# -- reading ---------------------------------------------------------------------------------------------


async def stations_in_scope(scope: Scope) -> list[StationRef]:
    """The station tree within the dispatcher's reach, in tree order (for the station filter)."""
    rows = await Station.select(Station.id, Station.code, Station.name, Station.level, Station.parent)
    children: dict[int | None, list[dict[str, Any]]] = {}
    for r in rows:
        children.setdefault(r["parent"], []).append(r)
    out: list[StationRef] = []

    def walk(parent: int | None, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: r["code"]):
            inside = scope.covers_station(r["id"])
            if inside:
                out.append(StationRef(r["id"], r["code"], r["name"], r["level"], depth))
            walk(r["id"], depth + 1 if inside else depth)

    walk(None, 0)
    return out


def zones_in_scope(scope: Scope, station_ids: set[int] | None = None) -> list[Any]:
    """Active zones the dispatcher may put couriers on (of some stations, when given), by code."""
    return sorted(
        (
            z
            for z in directory.zones.values()
            if scope.covers_station(z.station_id) and (station_ids is None or z.station_id in station_ids)
        ),
        key=lambda z: z.code,
    )


def _subtree(stations: list[StationRef], code: str) -> set[int] | None:
    """The ids of a station and those under it (within reach); None when no such station is in reach."""
    by_code = {s.code: s for s in stations}
    top = by_code.get(code)
    if top is None:
        return None
    # stations come in tree order: what follows the top, deeper than it, is under it
    index = stations.index(top)
    ids = {top.id}
    for s in stations[index + 1 :]:
        if s.depth <= top.depth:
            break
        ids.add(s.id)
    return ids


async def _candidate_ids(scope: Scope, filters: Filters, stations: list[StationRef]) -> list[int] | None:
    """Courier ids the filters and the scope allow (None: no narrowing at all)."""
    allowed: set[int] | None = None

    async def matching(station_ids: set[int] | None, zone_ids: set[int] | None) -> set[int]:
        found: set[int] = set()
        if zone_ids is not None:
            rows = await CourierZone.select(CourierZone.courier).where(
                CourierZone.zone.is_in(sorted(zone_ids) or [-1])
            )
            found |= {r["courier"] for r in rows}
        if station_ids is not None:
            rows = await Courier.select(Courier.id).where(
                Courier.user.station.is_in(sorted(station_ids) or [-1])
            )
            found |= {r["id"] for r in rows}
        return found

    if not scope.everything:
        assert scope.station_ids is not None and scope.zone_ids is not None
        allowed = await matching(set(scope.station_ids), set(scope.zone_ids))
    if filters.station:
        subtree = _subtree(stations, filters.station) or set()
        # the subtree's zones, inactive ones included: a courier still listed on one belongs there
        zone_rows = await Zone.select(Zone.id).where(Zone.station.is_in(sorted(subtree) or [-1]))
        zone_ids = {r["id"] for r in zone_rows}
        found = await matching(subtree, zone_ids)
        allowed = found if allowed is None else allowed & found
    if filters.zone:
        zone = await Zone.select(Zone.id).where(Zone.code == filters.zone).first()
        found = await matching(None, {zone["id"]} if zone else set())
        allowed = found if allowed is None else allowed & found
    return None if allowed is None else sorted(allowed)


_COLUMNS = (
    Courier.id,
    Courier.on_duty,
    Courier.capacity,
    Courier.last_seen_at,
    Courier.last_lat,
    Courier.last_lng,
    Courier.user._.display_name.as_alias("name"),
    Courier.user._.username.as_alias("username"),
    Courier.user._.phone.as_alias("phone"),
    Courier.user._.station.as_alias("station"),
)


async def list_couriers(
    scope: Scope, filters: Filters, *, limit: int = LIST_LIMIT, stations: list[StationRef] | None = None
) -> tuple[list[CourierEntry], int]:
    """Active couriers within reach that pass the filters, on duty first then by name (at most `limit`),
    and how many passed."""
    stations = stations if stations is not None else await stations_in_scope(scope)
    ids = await _candidate_ids(scope, filters, stations)
    if ids is not None and not ids:
        return [], 0
    query = Courier.select(*_COLUMNS).where(Courier.user._.active == True)  # noqa: E712
    if ids is not None:
        query = query.where(Courier.id.is_in(ids))
    rows = await query
    needle = filters.q.strip().casefold()
    if needle:
        rows = [r for r in rows if needle in r["name"].casefold() or needle in r["username"].casefold()]
    rows.sort(key=lambda r: (not r["on_duty"], r["name"], r["id"]))
    total = len(rows)
    rows = rows[:limit]
    return await _entries(scope, rows), total


async def courier_entry(scope: Scope, courier_id: int) -> CourierEntry | None:
    """One courier as the list shows them; None when they do not exist or are out of reach."""
    if not await courier_in_scope(scope, courier_id):
        return None
    rows = await Courier.select(*_COLUMNS).where(Courier.id == courier_id)
    entries = await _entries(scope, rows)
    return entries[0] if entries else None


async def _entries(scope: Scope, rows: list[dict[str, Any]]) -> list[CourierEntry]:
    ids = [r["id"] for r in rows]
    if not ids:
        return []
    load = await open_load(ids)
    accepts = await last_accepts(ids)
    members = await CourierZone.select(
        CourierZone.courier,
        CourierZone.zone,
        CourierZone.role,
        CourierZone.zone._.code.as_alias("code"),
        CourierZone.zone._.name.as_alias("name"),
        CourierZone.zone._.station.as_alias("station"),
        CourierZone.zone._.station._.name.as_alias("station_name"),
    ).where(CourierZone.courier.is_in(ids))
    zones: dict[int, list[Membership]] = {}
    for m in sorted(members, key=lambda m: (m["role"] != "primary", m["code"])):
        zones.setdefault(m["courier"], []).append(
            Membership(
                zone_id=m["zone"],
                code=m["code"],
                name=m["name"],
                role=m["role"],
                station_id=m["station"],
                station_name=m["station_name"] or "",
                in_scope=scope.covers_station(m["station"]),
            )
        )
    station_ids = sorted({r["station"] for r in rows if r["station"] is not None})
    stations = {
        s["id"]: s
        for s in (
            await Station.select(Station.id, Station.code, Station.name).where(Station.id.is_in(station_ids))
            if station_ids
            else []
        )
    }
    out = []
    for r in rows:
        lat, lng = r["last_lat"], r["last_lng"]
        where = directory.match(lng, lat, []) if lat is not None and lng is not None else None
        station = stations.get(r["station"])
        out.append(
            CourierEntry(
                id=r["id"],
                name=r["name"],
                username=r["username"],
                phone=mask_phone(r["phone"]) if r["phone"] else "",
                station_code=station["code"] if station else None,
                station_name=station["name"] if station else None,
                zones=zones.get(r["id"], []),
                on_duty=bool(r["on_duty"]),
                capacity=r["capacity"],
                open_count=load.get(r["id"], 0),
                last_seen_at=_utc(r["last_seen_at"]),
                last_lat=lat,
                last_lng=lng,
                position_zone=where.name if where else None,
                last_accept_at=accepts.get(r["id"]),
            )
        )
    return out


# -- changing --------------------------------------------------------------------------------------------


async def _must_reach(scope: Scope, courier_id: int) -> None:
    if not await courier_in_scope(scope, courier_id) or not await Courier.exists().where(
        Courier.id == courier_id
    ):
        raise not_found("courier", field="courier_id")


async def set_duty(actor: Actor, scope: Scope, courier_id: int, on_duty: bool) -> DutyOut:
    """Put a courier on or off duty, as the courier app's own switch does (server/courier/duty.py): going
    on duty puts them in front of what waits; going off duty leaves the pickups they hold with them."""
    await _must_reach(scope, courier_id)
    return await change_duty(courier_id, on_duty, actor)


async def held_count(courier_id: int) -> int:
    return (await open_load([courier_id])).get(courier_id, 0)


class ZoneChoice(msgspec.Struct, frozen=True):
    code: str
    role: str  # primary | backup


async def set_zones(
    actor: Actor, scope: Scope, courier_id: int, wanted: list[ZoneChoice]
) -> list[Membership]:
    """Make the courier's zones within the dispatcher's stations exactly `wanted`; their zones of other
    stations stay as they are (another dispatcher answers for those). 422 (nothing written) for a zone
    that does not exist, is inactive, is out of reach, or comes twice."""
    await _must_reach(scope, courier_id)
    codes = [w.code for w in wanted]
    rows = await Zone.select(Zone.id, Zone.code, Zone.station, Zone.active).where(
        Zone.code.is_in(codes or ["\0"])
    )
    known = {r["code"]: r for r in rows}
    errors = []
    seen: set[str] = set()
    for i, w in enumerate(wanted):
        zone = known.get(w.code)
        if w.role not in ROLES:
            errors.append(
                {"field": f"zones[{i}].role", "message": f"primary or backup: {w.role!r}", "code": "role"}
            )
        elif w.code in seen:
            errors.append(
                {"field": f"zones[{i}].zone", "message": f"zone {w.code!r} is listed twice", "code": "twice"}
            )
        elif zone is None or not zone["active"]:
            errors.append(
                {"field": f"zones[{i}].zone", "message": f"unknown zone {w.code!r}", "code": "unknown"}
            )
        elif not scope.covers_station(zone["station"]):
            errors.append(
                {
                    "field": f"zones[{i}].zone",
                    "message": f"zone {w.code!r} belongs to a station outside yours",
                    "code": "out_of_scope",
                }
            )
        seen.add(w.code)
    if errors:
        raise ApiError(422, "invalid_zones", "; ".join(e["message"] for e in errors), errors=errors)
    async with unit_of_work() as uow:
        current = await CourierZone.select(
            CourierZone.id, CourierZone.zone, CourierZone.role, CourierZone.zone._.station.as_alias("station")
        ).where(CourierZone.courier == courier_id)
        ours = [c["id"] for c in current if scope.covers_station(c["station"])]
        if ours:
            await CourierZone.delete().where(CourierZone.id.is_in(ours))
        if wanted:
            await CourierZone.insert(
                *(CourierZone(courier=courier_id, zone=known[w.code]["id"], role=w.role) for w in wanted)
            )
        after = await CourierZone.select(CourierZone.role, CourierZone.zone._.code.as_alias("code")).where(
            CourierZone.courier == courier_id
        )
        uow.add(
            "courier.zones",
            actor=actor,
            to=[courier_id],
            data={
                "zones": [
                    {"zone": a["code"], "role": a["role"]} for a in sorted(after, key=lambda a: a["code"])
                ]
            },
        )
    entry = await courier_entry(scope, courier_id)
    return entry.zones if entry else []


async def set_capacity(actor: Actor, scope: Scope, courier_id: int, capacity: int) -> None:
    """How many pickups the courier may hold at once (CAPACITY_MIN..CAPACITY_MAX)."""
    await _must_reach(scope, courier_id)
    if not CAPACITY_MIN <= capacity <= CAPACITY_MAX:
        raise ApiError(
            422,
            "invalid_capacity",
            f"capacity must be from {CAPACITY_MIN} to {CAPACITY_MAX}",
            field="capacity",
        )
    async with unit_of_work() as uow:
        await Courier.update({Courier.capacity: capacity}).where(Courier.id == courier_id)
        uow.add("courier.capacity", actor=actor, to=[courier_id], data={"capacity": capacity})
