"""The console's board: the pickups of a dispatcher's stations in sections, searched, filtered, sorted and
paged on the server, with exact counts per section for the current filter.

A station's real day is thousands of open pickups, and the database holds every pickup ever made; so
nothing here reads more than one page per section, every search key is an indexed equality (the phone's
last four digits are a stored, indexed column), and the counts are one grouped query over the open
statuses plus the recent failed and closed ones (index ranges). The board is always read whole (counts
and pages in one request), so that a section's badge and its "showing X–Y of N" never disagree, and
console.js reads it again after every change rather than patching counts.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import msgspec
from piccolo.query.functions.aggregate import Count
from piccolo.query.mixins import OrderByRaw

from server.console.queries import (
    CLOSED_STATES,
    ESCALATED_TO_DISPATCHER,
    ROW_COLUMNS,
    SECTIONS,
    PickupRow,
    ZoneRef,
    section_of,
    to_row,
    zone_by_code,
)
from server.dispatch.scope import EVERYTHING, Scope
from server.domain.contact import normalize_mobile
from server.domain.pickup_states import HELD_STATES, OPEN_STATES, Status
from server.push.log import utcnow
from server.tables import Courier, Partner, Pickup, Station, Zone

PAGE_SIZE = 50
# "Recently closed" is the last day's collected and cancelled pickups; failed ones wait in their own
# queue for a week (a failed pickup needs re-dispatch or a call to the partner, not a glance).
CLOSED_WINDOW = timedelta(hours=24)
FAILED_WINDOW = timedelta(days=7)
ATTENTION = ("pending", "escalated", "breached", "chased", "failed")
SORTS = ("due", "newest", "oldest", "updated")
STATUSES = tuple(s.value for s in Status)
FINISHED = [s for s in CLOSED_STATES if s != "failed"]  # the "recently closed" section
FILTER_KEYS = ("q", "status", "station", "zone", "courier", "partner", "attention", "sort")
Q_MAX = 64
_DIGITS = re.compile(r"[0-9]{4}")
_SEPARATORS = re.compile(r"[\s\-()]")


class BoardFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What the dispatcher asked the board for: the URL's query parameters, checked (a value that makes
    no sense is dropped, never an error: a hand-edited URL shows the whole board)."""

    q: str = ""
    status: str = ""
    station: str = ""
    zone: str = ""
    courier: int | None = None
    partner: str = ""
    attention: str = ""
    sort: str = "due"
    pages: dict[str, int] = {}

    @classmethod
    def from_params(cls, params: Any) -> BoardFilter:
        """From a mapping of query parameters (Litestar's MultiDict or a dict)."""

        def text(key: str, limit: int = 64) -> str:
            value = params.get(key)
            value = value.strip() if isinstance(value, str) else ""
            return value if len(value) <= limit and value.isprintable() else ""

        courier = text("courier")
        status, attention, sort = text("status"), text("attention"), text("sort")
        pages = {}
        for key in SECTIONS:
            raw = text(f"{key}_page")
            if raw.isascii() and raw.isdigit() and 1 < int(raw) <= 1_000_000:
                pages[key] = int(raw)
        return cls(
            q=text("q", Q_MAX),
            status=status if status in STATUSES else "",
            station=text("station"),
            zone=text("zone"),
            courier=int(courier) if courier.isascii() and courier.isdigit() and len(courier) < 10 else None,
            partner=text("partner"),
            attention=attention if attention in ATTENTION else "",
            sort=sort if sort in SORTS else "due",
            pages=pages,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The filter as query parameters (empty ones left out), with `changes` applied."""
        out = {
            "q": self.q,
            "status": self.status,
            "station": self.station,
            "zone": self.zone,
            "courier": str(self.courier) if self.courier is not None else "",
            "partner": self.partner,
            "attention": self.attention,
            "sort": "" if self.sort == "due" else self.sort,
        }
        out |= {f"{k}_page": str(v) for k, v in self.pages.items() if v > 1}
        out |= {k: str(v) if v is not None else "" for k, v in changes.items()}
        return {k: v for k, v in out.items() if v}

    @property
    def active(self) -> bool:
        return any((self.q, self.status, self.station, self.zone, self.courier, self.partner, self.attention))


class Page(msgspec.Struct, kw_only=True):
    key: str
    rows: list[PickupRow]
    total: int
    page: int
    pages: int
    first: int  # 1-based position of the first row shown (0 when there is none)
    last: int


class Board(msgspec.Struct, kw_only=True):
    filter: BoardFilter
    sections: list[Page]
    zone: ZoneRef | None
    courier_name: str | None
    unknown: list[str]  # filter values naming nothing (an unknown station, zone, partner or courier)


def search_terms(q: str) -> Any:
    """A WHERE clause finding `q` as a tracking code, partner order number, waybill number or phone
    (whole, or its last four digits): each an equality on an indexed column, joined by OR."""
    compact = _SEPARATORS.sub("", q)
    upper = compact.upper()
    where: Any = (
        (Pickup.tracking_code == upper) | (Pickup.partner_order_no == q) | (Pickup.waybill_no == upper)
    )
    if compact != q:
        where = where | (Pickup.partner_order_no == compact)
    if _DIGITS.fullmatch(compact):
        where = where | (Pickup.sender_phone_last4 == compact)
    elif phone := normalize_mobile(compact):
        where = where | (Pickup.sender_phone == phone)
    return where


async def filter_clause(f: BoardFilter, scope: Scope) -> tuple[Any, ZoneRef | None, str | None, list[str]]:
    """The WHERE clause shared by every section and count; the zone and courier it names; what named
    nothing (shown to the dispatcher, and matching no pickup rather than being ignored)."""
    clauses: list[Any] = []
    unknown: list[str] = []
    nothing = Pickup.id == -1
    if (in_scope := scope.pickup_filter(Pickup.zone)) is not None:
        clauses.append(in_scope)
    zone = await zone_by_code(f.zone) if f.zone else None
    if f.zone:
        clauses.append(Pickup.zone == zone.id if zone else nothing)
        if zone is None:
            unknown.append("zone")
    if f.station:
        station = await Station.select(Station.id).where(Station.code == f.station).first()
        zone_ids = (
            [z["id"] for z in await Zone.select(Zone.id).where(Zone.station == station["id"])]
            if station
            else []
        )
        clauses.append(Pickup.zone.is_in(zone_ids) if zone_ids else nothing)
        if station is None:
            unknown.append("station")
    courier_name = None
    if f.courier is not None:
        courier = (
            await Courier.select(Courier.user._.display_name.as_alias("name"))
            .where(Courier.id == f.courier)
            .first()
        )
        courier_name = courier["name"] if courier else None
        clauses.append(Pickup.courier == f.courier)
        if courier is None:
            unknown.append("courier")
    if f.partner:
        partner = await Partner.select(Partner.id).where(Partner.code == f.partner).first()
        clauses.append(Pickup.partner == partner["id"] if partner else nothing)
        if partner is None:
            unknown.append("partner")
    if f.status:
        clauses.append(Pickup.status == f.status)
    if f.attention:
        clauses.append(_attention(f.attention))
    if f.q:
        clauses.append(search_terms(f.q))
    where: Any = None
    for clause in clauses:
        where = clause if where is None else where & clause
    return where, zone, courier_name, unknown


def _attention(kind: str) -> Any:
    open_now = Pickup.status.is_in([s.value for s in OPEN_STATES])
    if kind == "pending":
        return Pickup.status == "pending"
    if kind == "escalated":
        return open_now & (Pickup.escalation_stage >= ESCALATED_TO_DISPATCHER)
    if kind == "breached":
        return open_now & (Pickup.sla_state == "breached")
    if kind == "chased":
        return open_now & (Pickup.chase_count > 0)
    return Pickup.status == "failed"


def _section_clause(key: str, since: dict[str, Any]) -> Any:
    escalated = Pickup.escalation_stage >= ESCALATED_TO_DISPATCHER
    if key == "queue":
        return (Pickup.status == "pending") | ((Pickup.status == "offered") & escalated)
    if key == "offered":
        return (Pickup.status == "offered") & (Pickup.escalation_stage < ESCALATED_TO_DISPATCHER)
    if key == "held":
        return Pickup.status.is_in([s.value for s in HELD_STATES])
    if key == "failed":
        clause = Pickup.status == "failed"
    else:
        clause = Pickup.status.is_in(FINISHED)
    return clause & (Pickup.updated_at >= since[key]) if key in since else clause


def _windows(f: BoardFilter) -> dict[str, Any]:
    """Since when failed and closed pickups are shown: a search looks through all of history (its keys
    are indexed equalities), the board otherwise shows the recent ones."""
    if f.q:
        return {}
    now = utcnow()
    return {"failed": now - FAILED_WINDOW, "closed": now - CLOSED_WINDOW}


def count_queries(where: Any, since: dict[str, Any]) -> list[Any]:
    """Exact totals per section: the open ones grouped by state (index pickups_board_open alone), then a
    plain count of the failed and of the closed ones (an updated_at range each). Not one statement: an
    OR of the three, or a GROUP BY over the closed ones, makes the planner read every closed pickup."""
    open_now = Pickup.status.is_in([s.value for s in OPEN_STATES])
    failed, closed = _section_clause("failed", since), _section_clause("closed", since)
    return [
        Pickup.select(Pickup.status, Pickup.escalation_stage, Count(alias="n"))
        .where(open_now if where is None else open_now & where)
        .group_by(Pickup.status, Pickup.escalation_stage),
        Pickup.count().where(failed if where is None else failed & where),
        Pickup.count().where(closed if where is None else closed & where),
    ]


async def _counts(where: Any, since: dict[str, Any]) -> dict[str, int]:
    totals = dict.fromkeys(SECTIONS, 0)
    open_query, failed_query, closed_query = count_queries(where, since)
    open_rows, totals["failed"], totals["closed"] = await asyncio.gather(
        open_query, failed_query, closed_query
    )
    for r in open_rows:
        totals[section_of(r["status"], r["escalation_stage"])] += r["n"]
    return totals


def page_query(key: str, where: Any, since: dict[str, Any], sort: str, page: int, page_size: int) -> Any:
    """The ids of one page of a section, in order: the pickups table alone (the joins a row needs are
    made for these ids only, not for the thousands a section sorts)."""
    clause = _section_clause(key, since)
    query = Pickup.select(Pickup.id).where(clause if where is None else clause & where)
    return _ordered(query, key, sort).limit(page_size).offset((page - 1) * page_size)


async def _page_rows(ids: list[int]) -> dict[int, PickupRow]:
    if not ids:
        return {}
    return {r["id"]: to_row(r) for r in await Pickup.select(*ROW_COLUMNS).where(Pickup.id.is_in(ids))}


def _ordered(query: Any, key: str, sort: str) -> Any:
    if sort == "newest":
        return query.order_by(Pickup.created_at, ascending=False).order_by(Pickup.id, ascending=False)
    if sort == "oldest":
        return query.order_by(Pickup.created_at).order_by(Pickup.id)
    if sort == "updated" or key in ("failed", "closed"):
        return query.order_by(Pickup.updated_at, ascending=False).order_by(Pickup.id, ascending=False)
    # Nearest time limit first; pickups without one (no zone, no window) after those that have one.
    return (
        query.order_by(OrderByRaw('"pickups"."due_at" IS NULL'))
        .order_by(Pickup.due_at)
        .order_by(Pickup.created_at)
        .order_by(Pickup.id)
    )


async def read_board(f: BoardFilter, scope: Scope = EVERYTHING, page_size: int = PAGE_SIZE) -> Board:
    """The board for this filter: each section's current page and its exact total."""
    since = _windows(f)
    where, zone, courier_name, unknown = await filter_clause(f, scope)

    async def page_ids(key: str, page: int) -> list[int]:
        return [r["id"] for r in await page_query(key, where, since, f.sort, page, page_size)]

    # The counts and every section's page at once (each its own index range; on PostgreSQL each on a
    # connection of the pool, on SQLite on the reader threads): the board waits for the slowest of them,
    # not for their sum. A page asked for beyond its section's end is read again as the last page.
    totals, first_ids = await asyncio.gather(
        _counts(where, since), asyncio.gather(*(page_ids(key, f.pages.get(key, 1)) for key in SECTIONS))
    )
    placed: list[tuple[str, int, int, int, list[int]]] = []
    for key, section_ids in zip(SECTIONS, first_ids, strict=True):
        total = totals[key]
        pages = max((total + page_size - 1) // page_size, 1)
        page = min(f.pages.get(key, 1), pages)
        if page != f.pages.get(key, 1):
            section_ids = await page_ids(key, page) if total else []
        placed.append((key, total, page, pages, section_ids))
    # The rows of every section's page in one query (a round trip fewer per section on PostgreSQL).
    found = await _page_rows([i for *_, ids in placed for i in ids])
    sections = []
    for key, total, page, pages, ids in placed:
        rows = [found[i] for i in ids if i in found]
        first = (page - 1) * page_size + 1 if rows else 0
        sections.append(
            Page(
                key=key,
                rows=rows,
                total=total,
                page=page,
                pages=pages,
                first=first,
                last=first + len(rows) - 1,
            )
        )
    return Board(filter=f, sections=sections, zone=zone, courier_name=courier_name, unknown=unknown)


async def filter_options(scope: Scope) -> dict[str, list[dict[str, Any]]]:
    """The choices of the filter bar: the stations and zones the dispatcher answers for, the partners."""
    stations = Station.select(Station.code, Station.name).where(Station.level == "station")
    zones = Zone.select(Zone.code, Zone.name).where(Zone.active == True)  # noqa: E712
    if scope.station_ids is not None:
        stations = stations.where(Station.id.is_in(sorted(scope.station_ids) or [-1]))
        zones = zones.where(Zone.id.is_in(sorted(scope.zone_ids or ()) or [-1]))
    partners = Partner.select(Partner.code, Partner.name).where(Partner.active == True)  # noqa: E712
    return {
        "stations": list(await stations.order_by(Station.code)),
        "zones": list(await zones.order_by(Zone.code)),
        "partners": list(await partners.order_by(Partner.code)),
    }
