"""What a courier does with an offer and a pickup they hold: see, accept or decline the offer, record
the call and the arrival at the door, collect, fail. (Going on duty: duty.py.)

Each state change is a conditional UPDATE (`… WHERE status IN (allowed)`) inside the transaction that
also writes the event, so the state machine holds under concurrency: when twenty couriers accept the
same offer at once, the database lets exactly one UPDATE match and the others see 409.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import msgspec

from server.alerts.gateway import drop_alerts
from server.auth.principal import Principal
from server.courier.schemas import ActionIn, CollectIn, DeclineIn, FailIn
from server.db.engine import UNIQUE_VIOLATION, is_postgres
from server.db.script import Script, Sql, fetch
from server.dispatch.offers import (
    close_offers_steps,
    load_of_steps,
    lock_courier_steps,
    offer_snapshot,
)
from server.dispatch.service import OFFER_TIMER_KINDS, after_decline, hold_offer_timers
from server.domain.contact import check_waybill
from server.domain.pickup_states import HELD_STATES, Action, IllegalTransition, allowed_from, next_status
from server.domain.visibility import OFFERED_COURIER
from server.errors import ApiError, field_errors, not_found
from server.photos.service import photo_of_collect
from server.pickups.schemas import PickupOut
from server.pickups.service import pickup_view
from server.push.log import SYSTEM, Actor, UnitOfWork, run_unit, unit_of_work, utcnow
from server.tables import Event, EventRecipient, Pickup, PickupOffer
from server.zones.service import directory


def courier_id_of(principal: Principal) -> int:
    if principal.courier_id is None:
        raise ApiError(403, "forbidden", "this account is not a courier")
    return principal.courier_id


async def _replayed(courier_id: int, body: ActionIn, pickup_id: int) -> bool:
    """True when the app already did this action (same client_action_id): answer without redoing it."""
    if not body.client_action_id:
        return False
    return bool(await fetch(Event._meta.db, _DONE_BEFORE, body.client_action_id, courier_id, pickup_id))


# The statements every courier action may need, written once (a Piccolo query object built per call was
# a large share of such a request's CPU).
_DONE_BEFORE = Sql(
    "SELECT 1 AS one FROM events WHERE client_action_id = {} AND actor_kind = 'courier' AND actor_id = {} "
    "AND pickup = {} LIMIT 1"
)
_STATUS_AND_HOLDER = Sql("SELECT status, courier FROM pickups WHERE id = {}")


_EVER_OFFERED = Sql("SELECT 1 AS one FROM pickup_offers WHERE pickup = {} AND courier = {} LIMIT 1")


async def _known_to(courier_id: int, pickup_id: int, holder: int | None) -> bool:
    """Whether the pickup was ever put in front of this courier: offered, assigned or held, each of
    which addressed them an event about it. To any other courier it does not exist (404, the answer
    for an id nobody has), as another partner's pickup does not to a partner."""
    if holder == courier_id:
        return True
    # An offer row always came with the offered event addressed to them, and is found through the
    # pickup's index: the join below walks every event ever addressed to the courier (the losing
    # racer of every accept asks this).
    if await fetch(PickupOffer._meta.db, _EVER_OFFERED, pickup_id, courier_id):
        return True
    return await EventRecipient.exists().where(
        (EventRecipient.courier == courier_id) & (EventRecipient.event.pickup == pickup_id)
    )


async def _status_and_holder(pickup_id: int) -> dict[str, Any] | None:
    rows = await fetch(Pickup._meta.db, _STATUS_AND_HOLDER, pickup_id)
    return rows[0] if rows else None


async def _conflict(pickup_id: int, action: Action, courier_id: int) -> ApiError:
    row = await _status_and_holder(pickup_id)
    if row is None or not await _known_to(courier_id, pickup_id, row["courier"]):
        return not_found("pickup")
    if action is not Action.ACCEPT and row["courier"] != courier_id:
        return ApiError(409, "not_yours", "this pickup is not assigned to you", current_status=row["status"])
    try:
        next_status(row["status"], action)
    except IllegalTransition as exc:
        return ApiError(409, "illegal_transition", str(exc), current_status=row["status"])
    return ApiError(409, "conflict", "the pickup changed meanwhile; reload it", current_status=row["status"])


def _client_at(body: ActionIn) -> datetime | None:
    # The offset and the range are checked where the body is decoded (server/validation.py: Moment).
    return body.client_at.astimezone(UTC) if body.client_at else None


def _open_offer(pickup_id: int, courier_id: int) -> Any:
    """The where-clause of this courier's open offer of the pickup (at most one is open at a time)."""
    return (
        (PickupOffer.pickup == pickup_id)
        & (PickupOffer.courier == courier_id)
        & PickupOffer.outcome.is_null()
    )


async def accept(principal: Principal, pickup_id: int, body: ActionIn) -> PickupOut:
    courier_id = courier_id_of(principal)
    client_at = _client_at(body)
    if await _replayed(courier_id, body, pickup_id):
        return await pickup_view(
            pickup_id, with_events=False, viewer=Actor("courier", courier_id), for_partner=False
        )
    try:
        # One transaction in one hop to the database (server/db/script.py).
        await run_unit(
            lambda uow: _accept_steps(uow, courier_id, pickup_id, body.client_action_id, client_at)
        )
    except _Refused as refused:
        # Rolled back; what to tell the courier is read afterwards.
        if refused.reason == "not_offered":
            raise await _not_offered(pickup_id, courier_id) from None
        if refused.reason == "lost":
            raise await _conflict(pickup_id, Action.ACCEPT, courier_id) from None
        assert refused.error is not None
        raise refused.error from None
    return await pickup_view(
        pickup_id, with_events=False, viewer=Actor("courier", courier_id), for_partner=False
    )


class _Refused(Exception):
    """A courier's action refused inside its script: `reason` not_offered or lost (the answer needs
    reads that wait for the rollback), or the `error` itself."""

    def __init__(self, reason: str, error: ApiError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


_DROP_OFFER_TIMERS = Sql(
    "DELETE FROM timers WHERE pickup = {} AND kind IN ("
    + ", ".join(f"'{k}'" for k in OFFER_TIMER_KINDS)
    + ")"
)
_OPEN_OFFER = Sql(
    "SELECT id FROM pickup_offers WHERE pickup = {} AND courier = {} AND outcome IS NULL LIMIT 1"
)
_TAKE = Sql(
    "UPDATE pickups SET status = {}, courier = {}, assigned_by_dispatcher = {}, version = version + 1, "
    "updated_at = {} WHERE id = {} AND status = 'offered' RETURNING id, zone"
)


def _accept_steps(
    uow: UnitOfWork, courier_id: int, pickup_id: int, client_action_id: str | None, client_at: datetime | None
) -> Script[None]:
    # First, so that counting the load below and taking the pickup is one step (see lock_courier).
    courier = yield from lock_courier_steps(courier_id)
    # Before the pickup's row (see drop_timers), and before the offer is checked: an expiry firing
    # now finishes first, and the check sees what it did.
    yield _DROP_OFFER_TIMERS, (pickup_id,)
    if not (yield _OPEN_OFFER, (pickup_id, courier_id)):
        raise _Refused("not_offered")
    if courier is None or not courier["on_duty"]:
        raise _Refused("off_duty", ApiError(409, "off_duty", "go on duty before accepting pickups"))
    if (yield from load_of_steps(courier_id)) >= courier["capacity"]:
        raise _Refused(
            "over_capacity",
            ApiError(409, "over_capacity", f"you already hold {courier['capacity']} open pickups"),
        )
    now = utcnow()
    status = next_status("offered", Action.ACCEPT).value
    won = yield _TAKE, (status, courier_id, False, now, pickup_id)
    if not won:
        raise _Refused("lost")
    uow.note_zone(pickup_id, won[0]["zone"])
    uow.add(
        "pickup.accepted",
        actor=Actor("courier", courier_id),
        pickup_id=pickup_id,
        to=[courier_id],
        at=now,
        data={"courier": courier_id},
        client_action_id=client_action_id,
        client_at=client_at,
    )
    # The others lose their offer by the rules (first come, first served), not by this courier's say.
    yield from close_offers_steps(uow, pickup_id, winner=courier_id, actor=SYSTEM, reason="taken")


async def _not_offered(pickup_id: int, courier_id: int) -> ApiError:
    row = await _status_and_holder(pickup_id)
    if row is None or not await _known_to(courier_id, pickup_id, row["courier"]):
        return not_found("pickup")
    if row["status"] != "offered":
        return ApiError(
            409, "illegal_transition", f"the pickup is {row['status']}", current_status=row["status"]
        )
    return ApiError(409, "not_offered", "this pickup was not offered to you", current_status=row["status"])


async def _advance(
    principal: Principal,
    pickup_id: int,
    body: ActionIn,
    action: Action,
    event_type: str,
    values: dict[Any, Any],
    data: dict[str, Any],
) -> PickupOut:
    """Move a pickup the courier holds along the state machine, with its event, or 409."""
    courier_id = courier_id_of(principal)
    client_at = _client_at(body)
    if await _replayed(courier_id, body, pickup_id):
        return await pickup_view(
            pickup_id, with_events=False, viewer=Actor("courier", courier_id), for_partner=False
        )
    target = {
        Action.CONTACT: "contacted",
        Action.COLLECT: "collected",
        Action.FAIL: "failed",
    }[action]
    waybill = values.get(Pickup.waybill_no)
    columns = {column._meta.db_column_name: value for column, value in values.items()}
    try:
        # One transaction in one hop to the database (server/db/script.py).
        await run_unit(
            lambda uow: _advance_steps(
                uow, courier_id, pickup_id, action, target, columns, event_type, data, body, client_at
            )
        )
    except _Refused:
        raise await _conflict(pickup_id, action, courier_id) from None
    except UNIQUE_VIOLATION:
        # The unique index over waybill numbers is the check (no read before every collect), and it
        # also stops the later of two pickups collected with one waybill at the same moment. It fires
        # only when the state change itself was allowed: a pickup that is not yours or not held is
        # answered as such first.
        if waybill is not None and await _waybill_bound_elsewhere(waybill, pickup_id):
            raise _waybill_taken() from None
        raise
    return await pickup_view(
        pickup_id, with_events=False, viewer=Actor("courier", courier_id), for_partner=False
    )


def _advance_steps(
    uow: UnitOfWork,
    courier_id: int,
    pickup_id: int,
    action: Action,
    target: str,
    columns: dict[str, Any],
    event_type: str,
    data: dict[str, Any],
    body: ActionIn,
    client_at: datetime | None,
) -> Script[None]:
    now = utcnow()
    allowed = tuple(sorted(s.value for s in allowed_from(action)))
    changed = yield (
        _advance_sql(tuple(columns), allowed),
        (target, now, *columns.values(), pickup_id, courier_id),
    )
    if not changed:
        raise _Refused("lost")  # what to answer is read after the rollback: _conflict
    uow.note_zone(pickup_id, changed[0]["zone"])
    if action is Action.CONTACT:
        yield from _first_contact_steps(pickup_id, courier_id, now)
    uow.add(
        event_type,
        actor=Actor("courier", courier_id),
        pickup_id=pickup_id,
        to=[courier_id],
        at=now,
        data=data,
        client_action_id=body.client_action_id,
        client_at=client_at,
    )


@lru_cache(maxsize=32)
def _advance_sql(columns: tuple[str, ...], allowed: tuple[str, ...]) -> Sql:
    """The conditional UPDATE of a held pickup's state change, setting `columns` too."""
    sets = "".join(f', "{c}" = {{}}' for c in columns)
    statuses = ", ".join(f"'{s}'" for s in allowed)
    return Sql(
        f"UPDATE pickups SET status = {{}}, version = version + 1, updated_at = {{}}{sets} "
        f"WHERE id = {{}} AND courier = {{}} AND status IN ({statuses}) RETURNING id, zone"
    )


_ACCEPTED_OFFER = Sql(
    "SELECT id FROM pickup_offers WHERE pickup = {} AND courier = {} AND outcome = 'accepted' "
    "ORDER BY id DESC LIMIT 1"
)
_FIRST_CONTACT = Sql("UPDATE pickup_offers SET contacted_at = {} WHERE id = {} AND contacted_at IS NULL")


def _first_contact_steps(pickup_id: int, courier_id: int, now: datetime) -> Script[None]:
    """The alert timeline's last step: when the courier who accepted the offer first reached the
    customer (a pickup handed over by a dispatcher has no accepted offer, and no such step)."""
    offer = yield _ACCEPTED_OFFER, (pickup_id, courier_id)
    if offer:
        yield _FIRST_CONTACT, (now, offer[0]["id"])


def _waybill_taken() -> ApiError:
    return ApiError(
        409,
        "waybill_taken",
        "this waybill number is already bound to another pickup: check the waybill and scan again",
        field="waybill_no",
    )


async def _waybill_bound_elsewhere(waybill: str, pickup_id: int) -> bool:
    """A waybill binds one pickup (订单号与运单号捆绑): is it bound to another already?"""
    return await Pickup.exists().where((Pickup.waybill_no == waybill) & (Pickup.id != pickup_id))


async def contacted(principal: Principal, pickup_id: int, body: ActionIn) -> PickupOut:
    return await _advance(principal, pickup_id, body, Action.CONTACT, "pickup.contacted", {}, {})


async def collect(
    principal: Principal, pickup_id: int, body: CollectIn, waybill_patterns: Sequence[tuple[str, str]]
) -> PickupOut:
    """Collect: bind the waybill to the pickup, with what the courier found at the door."""
    courier_id = courier_id_of(principal)
    waybill, problem = check_waybill(body.waybill_no, waybill_patterns)
    if problem:
        raise field_errors([{"field": "waybill_no", "message": problem}])
    if body.photo_id is not None and not await photo_of_collect(courier_id, pickup_id, body.photo_id):
        raise field_errors(
            [{"field": "photo_id", "message": "no photo of this pickup uploaded by you has this id"}]
        )
    pieces = body.pieces
    if pieces is None:  # as many as the partner declared (parcel_count never changes after creation)
        row = await Pickup.select(Pickup.parcel_count).where(Pickup.id == pickup_id).first()
        pieces = row["parcel_count"] if row else None
    details = {
        "pieces": pieces,
        "weight_kg": body.weight_kg,
        "repacked": body.repacked,
        "photo_id": body.photo_id,
    }
    return await _advance(
        principal,
        pickup_id,
        body,
        Action.COLLECT,
        "pickup.collected",
        {
            Pickup.waybill_no: waybill,
            Pickup.collected_pieces: pieces,
            Pickup.collected_weight_kg: body.weight_kg,
            Pickup.repacked: body.repacked,
            Pickup.collected_photo: body.photo_id,
        },
        {"waybill_no": waybill, **details},
    )


# How far ahead a courier may note the customer's new time (a return is rarely put off longer).
NEW_TIME_WITHIN = timedelta(days=14)


async def fail(principal: Principal, pickup_id: int, body: FailIn) -> PickupOut:
    """Cannot collect: the reason from the fixed list, and the new time the customer asked for, if any
    (in the event, where the partner, the console and re-dispatch read it)."""
    data: dict[str, Any] = {"reason": body.reason, "note": body.note}
    if body.new_time is not None:
        new_time = body.new_time.astimezone(UTC)
        # Judged from when the courier noted it: an action sent from the outbox hours later still stands.
        noted = _client_at(body) or utcnow()
        if not noted < new_time <= noted + NEW_TIME_WITHIN:
            raise field_errors(
                [{"field": "new_time", "message": "new_time must be after the failure, within 14 days"}]
            )
        data["new_time"] = new_time.isoformat()
    return await _advance(
        principal,
        pickup_id,
        body,
        Action.FAIL,
        "pickup.failed",
        {Pickup.failure_reason: body.reason},
        data,
    )


async def _offer_view(pickup_id: int) -> PickupOut:
    """What a courier who has (or had) only an offer of the pickup is answered: its phone masked."""
    return await pickup_view(pickup_id, with_events=False, viewer=OFFERED_COURIER, for_partner=False)


async def decline(principal: Principal, pickup_id: int, body: DeclineIn) -> PickupOut:
    """The courier lets the offer pass, with a reason. Their offer ends (declined) and dispatch goes
    on as when it expires: the next courier in assign mode, the next stage (or the dispatcher) when
    nobody's offer is left open."""
    courier_id = courier_id_of(principal)
    client_at = _client_at(body)
    if await _replayed(courier_id, body, pickup_id):
        return await _offer_view(pickup_id)
    async with unit_of_work() as uow:
        # Timers first, as every change to an offered pickup (see drop_timers).
        await hold_offer_timers(pickup_id)
        now = utcnow()
        declined = (
            await PickupOffer.update({PickupOffer.outcome: "declined", PickupOffer.answered_at: now})
            .where(_open_offer(pickup_id, courier_id))
            .returning(PickupOffer.id)
        )
        if not declined:
            raise await _not_offered(pickup_id, courier_id)
        await drop_alerts(pickup_id, [courier_id])
        uow.add(
            "pickup.declined",
            actor=Actor("courier", courier_id),
            pickup_id=pickup_id,
            to=[courier_id],  # the app's other tabs stop ringing for it
            at=now,
            data={"courier": courier_id, "reason": body.reason, "note": body.note},
            client_action_id=body.client_action_id,
            client_at=client_at,
        )
        await after_decline(uow, pickup_id)
    return await _offer_view(pickup_id)


async def seen(principal: Principal, pickup_id: int, body: ActionIn) -> PickupOut:
    """The offer's card was on the courier's screen: the first time is kept (and no SMS or call
    follows); later calls change nothing."""
    courier_id = courier_id_of(principal)
    client_at = _client_at(body)
    if await _replayed(courier_id, body, pickup_id):
        return await _offer_view(pickup_id)
    async with unit_of_work() as uow:
        await drop_alerts(pickup_id, [courier_id])  # timers before offers, as drop_timers says
        now = utcnow()
        first = (
            await PickupOffer.update({PickupOffer.seen_at: now})
            .where(_open_offer(pickup_id, courier_id) & PickupOffer.seen_at.is_null())
            .returning(PickupOffer.id)
        )
        if first:
            uow.add(
                "pickup.offer_seen",
                actor=Actor("courier", courier_id),
                pickup_id=pickup_id,
                at=now,
                data={"courier": courier_id},
                client_action_id=body.client_action_id,
                client_at=client_at,
            )
        elif not await PickupOffer.exists().where(_open_offer(pickup_id, courier_id)):
            raise await _not_offered(pickup_id, courier_id)
    return await _offer_view(pickup_id)


async def arrived(principal: Principal, pickup_id: int, body: ActionIn) -> PickupOut:
    """The courier is at the customer's door: an event (the state machine has no status for it) for
    a pickup they hold, accepted or contacted."""
    courier_id = courier_id_of(principal)
    client_at = _client_at(body)
    if await _replayed(courier_id, body, pickup_id):
        return await pickup_view(
            pickup_id, with_events=False, viewer=Actor("courier", courier_id), for_partner=False
        )
    async with unit_of_work() as uow:
        query = Pickup.select(Pickup.id, Pickup.zone).where(
            (Pickup.id == pickup_id)
            & (Pickup.courier == courier_id)
            & Pickup.status.is_in([s.value for s in HELD_STATES])
        )
        if is_postgres(Pickup._meta.db):
            query = query.lock_rows("SHARE")  # no collect or reassignment slips in before the event
        held = await query.first()
        if held is None:
            raise await _not_holding(pickup_id, courier_id)
        uow.note_zone(pickup_id, held["zone"])
        uow.add(
            "pickup.arrived",
            actor=Actor("courier", courier_id),
            pickup_id=pickup_id,
            to=[courier_id],
            data={"courier": courier_id},
            client_action_id=body.client_action_id,
            client_at=client_at,
        )
    return await pickup_view(
        pickup_id, with_events=False, viewer=Actor("courier", courier_id), for_partner=False
    )


async def _not_holding(pickup_id: int, courier_id: int) -> ApiError:
    row = await Pickup.select(Pickup.status, Pickup.courier).where(Pickup.id == pickup_id).first()
    if row is None or not await _known_to(courier_id, pickup_id, row["courier"]):
        return not_found("pickup")
    if row["courier"] != courier_id:
        return ApiError(409, "not_yours", "this pickup is not assigned to you", current_status=row["status"])
    return ApiError(
        409,
        "illegal_transition",
        f"cannot arrive at a pickup that is {row['status']}",
        current_status=row["status"],
    )


async def my_pickups(principal: Principal) -> dict[str, list[dict[str, Any]]]:
    """The courier's open offers and the pickups they hold (for the app's first screen)."""
    courier_id = courier_id_of(principal)
    offers = await PickupOffer.select(PickupOffer.pickup).where(
        (PickupOffer.courier == courier_id) & PickupOffer.outcome.is_null()
    )
    offer_ids = [o["pickup"] for o in offers]
    offered = (
        await Pickup.select().where(Pickup.id.is_in(offer_ids) & (Pickup.status == "offered"))
        if offer_ids
        else []
    )
    held = await Pickup.select(Pickup.id).where(
        (Pickup.courier == courier_id) & Pickup.status.is_in(["accepted", "contacted"])
    )
    return {
        "offers": [offer_snapshot(p, directory.zones.get(p["zone"])) for p in offered],
        "held": [
            msgspec.to_builtins(
                await pickup_view(
                    h["id"], with_events=False, viewer=Actor("courier", courier_id), for_partner=False
                )
            )
            for h in held
        ],
    }
