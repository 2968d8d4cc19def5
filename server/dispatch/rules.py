"""Dispatch rules with no I/O: escalation stages, who an assign-mode offer goes to, time-limit timers.

Grab (抢单): every on-duty courier of the stage sees the offer; the first to accept wins. A stage
nobody takes within the zone's TTL widens to the next one; earlier offers stay open.
Assign (派单): one courier at a time — fewest open pickups, then nearest when both positions are
known — has the TTL to accept before the offer passes to the next; when a stage has nobody left, the
next stage's couriers are tried.
Stages: the zone's own couriers → its backup couriers → every courier of the station → the dispatcher.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

ZONE, BACKUP, STATION, DISPATCHER = 0, 1, 2, 3
STAGE_NAMES = {ZONE: "zone", BACKUP: "backup", STATION: "station", DISPATCHER: "dispatcher"}
SLA_WARNING_SHARE = 0.8


class Candidate(NamedTuple):
    courier_id: int
    load: int  # pickups held now
    capacity: int
    lat: float | None = None
    lng: float | None = None


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres (haversine); plenty for ranking couriers within a city."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def rank_for_assign(
    candidates: Iterable[Candidate], *, pickup_lat: float | None, pickup_lng: float | None
) -> list[int]:
    """Couriers with spare capacity, best first: fewest open pickups, then nearest, then lowest id.

    A courier with no known position sorts after those with one at the same load: nearness is only a
    reason to prefer someone when it is known.
    """

    def key(c: Candidate) -> tuple[int, float, int]:
        if pickup_lat is None or pickup_lng is None or c.lat is None or c.lng is None:
            distance = math.inf
        else:
            distance = distance_m(pickup_lat, pickup_lng, c.lat, c.lng)
        return (c.load, distance, c.courier_id)

    return [c.courier_id for c in sorted((c for c in candidates if c.load < c.capacity), key=key)]


def next_assignee(ranked: Sequence[int], already_offered: set[int]) -> int | None:
    return next((c for c in ranked if c not in already_offered), None)


def offer_targets(
    mode: str,
    candidates: Sequence[Candidate],
    *,
    pickup_lat: float | None,
    pickup_lng: float | None,
    ever_offered: set[int],
    passed_over: set[int],
) -> list[int]:
    """Who a stage's offer goes to: in assign mode the best-ranked courier not offered it before, in
    grab mode every courier with spare capacity who is not `passed_over` (has it open or declined it)."""
    if mode == "assign":
        chosen = next_assignee(
            rank_for_assign(candidates, pickup_lat=pickup_lat, pickup_lng=pickup_lng), ever_offered
        )
        return [chosen] if chosen is not None else []
    return sorted(c.courier_id for c in candidates if c.load < c.capacity and c.courier_id not in passed_over)


def sla_timers(created: datetime, due: datetime | None) -> list[tuple[str, datetime]]:
    """The warning at 80 % of the time limit and the breach at 100 %."""
    if due is None or due <= created:
        return [("sla_breach", due)] if due is not None else []
    warning = created + timedelta(seconds=(due - created).total_seconds() * SLA_WARNING_SHARE)
    return [("sla_warning", warning), ("sla_breach", due)]


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
