"""Dispatch: offering a pickup by its zone's rule, escalating it, and what dispatchers do to a pickup in
flight (assign, reassign, unassign). What partners and customers do (cancel, chase, reschedule, change
the address) is in server/pickups/actions.py, which releases and re-offers through release/redispatch.

Every function here runs inside the caller's unit of work or opens its own; every change it makes is
an event in that same transaction, and every due time it sets is a Timer row, not an asyncio sleep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from server.alerts.gateway import ALERT_KINDS, drop_alerts, on_alert_due
from server.db.engine import is_postgres
from server.dispatch.offers import close_offers, lock_courier, offer_to, open_load
from server.dispatch.rules import (
    BACKUP,
    DISPATCHER,
    STAGE_NAMES,
    ZONE,
    Candidate,
    epoch_ms,
    offer_targets,
    sla_timers,
)
from server.dispatch.scope import EVERYTHING, Scope, courier_in_scope
from server.domain.pickup_states import HELD_STATES, Action, IllegalTransition, next_status
from server.errors import ApiError, field_errors, not_found
from server.push.log import SYSTEM, Actor, UnitOfWork, unit_of_work, utcnow
from server.tables import CourierZone, Pickup, PickupOffer, Timer, Zone
from server.zones.service import ZoneInfo, directory


# -- who can be offered a pickup -----------------------------------------------------------------------
async def stage_candidates(zone: ZoneInfo, stage: int) -> list[Candidate]:
    """On-duty couriers of one escalation stage, with their load and last known position."""
    where: Any
    if stage == ZONE:
        where = (CourierZone.zone == zone.id) & (CourierZone.role == "primary")
    elif stage == BACKUP:
        where = (CourierZone.zone == zone.id) & (CourierZone.role == "backup")
    else:
        station_zones = await Zone.select(Zone.id).where(Zone.station == zone.station_id)
        where = CourierZone.zone.is_in([z["id"] for z in station_zones])
    rows = await CourierZone.select(
        CourierZone.courier,
        CourierZone.courier.capacity,
        CourierZone.courier.last_lat,
        CourierZone.courier.last_lng,
    ).where(where & (CourierZone.courier.on_duty == True))  # noqa: E712
    couriers = {r["courier"]: r for r in rows}  # a courier in two of the station's zones counts once
    if not couriers:
        return []
    load = await open_load(list(couriers))
    return [
        Candidate(cid, load.get(cid, 0), r["courier.capacity"], r["courier.last_lat"], r["courier.last_lng"])
        for cid, r in sorted(couriers.items())
    ]


async def offered_couriers(pickup_id: int, *, open_only: bool) -> set[int]:
    query = PickupOffer.select(PickupOffer.courier).where(PickupOffer.pickup == pickup_id)
    if open_only:
        query = query.where(PickupOffer.outcome.is_null())
    return {o["courier"] for o in await query}


class _OfferHistory:
    """Who the pickup was offered to: ever, still open, and who said no (one read)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.ever = {r["courier"] for r in rows}
        self.open = {r["courier"] for r in rows if r["outcome"] is None}
        self.declined = {r["courier"] for r in rows if r["outcome"] == "declined"}

    @classmethod
    async def of(cls, pickup: dict[str, Any]) -> _OfferHistory:
        if pickup["offer_round"] == 0:  # never offered: nobody to leave out
            return cls([])
        return cls(
            await PickupOffer.select(PickupOffer.courier, PickupOffer.outcome).where(
                PickupOffer.pickup == pickup["id"]
            )
        )


async def add_timer(pickup_id: int, kind: str, due: datetime, round_no: int = 0) -> None:
    await Timer.insert(Timer(kind=kind, pickup=pickup_id, due_ms=epoch_ms(due), round=round_no))


# The timers of a pickup's offers (its expiry, the couriers' gateway alerts), as against its time limit.
OFFER_TIMER_KINDS = ["offer_expiry", *ALERT_KINDS]


async def drop_timers(pickup_ids: list[int], *, offer_expiry_only: bool = True) -> None:
    """Delete pickups' timers, BEFORE the transaction changes (or locks) the pickups themselves.

    A firing timer holds its row (the scheduler's claim) and then changes its pickup. A transaction
    that changed the pickup first and then deleted the timer would wait on the scheduler while the
    scheduler waits on it: PostgreSQL breaks that deadlock by failing one of them (an accept at the
    moment its offer expired answered 500). Timers first, pickup second, like the scheduler; it also
    makes the two take turns, so an expiry never overwrites an accept it did not see.
    `offer_expiry_only`: the offers' timers (their expiry and gateway alerts), not the time limit's."""
    query = Timer.delete().where(Timer.pickup.is_in(sorted(set(pickup_ids))))
    if offer_expiry_only:
        query = query.where(Timer.kind.is_in(OFFER_TIMER_KINDS))
    await query


async def hold_offer_timers(pickup_id: int) -> None:
    """Lock the pickup's offer timers for the transaction (PostgreSQL; SQLite runs writers one at a
    time anyway), as drop_timers would, for a change that may or may not end the round: a decline
    leaves the others' offers and the round's expiry in place, or ends the round (see after_decline).
    Two couriers declining at once take turns, so the second sees the first's decline."""
    if is_postgres(Timer._meta.db):
        await (
            Timer.select(Timer.id)
            .where((Timer.pickup == pickup_id) & Timer.kind.is_in(OFFER_TIMER_KINDS))
            .lock_rows("UPDATE")
        )


# -- offering and escalating -------------------------------------------------------------------------
async def dispatch_pickup(
    uow: UnitOfWork,
    pickup: dict[str, Any],
    zone: ZoneInfo,
    *,
    stage: int = ZONE,
    reason: str,
    candidates_seen: dict[tuple[int, int], list[Candidate]] | None = None,
) -> list[int]:
    """Offer the pickup at `stage`, or at the first later stage that has someone to offer it to;
    returns who was offered it (nobody: it went to the dispatcher).

    What follows is the rules' decision, not that of whoever's request led here (a partner creating,
    a courier coming on duty, a dispatcher unassigning): its events are the system's.
    `candidates_seen` lets a caller dispatching many pickups in one transaction read each (zone, stage)'s
    couriers once: offering changes neither duty nor load (load counts held pickups only)."""
    offers = await _OfferHistory.of(pickup)
    # Grab: nobody twice at once, and nobody who declined it (as assign mode never offers anyone twice).
    passed_over = offers.open | offers.declined
    while stage < DISPATCHER:
        if candidates_seen is None:
            candidates = await stage_candidates(zone, stage)
        elif (key := (zone.id, stage)) in candidates_seen:
            candidates = candidates_seen[key]
        else:
            candidates = candidates_seen[key] = await stage_candidates(zone, stage)
        targets = offer_targets(
            zone.dispatch_mode,
            candidates,
            pickup_lat=pickup["lat"],
            pickup_lng=pickup["lng"],
            ever_offered=offers.ever,
            passed_over=passed_over,
        )
        if targets:
            await _set_stage(uow, pickup, stage)
            await offer_to(uow, pickup, zone, targets, ttl_s=zone.offer_ttl_s, reason=reason)
            await add_timer(
                pickup["id"],
                "offer_expiry",
                utcnow() + timedelta(seconds=zone.offer_ttl_s),
                pickup["offer_round"],
            )
            return targets
        stage += 1
    await _escalate_to_dispatcher(uow, pickup, open_offers=bool(offers.open))
    return []


async def _set_stage(uow: UnitOfWork, pickup: dict[str, Any], stage: int) -> None:
    if stage == pickup["escalation_stage"]:
        return
    await Pickup.update({Pickup.escalation_stage: stage}).where(Pickup.id == pickup["id"])
    pickup["escalation_stage"] = stage
    if stage > ZONE:
        uow.add("pickup.escalated", actor=SYSTEM, pickup_id=pickup["id"], data={"stage": STAGE_NAMES[stage]})


async def _escalate_to_dispatcher(uow: UnitOfWork, pickup: dict[str, Any], *, open_offers: bool) -> None:
    """Nobody (more) to offer it to: it goes on top of the dispatcher's queue."""
    values: dict[Any, Any] = {Pickup.escalation_stage: DISPATCHER, Pickup.updated_at: utcnow()}
    if not open_offers and pickup["status"] == "offered":
        values[Pickup.status] = next_status("offered", Action.QUEUE).value
        pickup["status"] = values[Pickup.status]
    await Pickup.update(values).where(Pickup.id == pickup["id"])
    already = pickup["escalation_stage"] == DISPATCHER
    pickup["escalation_stage"] = DISPATCHER
    if not already:
        uow.add(
            "pickup.escalated",
            actor=SYSTEM,
            pickup_id=pickup["id"],
            data={"stage": STAGE_NAMES[DISPATCHER], "status": pickup["status"]},
        )


def time_limit_rows(pickups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timers rows of new pickups' time limits (warning, breach)."""
    return [
        {"kind": kind, "pickup": pickup["id"], "courier": None, "due_ms": epoch_ms(due), "round": 0}
        for pickup in pickups
        for kind, due in sla_timers(pickup["created_at"], pickup["due_at"])
    ]


# -- timers ------------------------------------------------------------------------------------------
async def on_offer_expiry(uow: UnitOfWork, timer: dict[str, Any]) -> None:
    pickup = await Pickup.select().where(Pickup.id == timer["pickup"]).first()
    if pickup is None or pickup["status"] != "offered" or pickup["offer_round"] != timer["round"]:
        return  # accepted, cancelled or re-offered since: this timer is stale
    await _round_ended(uow, pickup)


async def after_decline(uow: UnitOfWork, pickup_id: int) -> None:
    """A courier said no (their offer is closed, the offer timers held: hold_offer_timers). While
    others' offers are open they may still take it, at the round's own expiry; when nobody's is, the
    round has ended now, and dispatch goes on as when it expires."""
    if await PickupOffer.exists().where((PickupOffer.pickup == pickup_id) & PickupOffer.outcome.is_null()):
        return
    pickup = await Pickup.select().where(Pickup.id == pickup_id).first()
    if pickup is None or pickup["status"] != "offered":
        return
    # Every offer is closed: the round's expiry and any courier's gateway alert are moot.
    await Timer.delete().where((Timer.pickup == pickup_id) & Timer.kind.is_in(OFFER_TIMER_KINDS))
    await _round_ended(uow, pickup)


async def _round_ended(uow: UnitOfWork, pickup: dict[str, Any]) -> None:
    """Nobody took the round: assign mode passes the pickup on to the next courier, grab mode widens
    to the next stage (the dispatcher when nobody is left)."""
    zone = await zone_of(pickup)
    if zone is None:
        # The zone was deactivated (or is gone) with this pickup in flight: a person decides.
        still_open = await offered_couriers(pickup["id"], open_only=True)
        await _escalate_to_dispatcher(uow, pickup, open_offers=bool(still_open))
        return
    if zone.dispatch_mode == "assign":
        expired = await offered_couriers(pickup["id"], open_only=True)
        await PickupOffer.update({PickupOffer.outcome: "expired"}).where(
            (PickupOffer.pickup == pickup["id"]) & PickupOffer.outcome.is_null()
        )
        await drop_alerts(pickup["id"], sorted(expired))
        if expired:
            uow.add(
                "pickup.withdrawn",
                actor=SYSTEM,
                pickup_id=pickup["id"],
                to=expired,
                data={"reason": "expired"},
            )
        await dispatch_pickup(uow, pickup, zone, stage=pickup["escalation_stage"], reason="passed_on")
    else:
        await dispatch_pickup(uow, pickup, zone, stage=pickup["escalation_stage"] + 1, reason="widened")


async def zone_of(pickup: dict[str, Any]) -> ZoneInfo | None:
    """The pickup's zone from the directory, reloading once in case this process has not heard of it."""
    if pickup["zone"] is None:
        return None
    zone = directory.zones.get(pickup["zone"])
    if zone is None:
        await directory.reload()
        zone = directory.zones.get(pickup["zone"])
    return zone


async def on_time_limit(uow: UnitOfWork, timer: dict[str, Any]) -> None:
    pickup = await Pickup.select().where(Pickup.id == timer["pickup"]).first()
    if pickup is None or pickup["status"] in ("collected", "cancelled"):
        return
    breach = timer["kind"] == "sla_breach"
    if not breach and pickup["sla_state"] == "breached":
        return
    state = "breached" if breach else "warning"
    await Pickup.update({Pickup.sla_state: state}).where(Pickup.id == pickup["id"])
    uow.add(
        f"pickup.sla_{state}",
        actor=SYSTEM,
        pickup_id=pickup["id"],
        to=[pickup["courier"]] if pickup["courier"] else [],
        data={
            "due_at": pickup["due_at"].isoformat() if pickup["due_at"] else None,
            "status": pickup["status"],
        },
    )


# A handler may return a follow-up to run after the claim commits (see scheduler.py).
TimerHandler = Callable[[UnitOfWork, dict[str, Any]], Awaitable[Callable[[], Awaitable[None]] | None]]
TIMER_HANDLERS: dict[str, TimerHandler] = {
    "offer_expiry": on_offer_expiry,
    "sla_warning": on_time_limit,
    "sla_breach": on_time_limit,
    **dict.fromkeys(ALERT_KINDS, on_alert_due),
}


# -- dispatcher actions --------------------------------------------------------------------------------
async def _load_pickups(pickup_ids: list[int], scope: Scope) -> dict[int, dict[str, Any]]:
    if not pickup_ids:
        raise field_errors([{"field": "pickup_ids", "message": "name at least one pickup"}])
    if len(pickup_ids) > 500:
        raise field_errors([{"field": "pickup_ids", "message": "at most 500 at once"}])
    query = Pickup.select().where(Pickup.id.is_in(sorted(set(pickup_ids)))).order_by(Pickup.id)
    if is_postgres(Pickup._meta.db):
        # Read and then changed in this transaction: locked, so that what was checked still holds
        # (an accept meanwhile cannot be overwritten), in id order, so two dispatchers moving
        # overlapping sets do not deadlock.
        query = query.lock_rows("NO KEY UPDATE")
    rows = await query
    # Another station's pickup is "unknown" to this dispatcher, as another partner's is to a partner.
    found = {r["id"]: r for r in rows if scope.covers_zone(r["zone"])}
    missing = [
        {"field": f"pickup_ids[{i}]", "message": f"no pickup {pid}"}
        for i, pid in enumerate(pickup_ids)
        if pid not in found
    ]
    if missing:
        raise ApiError(404, "not_found", "unknown pickup(s); nothing was changed", errors=missing)
    return found


async def assign_pickups(
    actor: Actor,
    pickup_ids: list[int],
    courier_id: int,
    *,
    reason: str,
    allow_outside_zone: bool = False,
    scope: Scope = EVERYTHING,
) -> list[int]:
    """Hand pickups to one courier (assign, or reassign from another): all of them or none.

    The courier's row is locked first (lock_courier), so their load is counted and filled by one
    transaction at a time: two dispatchers, or a dispatcher and the courier accepting, cannot together
    go over capacity."""
    async with unit_of_work() as uow:
        courier = await lock_courier(courier_id)
        if courier is None or not await courier_in_scope(scope, courier_id):
            raise not_found("courier", field="courier_id")
        if not courier["on_duty"]:
            raise ApiError(422, "courier_off_duty", "this courier is off duty", field="courier_id")
        zones = {
            m["zone"]
            for m in await CourierZone.select(CourierZone.zone).where(CourierZone.courier == courier_id)
        }
        await drop_timers(pickup_ids)
        pickups = await _load_pickups(pickup_ids, scope)
        errors = []
        for i, pid in enumerate(pickup_ids):
            p = pickups[pid]
            try:
                next_status(p["status"], Action.ASSIGN)
            except IllegalTransition as exc:
                errors.append({"field": f"pickup_ids[{i}]", "message": str(exc)})
                continue
            if not allow_outside_zone and p["zone"] not in zones:
                errors.append(
                    {
                        "field": f"pickup_ids[{i}]",
                        "message": "the courier does not work this pickup's zone (set allow_outside_zone to insist)",
                    }
                )
        if errors:
            code = (
                "courier_outside_zone"
                if all("zone" in e["message"] for e in errors)
                else "illegal_transition"
            )
            raise ApiError(
                409 if code == "illegal_transition" else 422, code, errors[0]["message"], errors=errors
            )
        new = [
            pid
            for pid in dict.fromkeys(pickup_ids)
            if pickups[pid]["courier"] != courier_id or pickups[pid]["status"] not in HELD_STATES
        ]
        load = (await open_load([courier_id])).get(courier_id, 0)
        if load + len(new) > courier["capacity"]:
            raise ApiError(
                409,
                "over_capacity",
                f"the courier holds {load} of {courier['capacity']}; {len(new)} more will not fit",
                field="courier_id",
            )
        for pid in new:
            await _hand_over(uow, pickups[pid], courier_id, actor, reason)
    return new


async def _hand_over(
    uow: UnitOfWork, pickup: dict[str, Any], courier_id: int, actor: Actor, reason: str
) -> None:
    previous = pickup["courier"] if pickup["status"] in HELD_STATES else None
    now = utcnow()
    await Pickup.update(
        {
            Pickup.status: "accepted",
            Pickup.courier: courier_id,
            Pickup.assigned_by_dispatcher: True,
            Pickup.version: Pickup.version + 1,
            Pickup.updated_at: now,
        }
    ).where(Pickup.id == pickup["id"])
    await close_offers(uow, pickup["id"], winner=None, actor=actor, reason="assigned")
    if previous is not None and previous != courier_id:
        uow.add(
            "pickup.withdrawn",
            actor=actor,
            pickup_id=pickup["id"],
            to=[previous],
            data={"reason": "reassigned"},
        )
    uow.add(
        "pickup.reassigned" if previous else "pickup.assigned",
        actor=actor,
        pickup_id=pickup["id"],
        to=[courier_id],
        at=now,
        data={"courier": courier_id, "previous_courier": previous, "reason": reason},
    )


async def unassign_pickups(
    actor: Actor, pickup_ids: list[int], *, reason: str, scope: Scope = EVERYTHING
) -> list[int]:
    """Take pickups back from their couriers (or offers back from couriers) and dispatch them afresh;
    a failed pickup is offered again this way."""
    async with unit_of_work() as uow:
        await drop_timers(pickup_ids)
        pickups = await _load_pickups(pickup_ids, scope)
        errors = [
            {
                "field": f"pickup_ids[{i}]",
                "message": f"cannot unassign a pickup that is {pickups[pid]['status']}",
            }
            for i, pid in enumerate(pickup_ids)
            if pickups[pid]["status"] not in (*HELD_STATES, "offered", "failed")
        ]
        if errors:
            raise ApiError(409, "illegal_transition", errors[0]["message"], errors=errors)
        for pid in dict.fromkeys(pickup_ids):
            p = pickups[pid]
            previous = await release(uow, p, actor=actor, reason="unassigned")
            uow.add(
                "pickup.unassigned",
                actor=actor,
                pickup_id=pid,
                data={"previous_courier": previous, "reason": reason},
            )
            await redispatch(uow, p, reason="unassigned")
    return list(dict.fromkeys(pickup_ids))


async def release(uow: UnitOfWork, pickup: dict[str, Any], *, actor: Actor, reason: str) -> int | None:
    """Withdraw the pickup's open offers and take it from the courier holding it (each told, with
    `reason`); returns that courier. The offers' timers must be dropped first (drop_timers)."""
    previous = pickup["courier"] if pickup["status"] in HELD_STATES else None
    await close_offers(uow, pickup["id"], winner=None, actor=actor, reason=reason)
    if previous is not None:
        uow.add(
            "pickup.withdrawn", actor=actor, pickup_id=pickup["id"], to=[previous], data={"reason": reason}
        )
    return previous


async def redispatch(uow: UnitOfWork, pickup: dict[str, Any], *, reason: str) -> None:
    """Dispatch a released pickup afresh in its (current) zone, from the zone's own couriers."""
    zone = directory.zones.get(pickup["zone"]) if pickup["zone"] else None
    values: dict[Any, Any] = {Pickup.courier: None, Pickup.escalation_stage: ZONE}
    if pickup["status"] in HELD_STATES:
        # Nobody holds it any more: were nobody on duty to offer it to, it must not stay "accepted"
        # with no courier (the dispatcher's queue shows it as pending).
        values[Pickup.status] = next_status(pickup["status"], Action.QUEUE).value
    await Pickup.update(values).where(Pickup.id == pickup["id"])
    pickup.update(courier=None, escalation_stage=ZONE, status=values.get(Pickup.status, pickup["status"]))
    if zone is None:
        await Pickup.update({Pickup.status: "pending"}).where(Pickup.id == pickup["id"])
        pickup["status"] = "pending"
        return
    # offer_to moves it on to `offered`; the state machine allows OFFER from pending and failed.
    await dispatch_pickup(uow, pickup, zone, stage=ZONE, reason=reason)
