"""Setting up people and places: users, couriers' zones."""

from __future__ import annotations

from server.admin.schemas import StationCreate, StationOut, UserCreate, UserOut, ZoneMembership
from server.auth.service import create_user
from server.dispatch.scope import EVERYTHING, Scope, courier_in_scope, forget_scopes
from server.domain.contact import normalize_mobile
from server.errors import ApiError, field_errors, not_found
from server.push.log import Actor, unit_of_work
from server.tables import Courier, CourierZone, Station, Zone


async def add_user(data: UserCreate, actor: Actor) -> UserOut:
    phone = None
    if data.phone:
        phone = normalize_mobile(data.phone)
        if phone is None:
            raise field_errors([{"field": "phone", "message": "not a mainland-China mobile number"}])
    if data.zones and data.role != "courier":
        raise field_errors([{"field": "zones", "message": "only couriers belong to zones"}])
    await _zones_by_code(data.zones)  # refuse unknown zones before anything is written
    user_id = await create_user(
        username=data.username,
        password=data.password,
        role=data.role,
        display_name=data.display_name,
        phone=phone,
        station_code=data.station,
        capacity=data.capacity,
    )
    courier_id = None
    if data.role == "courier":
        row = await Courier.select(Courier.id).where(Courier.user == user_id).first()
        courier_id = row["id"] if row else None
        if courier_id is not None and data.zones:
            await set_courier_zones(courier_id, data.zones, actor)
    return UserOut(id=user_id, username=data.username, role=data.role, courier_id=courier_id)


async def _zones_by_code(memberships: list[ZoneMembership]) -> dict[str, dict[str, int]]:
    """The named zones' ids and stations by code; 422 naming each unknown one."""
    codes = [m.zone for m in memberships]
    if not codes:
        return {}
    rows = await Zone.select(Zone.id, Zone.code, Zone.station).where(Zone.code.is_in(codes))
    known = {r["code"]: r for r in rows}
    errors = [
        {"field": f"zones[{i}].zone", "message": f"unknown zone {m.zone!r}"}
        for i, m in enumerate(memberships)
        if m.zone not in known
    ]
    if errors:
        raise field_errors(errors)
    return known


async def set_courier_zones(
    courier_id: int, memberships: list[ZoneMembership], actor: Actor, *, scope: Scope = EVERYTHING
) -> list[dict[str, str]]:
    """Replace a courier's zones (primary and backup) in one go.

    A dispatcher answering for part of the station tree sees only couriers of those stations (another
    courier is "not found") and may put them only on zones of those stations.
    """
    if scope.everything:
        found = await Courier.exists().where(Courier.id == courier_id)
    else:
        found = await courier_in_scope(scope, courier_id)
    if not found:
        raise not_found("courier", field="courier_id")
    known = await _zones_by_code(memberships)
    outside = [
        {"field": f"zones[{i}].zone", "message": f"zone {m.zone!r} belongs to a station outside yours"}
        for i, m in enumerate(memberships)
        if not scope.covers_station(known[m.zone]["station"])
    ]
    if outside:
        raise ApiError(
            403,
            "out_of_scope",
            "you may put couriers only on zones of the stations you answer for; nothing was changed",
            errors=outside,
        )
    async with unit_of_work() as uow:
        await CourierZone.delete().where(CourierZone.courier == courier_id)
        if memberships:
            await CourierZone.insert(
                *(CourierZone(courier=courier_id, zone=known[m.zone]["id"], role=m.role) for m in memberships)
            )
        uow.add(
            "courier.zones",
            actor=actor,
            to=[courier_id],
            data={"zones": [{"zone": m.zone, "role": m.role} for m in memberships]},
        )
    return [{"zone": m.zone, "role": m.role} for m in memberships]


_LEVELS = ("province", "city", "district", "station")


async def add_station(data: StationCreate, actor: Actor) -> StationOut:
    """A node of the station tree; its parent must sit one level or more above it."""
    parent_id = None
    if data.parent is not None:
        parent = await Station.select(Station.id, Station.level).where(Station.code == data.parent).first()
        if parent is None:
            raise ApiError(422, "unknown_station", f"no station {data.parent!r}", field="parent")
        if _LEVELS.index(parent["level"]) >= _LEVELS.index(data.level):
            raise field_errors(
                [{"field": "parent", "message": f"a {data.level} cannot sit under a {parent['level']}"}]
            )
        parent_id = parent["id"]
    async with unit_of_work() as uow:
        if await Station.exists().where(Station.code == data.code):
            raise ApiError(409, "station_exists", f"station {data.code!r} exists already", field="code")
        rows = await Station.insert(
            Station(code=data.code, name=data.name, level=data.level, parent=parent_id)
        ).returning(Station.id)
        uow.add("station.created", actor=actor, data={"code": data.code, "parent": data.parent})
    forget_scopes()
    return StationOut(id=rows[0]["id"], code=data.code, name=data.name, level=data.level, parent=data.parent)
