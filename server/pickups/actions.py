"""What the customer and the partner may do to a pickup after booking it: cancel, chase (催件),
reschedule, change the address, rate and complain.

One set of functions for both: the partner API calls them with Actor("partner", id) and may touch only
its own pickups (another partner's is "not found", as everywhere); the customer's tracking page resolves
the pickup from its unguessable code and calls them with Actor("customer"). The console cancels on the
customer's behalf with Actor("dispatcher", id) and the dispatcher's scope (another station's pickup is
"not found" to it).

Each loads the pickup (locked on PostgreSQL, so what was checked still holds when it is written), checks
the state (409 "illegal_transition" with current_status), writes the change and its event in one unit of
work, and returns None: the caller reads the pickup back as its viewer may see it.

States:
- cancel until collected (a failed pickup too);
- chase while open; the customer at most once per CHASE_INTERVAL, counting any chase (a partner's too:
  the courier was alerted either way); a partner is not held to it — its system is accountable and
  rate-limited per API key, and its support desk may need to chase after the customer did;
- reschedule and change the address while open, a courier holding it included (accepted, contacted):
  the courier is told and keeps it, unless the new address lies in another zone, when it is taken back
  and offered there. Collected, failed and cancelled pickups are refused (a failed one is the
  dispatcher's to re-offer; the courier's failure may already carry the customer's new time);
- rate once, after collection; complain after collection or failure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from server.db.engine import is_postgres
from server.dispatch.offers import close_offers
from server.dispatch.rules import sla_timers
from server.dispatch.scope import Scope
from server.dispatch.service import (
    add_timer,
    drop_timers,
    offered_couriers,
    redispatch,
    release,
)
from server.domain.pickup_states import HELD_STATES, OPEN_STATES, Action, IllegalTransition, next_status
from server.errors import ApiError, field_errors, not_found
from server.intake.serviceability import slot_is_offered
from server.pickups.schemas import Address, TimeWindow
from server.pickups.service import check_address, check_window, due_time, match_zone, refuse_stop_ship
from server.push.log import Actor, UnitOfWork, unit_of_work, utcnow
from server.tables import Pickup, PickupFeedback, Timer
from server.zones.service import ZoneInfo, directory

CHASE_INTERVAL = timedelta(minutes=10)
SLA_TIMER_KINDS = ["sla_warning", "sla_breach"]
# Open states in which the slot and the address may still change (all of them: see the docstring).
CHANGEABLE_STATES = frozenset(s.value for s in OPEN_STATES)
COMPLAINABLE_STATES = frozenset({"collected", "failed"})


# -- loading and refusing -----------------------------------------------------------------------------
async def _load(actor: Actor, pickup_id: int, scope: Scope | None = None) -> dict[str, Any]:
    """The pickup, locked for this transaction on PostgreSQL, if `actor` may act on it; else 404."""
    query = Pickup.select().where(Pickup.id == pickup_id)
    if is_postgres(Pickup._meta.db):
        query = query.lock_rows("NO KEY UPDATE")
    pickup = await query.first()
    if pickup is None or not _may_act(actor, pickup, scope):
        # Another partner's pickup is "not found", never "forbidden": ids must not leak what exists.
        raise not_found("pickup")
    return pickup


def _may_act(actor: Actor, pickup: dict[str, Any], scope: Scope | None = None) -> bool:
    if actor.kind in ("dispatcher", "admin"):
        # Staff act for the customer only where they answer for the pickup's station.
        return scope is not None and scope.covers_zone(pickup["zone"])
    if actor.kind == "partner":
        return actor.id is not None and pickup["partner"] == actor.id
    # The tracking page found the pickup by its code: holding the code is the customer's right to act.
    return actor.kind == "customer"


def _refused(pickup: dict[str, Any], what: str) -> ApiError:
    return ApiError(
        409,
        "illegal_transition",
        f"cannot {what} a pickup that is {pickup['status']}",
        current_status=pickup["status"],
    )


def _holder(pickup: dict[str, Any]) -> list[int]:
    """The courier holding the pickup, as a recipient list."""
    return [pickup["courier"]] if pickup["courier"] and pickup["status"] in HELD_STATES else []


async def _couriers_concerned(pickup: dict[str, Any]) -> list[int]:
    """Who must hear of a change: the courier holding it, else those it is offered to right now."""
    return _holder(pickup) or sorted(await offered_couriers(pickup["id"], open_only=True))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- cancel and chase ------------------------------------------------------------------------------------
async def cancel(actor: Actor, pickup_id: int, reason: str, *, scope: Scope | None = None) -> None:
    """Cancel a pickup that is not collected yet: its offers withdrawn, the holder told, timers gone.
    Staff (the console) cancel on the customer's behalf, within `scope`; the event says so."""
    async with unit_of_work() as uow:
        # Timers before the pickup, as the scheduler takes them (see dispatch.service.drop_timers).
        await drop_timers([pickup_id], offer_expiry_only=False)
        p = await _load(actor, pickup_id, scope)
        try:
            target = next_status(p["status"], Action.CANCEL)
        except IllegalTransition:
            raise _refused(p, "cancel") from None
        changed = (
            await Pickup.update(
                {Pickup.status: target.value, Pickup.version: Pickup.version + 1, Pickup.updated_at: utcnow()}
            )
            .where((Pickup.id == pickup_id) & (Pickup.status == p["status"]))
            .returning(Pickup.id)
        )
        if not changed:
            raise ApiError(409, "conflict", "the pickup changed meanwhile; try again")
        await close_offers(uow, pickup_id, winner=None, actor=actor, reason="cancelled")
        data: dict[str, Any] = {"reason": reason}
        if actor.kind in ("dispatcher", "admin"):
            data["on_behalf_of"] = "customer"
        uow.add("pickup.cancelled", actor=actor, pickup_id=pickup_id, to=_holder(p), data=data)


async def chase(actor: Actor, pickup_id: int) -> None:
    """The customer chases (催件): re-alert whoever has the pickup in hand (or is offered it) and flag
    it on the console (its chase count and time). 429 "chase_too_soon" for a customer within
    CHASE_INTERVAL of the last chase, with retry_after in seconds."""
    async with unit_of_work() as uow:
        p = await _load(actor, pickup_id)
        if p["status"] not in OPEN_STATES:
            raise _refused(p, "chase")
        now = utcnow()
        if actor.kind == "customer" and p["chased_at"] is not None:
            wait = p["chased_at"] + CHASE_INTERVAL - now
            if wait > timedelta(0):
                seconds = int(wait.total_seconds()) + 1
                raise ApiError(
                    429,
                    "chase_too_soon",
                    f"the courier was alerted less than {CHASE_INTERVAL.seconds // 60} minutes ago",
                    headers={"Retry-After": str(seconds)},
                    retry_after=seconds,
                )
        await Pickup.update({Pickup.chase_count: Pickup.chase_count + 1, Pickup.chased_at: now}).where(
            Pickup.id == pickup_id
        )
        uow.add(
            "pickup.chased",
            actor=actor,
            pickup_id=pickup_id,
            to=await _couriers_concerned(p),
            at=now,
            data={"count": p["chase_count"] + 1},
        )


# -- reschedule ------------------------------------------------------------------------------------------


async def _restart_time_limit(
    uow: UnitOfWork, pickup: dict[str, Any], zone: ZoneInfo | None
) -> datetime | None:
    """A new time limit from the pickup's window and zone: due_at, its state and its timers (the old
    SLA timers must already be dropped)."""
    due = due_time(pickup["created_at"], zone, pickup["window_end"])
    await Pickup.update({Pickup.due_at: due, Pickup.sla_state: "ok"}).where(Pickup.id == pickup["id"])
    for kind, at in sla_timers(pickup["created_at"], due):
        await add_timer(pickup["id"], kind, at)
    return due


async def reschedule(actor: Actor, pickup_id: int, window: TimeWindow) -> None:
    """A new slot for an open pickup: the window and the time limit move; the courier concerned is told.
    A customer's slot must be one the zone offers; a partner may send any sane window."""
    start, end, errors = check_window(window)
    if errors:
        raise field_errors(errors)
    assert start is not None and end is not None
    async with unit_of_work() as uow:
        await Timer.delete().where((Timer.pickup == pickup_id) & Timer.kind.is_in(SLA_TIMER_KINDS))
        p = await _load(actor, pickup_id)
        if p["status"] not in CHANGEABLE_STATES:
            raise _refused(p, "reschedule")
        if actor.kind == "customer" and p["zone"] and not slot_is_offered(p["zone"], start, end):
            raise field_errors([{"field": "window", "message": "not one of the zone's slots"}])
        previous = {"start": _iso(p["window_start"]), "end": _iso(p["window_end"])}
        await Pickup.update(
            {
                Pickup.window_start: start,
                Pickup.window_end: end,
                Pickup.version: Pickup.version + 1,
                Pickup.updated_at: utcnow(),
            }
        ).where(Pickup.id == pickup_id)
        p.update(window_start=start, window_end=end)
        due = await _restart_time_limit(uow, p, directory.zones.get(p["zone"]) if p["zone"] else None)
        uow.add(
            "pickup.rescheduled",
            actor=actor,
            pickup_id=pickup_id,
            to=await _couriers_concerned(p),
            data={
                "window": {"start": start.isoformat(), "end": end.isoformat()},
                "previous_window": previous,
                "due_at": _iso(due),
            },
        )


# -- change of address -----------------------------------------------------------------------------------
async def change_address(actor: Actor, pickup_id: int, address: Address) -> None:
    """A new address for an open pickup, checked as a create checks it and matched to a zone again.
    Same zone: the courier holding it keeps it and is told (those offered it see the new address).
    Another zone (or none): its offers are withdrawn, the holder released, and it is offered in the new
    zone (or waits for the dispatcher when no zone serves it)."""
    point, errors = check_address(address)
    if errors:
        raise field_errors(errors)
    await refuse_stop_ship(address, point)
    zone = match_zone(address, point)
    new_zone = zone.id if zone else None
    # Whether the zone changes decides which timers go; they go before the pickup is locked (see
    # drop_timers), so the zone is read first and checked again under the lock.
    current = await Pickup.select(Pickup.zone).where(Pickup.id == pickup_id).first()
    if current is None:
        raise not_found("pickup")
    moves = current["zone"] != new_zone
    async with unit_of_work() as uow:
        if moves:
            await drop_timers([pickup_id], offer_expiry_only=False)
        else:
            await Timer.delete().where((Timer.pickup == pickup_id) & Timer.kind.is_in(SLA_TIMER_KINDS))
        p = await _load(actor, pickup_id)
        if p["status"] not in CHANGEABLE_STATES:
            raise _refused(p, "change the address of")
        if p["zone"] != current["zone"]:
            raise ApiError(409, "conflict", "the pickup changed meanwhile; try again")
        lng, lat = point if point else (None, None)
        values = {
            "province": address.province.strip(),
            "city": address.city.strip(),
            "district": address.district.strip(),
            "street": address.street.strip(),
            "address_detail": address.detail.strip(),
            "lat": lat,
            "lng": lng,
            "zone": new_zone,
        }
        await Pickup.update(
            {
                **{getattr(Pickup, k): v for k, v in values.items()},
                Pickup.version: Pickup.version + 1,
                Pickup.updated_at: utcnow(),
            }
        ).where(Pickup.id == pickup_id)
        uow.note_zone(pickup_id, new_zone)
        previous_zone = directory.zones.get(p["zone"]) if p["zone"] else None
        told = [] if moves else await _couriers_concerned(p)
        p.update(values)
        due = await _restart_time_limit(uow, p, zone)
        uow.add(
            "pickup.address_changed",
            actor=actor,
            pickup_id=pickup_id,
            to=told,
            # The address, not the phone: the event reaches the partner (its own customer), the
            # customer, the couriers concerned (who see the address anyway); the console's stream
            # carries no event data (push/sse.py to_console_sse).
            data={
                "address": {
                    k: values[k] for k in ("province", "city", "district", "street", "address_detail")
                },
                "zone": zone.code if zone else None,
                "previous_zone": previous_zone.code if previous_zone else None,
                "zone_changed": moves,
                "due_at": _iso(due),
            },
        )
        if moves:
            await release(uow, p, actor=actor, reason="address_changed")
            await redispatch(uow, p, reason="address_changed")


# -- after the pickup: rating and complaint -------------------------------------------------------------
async def rate(actor: Actor, pickup_id: int, stars: int, comment: str) -> None:
    """1-5 stars and an optional comment, once, after collection (409 for a second rating)."""
    if not 1 <= stars <= 5:
        raise field_errors([{"field": "stars", "message": "1 to 5 stars"}])
    async with unit_of_work() as uow:
        p = await _load(
            actor, pickup_id
        )  # locked: two ratings at once take turns and the second sees the first
        if p["status"] != "collected":
            raise _refused(p, "rate")
        if await PickupFeedback.exists().where(
            (PickupFeedback.pickup == pickup_id) & (PickupFeedback.kind == "rating")
        ):
            raise ApiError(409, "already_rated", "this pickup has been rated", current_status=p["status"])
        now = utcnow()
        await PickupFeedback.insert(
            PickupFeedback(
                pickup=pickup_id,
                kind="rating",
                stars=stars,
                text=comment,
                actor_kind=actor.kind,
                created_at=now,
            )
        )
        uow.add(
            "pickup.rated",
            actor=actor,
            pickup_id=pickup_id,
            at=now,
            data={"stars": stars, "comment": comment},
        )


async def complain(actor: Actor, pickup_id: int, text: str) -> None:
    """A complaint about a pickup that was collected or could not be."""
    if not text.strip():
        raise field_errors([{"field": "text", "message": "say what went wrong"}])
    async with unit_of_work() as uow:
        p = await _load(actor, pickup_id)
        if p["status"] not in COMPLAINABLE_STATES:
            raise _refused(p, "complain about")
        now = utcnow()
        await PickupFeedback.insert(
            PickupFeedback(
                pickup=pickup_id, kind="complaint", text=text.strip(), actor_kind=actor.kind, created_at=now
            )
        )
        uow.add("pickup.complained", actor=actor, pickup_id=pickup_id, at=now, data={"text": text.strip()})
