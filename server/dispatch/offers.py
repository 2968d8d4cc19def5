"""Putting a pickup in front of couriers: who is eligible, the offer rows, and the offered event."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from server.alerts.gateway import alert_timer_rows
from server.db.engine import is_postgres
from server.db.script import Script, Sql, insert_steps, run_script
from server.domain.pickup_states import HELD_STATES, Action, next_status
from server.domain.visibility import OFFERED_COURIER, contact_for
from server.push.log import SYSTEM, Actor, UnitOfWork, utcnow
from server.tables import Courier, Pickup, PickupOffer
from server.zones.service import ZoneInfo

_COURIER = "SELECT id, on_duty, capacity FROM couriers WHERE id = {}"
_LOCK_COURIER = {False: Sql(_COURIER), True: Sql(_COURIER + " FOR NO KEY UPDATE")}


async def lock_courier(courier_id: int) -> dict[str, Any] | None:
    """lock_courier_steps on its own, in the caller's transaction."""
    return await run_script(Courier._meta.db, lock_courier_steps(courier_id))


def lock_courier_steps(courier_id: int) -> Script[dict[str, Any] | None]:
    """The courier's duty and capacity, read as the transaction's first step with the courier's row
    locked until it ends, so that whoever then counts the courier's load and hands them a pickup does
    so alone: two accepts (or an accept and an assignment) for one courier take turns, and capacity
    holds. SQLite runs write transactions one at a time anyway; PostgreSQL needs the row lock.

    FOR NO KEY UPDATE, not FOR UPDATE: the event log's inserts reference courier rows (FOR KEY SHARE),
    under the advisory lock UnitOfWork.write takes last; FOR UPDATE would make them wait for us while
    we wait for that lock, a deadlock.
    """
    rows = yield _LOCK_COURIER[is_postgres(Courier._meta.db)], (courier_id,)
    return rows[0] if rows else None


_HELD = ", ".join(f"'{s.value}'" for s in sorted(HELD_STATES))
_LOAD_OF_ONE = Sql(f"SELECT COUNT(*) AS n FROM pickups WHERE courier = {{}} AND status IN ({_HELD})")


def load_of_steps(courier_id: int) -> Script[int]:
    """How many pickups one courier holds now (accepted or contacted)."""
    rows = yield _LOAD_OF_ONE, (courier_id,)
    return int(rows[0]["n"])


async def open_load(courier_ids: list[int]) -> dict[int, int]:
    """How many pickups each courier holds now (accepted or contacted)."""
    if not courier_ids:
        return {}
    rows = await Pickup.select(Pickup.courier).where(
        Pickup.courier.is_in(courier_ids) & Pickup.status.is_in([s.value for s in HELD_STATES])
    )
    load: dict[int, int] = {}
    for row in rows:
        load[row["courier"]] = load.get(row["courier"], 0) + 1
    return load


def offer_snapshot(pickup: dict[str, Any], zone: ZoneInfo | None) -> dict[str, Any]:
    """What a courier sees in an offer: enough to decide, with the phone masked until accepted."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": pickup["id"],
        "tracking_code": pickup["tracking_code"],
        "zone": zone.code if zone else None,
        "sender_name": pickup["sender_name"],
        "sender_phone": contact_for(OFFERED_COURIER, pickup).phone,
        "district": pickup["district"],
        "street": pickup["street"],
        "address_detail": pickup["address_detail"],
        "lat": pickup["lat"],
        "lng": pickup["lng"],
        "window_start": iso(pickup["window_start"]),
        "window_end": iso(pickup["window_end"]),
        "parcel_count": pickup["parcel_count"],
        "weight_kg": pickup["weight_kg"],
        "note": pickup["note"],
        "due_at": iso(pickup["due_at"]),
    }


_NEW_ROUND = Sql(
    "UPDATE pickups SET status = {}, zone = {}, courier = NULL, offer_round = {}, version = version + 1, "
    "updated_at = {} WHERE id = {}"
)


async def offer_to(
    uow: UnitOfWork,
    pickup: dict[str, Any],
    zone: ZoneInfo,
    courier_ids: list[int],
    *,
    ttl_s: int | None = None,
    reason: str = "new",
) -> None:
    """Move the pickup to `offered` for these couriers (a new round) and push the offer to them.
    Offers are the dispatch rules' decision: the system is their actor, whoever's request led here.
    In the caller's transaction, in one hop (the pickup's row, the offers, their alert timers)."""
    now = utcnow()
    new_status = next_status(pickup["status"], Action.OFFER)
    round_no = pickup["offer_round"] + 1

    def steps() -> Script[None]:
        yield _NEW_ROUND, (new_status.value, zone.id, round_no, now, pickup["id"])
        pickup.update(status=new_status.value, zone=zone.id, courier=None, offer_round=round_no)
        uow.note_zone(pickup["id"], zone.id)
        expires = now + timedelta(seconds=ttl_s) if ttl_s else None
        yield from _offer_in_round_steps(
            uow, pickup, zone, courier_ids, now=now, expires=expires, reason=reason
        )

    await run_script(Pickup._meta.db, steps())


async def join_offer(uow: UnitOfWork, pickup: dict[str, Any], zone: ZoneInfo, courier_id: int) -> None:
    """Add a courier who came on duty to the pickup's current (grab) round."""
    await run_script(
        Pickup._meta.db,
        _offer_in_round_steps(uow, pickup, zone, [courier_id], now=utcnow(), expires=None, reason="on_duty"),
    )


def _offer_in_round_steps(
    uow: UnitOfWork,
    pickup: dict[str, Any],
    zone: ZoneInfo,
    courier_ids: list[int],
    *,
    now: datetime,
    expires: datetime | None,
    reason: str,
) -> Script[None]:
    """The offer rows of the pickup's current round, their alert timers, and the `pickup.offered` event
    pushed to those couriers.

    The event says what each courier needs to decide, the same for all of them; who else was offered
    it is not in it: the event's recipients (EventRecipient) and the offer rows say that. A list of
    everyone in every courier's message made a grab zone's bytes grow with the square of its size."""
    round_no = pickup["offer_round"]
    if courier_ids:
        offers = [
            {
                "pickup": pickup["id"],
                "courier": c,
                "round": round_no,
                "offered_at": now,
                "expires_at": expires,
            }
            for c in courier_ids
        ]
        yield from insert_steps("pickup_offers", offers)
        yield from insert_steps("timers", alert_timer_rows(pickup["id"], courier_ids, round_no, now))
    uow.add(
        "pickup.offered",
        actor=SYSTEM,
        pickup_id=pickup["id"],
        to=courier_ids,
        at=now,
        data=offered_event_data(pickup, zone, expires=expires, reason=reason),
    )


def offered_event_data(
    pickup: dict[str, Any], zone: ZoneInfo, *, expires: datetime | None, reason: str
) -> dict[str, Any]:
    """What the `pickup.offered` event carries (and its push message), for the pickup's current round:
    built here only, whether the offer is written by _offer_in_round_steps or with a create
    (server/dispatch/first_offer.py)."""
    return {
        "round": pickup["offer_round"],
        "zone": zone.code,
        "mode": zone.dispatch_mode,
        "reason": reason,
        "expires_at": expires.isoformat() if expires else None,
        "pickup": offer_snapshot(pickup, zone),
    }


async def close_offers(
    uow: UnitOfWork, pickup_id: int, *, winner: int | None, actor: Actor, reason: str
) -> list[int]:
    """close_offers_steps in the caller's transaction, in one hop."""
    return await run_script(
        PickupOffer._meta.db, close_offers_steps(uow, pickup_id, winner=winner, actor=actor, reason=reason)
    )


_OPEN_OFFERS = Sql("SELECT id, courier FROM pickup_offers WHERE pickup = {} AND outcome IS NULL")
_WITHDRAW_OTHERS = Sql(
    "UPDATE pickup_offers SET outcome = 'withdrawn' WHERE pickup = {} AND outcome IS NULL AND courier <> {}"
)
_ACCEPT_WINNERS = Sql(
    "UPDATE pickup_offers SET outcome = 'accepted', answered_at = {} "
    "WHERE pickup = {} AND outcome IS NULL AND courier = {}"
)


def close_offers_steps(
    uow: UnitOfWork, pickup_id: int, *, winner: int | None, actor: Actor, reason: str
) -> Script[list[int]]:
    """End every open offer of the pickup; tell everyone but the winner it is withdrawn."""
    open_offers = yield _OPEN_OFFERS, (pickup_id,)
    losers = sorted({o["courier"] for o in open_offers if o["courier"] != winner})
    if open_offers:
        yield _WITHDRAW_OTHERS, (pickup_id, winner or 0)
        if winner is not None:
            yield _ACCEPT_WINNERS, (utcnow(), pickup_id, winner)
    if losers:
        uow.add("pickup.withdrawn", actor=actor, pickup_id=pickup_id, to=losers, data={"reason": reason})
    return losers
