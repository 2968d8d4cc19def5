"""A courier's shift: going on or off duty (and being put in front of what waits), and the heartbeat."""

from __future__ import annotations

from typing import Any

from server.auth.principal import Principal
from server.courier.schemas import DutyOut, HeartbeatIn
from server.courier.service import courier_id_of
from server.dispatch.offers import join_offer, open_load
from server.dispatch.rules import BACKUP, STATION, ZONE, Candidate
from server.dispatch.service import dispatch_pickup
from server.domain.geo import point_in_wgs84
from server.errors import field_errors
from server.push.log import Actor, UnitOfWork, unit_of_work, utcnow
from server.tables import Courier, CourierZone, Pickup, PickupOffer
from server.zones.service import directory


async def set_duty(principal: Principal, on_duty: bool) -> DutyOut:
    """Go on or off duty. Going on duty also puts the courier in front of what waits for them."""
    courier_id = courier_id_of(principal)
    return await change_duty(courier_id, on_duty, Actor("courier", courier_id))


async def change_duty(courier_id: int, on_duty: bool, actor: Actor) -> DutyOut:
    """Put a courier on or off duty, by their own hand or a dispatcher's (the console's couriers page).
    Only the courier's own tap counts as being seen: a dispatcher's says nothing about the phone."""
    now = utcnow()
    offers_sent = 0
    values: dict[Any, Any] = {Courier.on_duty: on_duty, Courier.duty_changed_at: now}
    if actor.kind == "courier":
        values[Courier.last_seen_at] = now
    async with unit_of_work() as uow:
        updated = await Courier.update(values).where(Courier.id == courier_id).returning(Courier.capacity)
        memberships = await CourierZone.select(
            CourierZone.zone, CourierZone.role, CourierZone.zone.station.as_alias("station")
        ).where(CourierZone.courier == courier_id)
        uow.add("courier.duty", actor=actor, to=[courier_id], data={"on_duty": on_duty})
        if on_duty and updated:
            offers_sent = await _offer_waiting_pickups(uow, courier_id, updated[0]["capacity"], memberships)
    zone_codes = [directory.zones[m["zone"]].code for m in memberships if m["zone"] in directory.zones]
    return DutyOut(on_duty=on_duty, zones=sorted(zone_codes), offers_sent=offers_sent)


def _first_stages(memberships: list[dict[str, Any]]) -> dict[int, int]:
    """For each active zone whose pickups can reach this courier, the escalation stage at which they
    first do: its primary couriers from the start, its backup couriers from BACKUP, and every courier
    of the zone's station from STATION (stage_candidates says the same for couriers already on duty)."""
    stations = {m["station"] for m in memberships}
    first = {z.id: STATION for z in directory.zones.values() if z.station_id in stations}
    for m in memberships:
        if m["zone"] in first:
            first[m["zone"]] = min(first[m["zone"]], ZONE if m["role"] == "primary" else BACKUP)
    return first


async def _offer_waiting_pickups(
    uow: UnitOfWork, courier_id: int, capacity: int, memberships: list[dict[str, Any]]
) -> int:
    """Put a courier starting a shift in front of what waits, as the escalation rules would have had
    they been on duty: a grab pickup still on offer joins them to its round once it has escalated to a
    stage they belong to, and a pending pickup that could reach them (nobody was on duty, or everyone
    let it pass) is dispatched afresh from the start. Returns how many offers the courier got."""
    first = _first_stages(memberships)
    # The rules offer nothing to a courier with no room left, and what waits already went past everyone
    # else: nothing would change.
    if not first or (await open_load([courier_id])).get(courier_id, 0) >= capacity:
        return 0
    reachable_offers: Any = None
    for stage in (ZONE, BACKUP, STATION):
        zones = sorted(
            z for z, s in first.items() if s == stage and directory.zones[z].dispatch_mode == "grab"
        )
        if zones:
            clause = Pickup.zone.is_in(zones) & (Pickup.escalation_stage >= stage)
            reachable_offers = clause if reachable_offers is None else reachable_offers | clause
    where = (Pickup.status == "pending") & Pickup.zone.is_in(sorted(first))
    if reachable_offers is not None:
        where = where | ((Pickup.status == "offered") & reachable_offers)
    # In id order: two couriers starting at once re-dispatch shared pickups in the same order (no deadlock).
    rows = await Pickup.select().where(where).order_by(Pickup.id).limit(200)
    offered = [p["id"] for p in rows if p["status"] == "offered"]
    already: set[int] = set()
    if offered:
        already = {
            o["pickup"]
            for o in await PickupOffer.select(PickupOffer.pickup).where(
                (PickupOffer.courier == courier_id)
                & PickupOffer.outcome.is_null()
                & PickupOffer.pickup.is_in(offered)
            )
        }
    sent = 0
    candidates_seen: dict[tuple[int, int], list[Candidate]] = {}  # one read per (zone, stage)
    for pickup in rows:
        zone = directory.zones.get(pickup["zone"])
        if zone is None:  # deactivated meanwhile (the directory reloads between our awaits)
            continue
        if pickup["status"] == "pending":
            targets = await dispatch_pickup(
                uow, pickup, zone, stage=ZONE, reason="on_duty", candidates_seen=candidates_seen
            )
            sent += courier_id in targets
        elif pickup["id"] not in already:
            await join_offer(uow, pickup, zone, courier_id)
            sent += 1
    return sent


async def heartbeat(principal: Principal, body: HeartbeatIn) -> dict[str, Any]:
    """Last seen (and last position, for assigning the nearest courier). Not an event: it is not a
    change of any pickup, and phones send it every minute."""
    courier_id = courier_id_of(principal)
    values: dict[Any, Any] = {Courier.last_seen_at: utcnow()}
    point, problems = point_in_wgs84(body.lng, body.lat, body.datum, "")
    if problems:
        raise field_errors(problems)
    if point is not None:
        values.update({Courier.last_lng: point[0], Courier.last_lat: point[1]})
    await Courier.update(values).where(Courier.id == courier_id)
    return {"ok": True}
