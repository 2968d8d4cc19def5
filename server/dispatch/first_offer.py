"""The first dispatch of new pickups, as steps of the create's script (server/db/script.py).

The same decision as dispatch_pickup (server/dispatch/service.py) for a pickup never offered: the
zone's couriers, widening stage by stage, by the zone's rule (rules.offer_targets); the dispatcher when
nobody is left. Decided *before* the pickup's row is written, so the row goes in already offered (one
INSERT rather than an INSERT and an UPDATE); its offer rows, offer timers and events follow in the same
transaction. Every later dispatch (expiry, decline, unassign) stays in dispatch/service.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from server.alerts.gateway import alert_timer_rows
from server.db.script import Script, Sql
from server.dispatch.offers import offered_event_data
from server.dispatch.rules import (
    BACKUP,
    DISPATCHER,
    STAGE_NAMES,
    ZONE,
    Candidate,
    epoch_ms,
    offer_targets,
)
from server.domain.pickup_states import HELD_STATES, Action, next_status
from server.push.log import SYSTEM, UnitOfWork
from server.zones.service import ZoneInfo

# On-duty couriers of a stage with their load (pickups held now) in one statement.
_HELD = ", ".join(f"'{s.value}'" for s in sorted(HELD_STATES))
_CANDIDATE_COLUMNS = (
    "SELECT cz.courier AS courier, c.capacity AS capacity, c.last_lat AS last_lat, c.last_lng AS last_lng, "
    f"(SELECT COUNT(*) FROM pickups p WHERE p.courier = cz.courier AND p.status IN ({_HELD})) AS load "
    "FROM courier_zones cz JOIN couriers c ON c.id = cz.courier "
)
_BY_ROLE = Sql(_CANDIDATE_COLUMNS + "WHERE cz.zone = {} AND cz.role = {} AND c.on_duty = {}")
_BY_STATION = Sql(
    _CANDIDATE_COLUMNS + "WHERE cz.zone IN (SELECT id FROM zones WHERE station = {}) AND c.on_duty = {}"
)
_ROLES = {ZONE: "primary", BACKUP: "backup"}


class FirstOffer(msgspec.Struct):
    """What dispatch decided for a new pickup: the stage and the couriers (none: the dispatcher)."""

    stage: int
    couriers: list[int]


def candidates_steps(zone: ZoneInfo, stage: int) -> Script[list[Candidate]]:
    """On-duty couriers of one escalation stage, with their load and last known position."""
    if stage in _ROLES:
        rows = yield _BY_ROLE, (zone.id, _ROLES[stage], True)
    else:
        rows = yield _BY_STATION, (zone.station_id, True)
    couriers = {r["courier"]: r for r in rows}  # a courier in two of the station's zones counts once
    return [
        Candidate(cid, int(r["load"]), r["capacity"], r["last_lat"], r["last_lng"])
        for cid, r in sorted(couriers.items())
    ]


def decide_steps(
    zone: ZoneInfo,
    lat: float | None,
    lng: float | None,
    candidates_seen: dict[tuple[int, int], list[Candidate]],
) -> Script[FirstOffer]:
    """The first stage with someone to offer a new pickup to, and who; `candidates_seen` keeps each
    (zone, stage)'s couriers for the rest of a batch (offering changes neither duty nor load)."""
    stage = ZONE
    while stage < DISPATCHER:
        key = (zone.id, stage)
        if key not in candidates_seen:
            candidates_seen[key] = yield from candidates_steps(zone, stage)
        targets = offer_targets(
            zone.dispatch_mode,
            candidates_seen[key],
            pickup_lat=lat,
            pickup_lng=lng,
            ever_offered=set(),
            passed_over=set(),
        )
        if targets:
            return FirstOffer(stage, targets)
        stage += 1
    return FirstOffer(DISPATCHER, [])


def apply_to_row(row: dict[str, Any], zone: ZoneInfo, offer: FirstOffer) -> None:
    """The new pickup's row as the decision leaves it (what offer_to / _escalate_to_dispatcher write)."""
    row["escalation_stage"] = offer.stage
    if offer.couriers:
        row["status"] = next_status(row["status"], Action.OFFER).value
        row["zone"] = zone.id
        row["courier"] = None
        row["offer_round"] = row["offer_round"] + 1
        row["version"] = row["version"] + 1


def record_offer(
    uow: UnitOfWork,
    pickup: dict[str, Any],
    zone: ZoneInfo,
    offer: FirstOffer,
    now: datetime,
    offers: list[dict[str, Any]],
    timers: list[dict[str, Any]],
) -> None:
    """The decision's events (recorded in `uow`), offer rows and offer timers (appended to `offers` and
    `timers`, written by the caller): the pickup's row already carries the decision (apply_to_row)."""
    pickup_id = pickup["id"]
    if not offer.couriers:
        uow.add(
            "pickup.escalated",
            actor=SYSTEM,
            pickup_id=pickup_id,
            data={"stage": STAGE_NAMES[DISPATCHER], "status": pickup["status"]},
        )
        return
    if offer.stage > ZONE:
        uow.add(
            "pickup.escalated", actor=SYSTEM, pickup_id=pickup_id, data={"stage": STAGE_NAMES[offer.stage]}
        )
    round_no = pickup["offer_round"]
    expires = now + timedelta(seconds=zone.offer_ttl_s) if zone.offer_ttl_s else None
    offers.extend(
        {"pickup": pickup_id, "courier": c, "round": round_no, "offered_at": now, "expires_at": expires}
        for c in offer.couriers
    )
    timers.extend(alert_timer_rows(pickup_id, offer.couriers, round_no, now))
    timers.append(
        {
            "kind": "offer_expiry",
            "pickup": pickup_id,
            "courier": None,
            "due_ms": epoch_ms(now + timedelta(seconds=zone.offer_ttl_s)),
            "round": round_no,
        }
    )
    uow.add(
        "pickup.offered",
        actor=SYSTEM,
        pickup_id=pickup_id,
        to=offer.couriers,
        at=now,
        data=offered_event_data(pickup, zone, expires=expires, reason="new"),
    )
