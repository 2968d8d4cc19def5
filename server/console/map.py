"""The console's map: zones, pickups and couriers as JSON for Leaflet (pwa/static/console-map.js), and a
zone drawn on the map.

Everything is stored in WGS-84; the tiles may be drawn in GCJ-02 (AMap, Tencent), where a WGS-84 shape
would sit a few hundred metres off. So every coordinate leaves here already in the tiles' datum
(LANSHOU_MAP_TILE_DATUM), and a drawn zone comes back in it and is converted by the zone import, which
keeps the datum arithmetic in one place (server/domain/geo.py) and out of the browser.

Payloads stay small: open pickups with a position plus those failed in the last day, capped; couriers
with a known position; all scoped to the dispatcher's stations.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.params import FromQuery

from server.auth.principal import Principal, dispatcher_only
from server.console.controller import _forbidden, _to_login, localise_api_error, localise_geo_message
from server.console.queries import section_of
from server.dispatch.offers import open_load
from server.dispatch.scope import Scope, scope_of
from server.domain.geo import GeoJSONError, from_wgs84
from server.domain.pickup_states import OPEN_STATES, Status
from server.errors import ApiError
from server.i18n import translate
from server.pages import request_language
from server.push.log import Actor, utcnow
from server.tables import Courier, CourierZone, Pickup, Zone
from server.zones.service import export_zones, import_zones

# A map with more markers than this is unreadable anyway (clustered or not), and the payload stays
# well under a megabyte; the answer says when it was cut.
MAP_PICKUP_LIMIT = 2000
# Failed pickups stay on the map this long: someone has to look at them, but not forever.
FAILED_WINDOW = timedelta(hours=24)
# Phones send a heartbeat every minute; a courier silent for longer than this is drawn as stale.
STALE_AFTER = timedelta(minutes=5)
# Pickups asked for by id at once (console-map.js refreshes those the stream names, in batches).
MAX_IDS = 100


class PickupMarker(msgspec.Struct, frozen=True):
    id: int
    tracking_code: str
    status: str
    section: str
    zone_code: str | None
    lat: float
    lng: float


class CourierMarker(msgspec.Struct, frozen=True):
    id: int
    name: str
    on_duty: bool
    stale: bool
    open_count: int
    lat: float
    lng: float
    last_seen_at: str | None


class DrawnZone(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A zone drawn on the console map: its geometry is in the tiles' datum."""

    code: str
    name: str
    station: str
    geometry: dict[str, Any]
    dispatch_mode: str = "grab"


def _datum(request: Request[Principal, Any, Any]) -> Any:
    return request.app.state.settings.map_tile_datum


def _convert_positions(value: Any, datum: Any) -> Any:
    """GeoJSON coordinates (nested lists of [lng, lat]) from WGS-84 to `datum`."""
    if value and isinstance(value[0], (int, float)):
        lng, lat = from_wgs84(value[0], value[1], datum)
        return [round(lng, 7), round(lat, 7)]
    return [_convert_positions(v, datum) for v in value]


def _point(lng: float, lat: float, datum: Any) -> tuple[float, float]:
    if datum == "wgs84":
        return lng, lat
    return from_wgs84(lng, lat, datum)


def _parse_ids(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    ids = []
    for part in raw.split(",")[:MAX_IDS]:
        if part.strip().isdigit() and 0 < int(part) < 2**31:
            ids.append(int(part))
    return ids


async def map_pickups(scope: Scope, datum: Any, ids: list[int] | None = None) -> dict[str, Any]:
    """Pickups for the map: with `ids`, those of them still to be shown (the others are to be removed);
    without, the open ones with a position and those failed recently, newest first, capped."""
    columns = (
        Pickup.id,
        Pickup.tracking_code,
        Pickup.status,
        Pickup.escalation_stage,
        Pickup.lat,
        Pickup.lng,
        Pickup.zone._.code.as_alias("zone_code"),
    )
    shown = [s.value for s in OPEN_STATES]
    recent_failure = (Pickup.status == Status.FAILED.value) & (Pickup.updated_at >= utcnow() - FAILED_WINDOW)
    query = Pickup.select(*columns).where(
        Pickup.lat.is_not_null() & Pickup.lng.is_not_null() & (Pickup.status.is_in(shown) | recent_failure)
    )
    where = scope.pickup_filter(Pickup.zone)
    if where is not None:
        query = query.where(where)
    if ids is not None:
        query = query.where(Pickup.id.is_in(ids or [-1]))
    rows = await query.order_by(Pickup.id, ascending=False).limit(MAP_PICKUP_LIMIT + 1)
    markers = []
    for r in rows[:MAP_PICKUP_LIMIT]:
        lng, lat = _point(r["lng"], r["lat"], datum)
        markers.append(
            PickupMarker(
                id=r["id"],
                tracking_code=r["tracking_code"],
                status=r["status"],
                section=section_of(r["status"], r["escalation_stage"]),
                zone_code=r["zone_code"],
                lat=lat,
                lng=lng,
            )
        )
    return {"datum": datum, "pickups": markers, "truncated": len(rows) > MAP_PICKUP_LIMIT}


async def map_couriers(scope: Scope, datum: Any) -> dict[str, Any]:
    """Active couriers in scope with a last known position (from their heartbeats, stored in WGS-84)."""
    query = Courier.select(
        Courier.id,
        Courier.on_duty,
        Courier.last_seen_at,
        Courier.last_lat,
        Courier.last_lng,
        Courier.user._.display_name.as_alias("name"),
    ).where(
        (Courier.user._.active == True)  # noqa: E712
        & Courier.last_lat.is_not_null()
        & Courier.last_lng.is_not_null()
    )
    if scope.station_ids is not None and scope.zone_ids is not None:
        members = await CourierZone.select(CourierZone.courier).where(
            CourierZone.zone.is_in(sorted(scope.zone_ids) or [-1])
        )
        stationed = await Courier.select(Courier.id).where(
            Courier.user.station.is_in(sorted(scope.station_ids))
        )
        ids = sorted({m["courier"] for m in members} | {c["id"] for c in stationed})
        query = query.where(Courier.id.is_in(ids or [-1]))
    rows = await query.order_by(Courier.id)
    load = await open_load([r["id"] for r in rows])
    now = utcnow()
    markers = []
    for r in rows:
        seen = r["last_seen_at"]
        if seen is not None and seen.tzinfo is None:
            seen = seen.replace(tzinfo=now.tzinfo)
        lng, lat = _point(r["last_lng"], r["last_lat"], datum)
        markers.append(
            CourierMarker(
                id=r["id"],
                name=r["name"],
                on_duty=bool(r["on_duty"]),
                stale=seen is None or now - seen > STALE_AFTER,
                open_count=load.get(r["id"], 0),
                lat=lat,
                lng=lng,
                last_seen_at=seen.isoformat() if seen else None,
            )
        )
    return {"datum": datum, "couriers": markers}


async def map_zones(scope: Scope, datum: Any) -> dict[str, Any]:
    """The active zones in scope with a shape, in the tiles' datum, with what the map shows of them."""
    collection = await export_zones(scope)
    features = []
    for feature in collection["features"]:
        geometry = feature.get("geometry")
        if not geometry:
            continue
        if datum != "wgs84":
            geometry = geometry | {"coordinates": _convert_positions(geometry["coordinates"], datum)}
        props = feature["properties"]
        features.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {
                    "code": props["code"],
                    "name": props["name"],
                    "station": props.get("station"),
                    "dispatch_mode": props.get("dispatch_mode"),
                },
            }
        )
    return {"type": "FeatureCollection", "datum": datum, "features": features}


def _errors(status: int, errors: list[dict[str, Any]]) -> Response[dict[str, Any]]:
    return Response(content={"errors": errors}, status_code=status)


class ConsoleMapController(Controller):
    path = "/console/map"
    guards = [dispatcher_only]
    include_in_schema = False
    # Like the rest of the console: a browser without a session goes to the login page, others get a page
    # saying why not (console-map.js then simply draws nothing).
    exception_handlers = {NotAuthorizedException: _to_login, PermissionDeniedException: _forbidden}

    @get("/zones")
    async def zones(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        return await map_zones(await scope_of(request.user), _datum(request))

    @get("/pickups")
    async def pickups(
        self, request: Request[Principal, Any, Any], ids: FromQuery[str | None] = None
    ) -> dict[str, Any]:
        return await map_pickups(await scope_of(request.user), _datum(request), _parse_ids(ids))

    @get("/couriers")
    async def couriers(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        return await map_couriers(await scope_of(request.user), _datum(request))

    @post("/zones", status_code=201)
    async def draw_zone(self, request: Request[Principal, Any, Any]) -> Response[dict[str, Any]]:
        """Create a zone drawn on the map (a new code only: a drawing never replaces a zone by accident)."""
        lang = request_language(request)
        try:
            drawn = msgspec.json.decode(await request.body(), type=DrawnZone)
        except msgspec.DecodeError as exc:
            return _errors(
                422, [{"field": "", "message": translate("console.zones.bad_json", lang, detail=exc)}]
            )
        code = drawn.code.strip()
        if code and await Zone.exists().where(Zone.code == code):
            return _errors(
                409, [{"field": "code", "message": translate("console.map.draw.taken", lang, code=code)}]
            )
        feature = {
            "type": "Feature",
            "geometry": drawn.geometry,
            "properties": {"code": code, "name": drawn.name.strip(), "dispatch_mode": drawn.dispatch_mode},
        }
        try:
            summary = await import_zones(
                {"type": "FeatureCollection", "features": [feature]},
                datum=_datum(request),
                default_station=drawn.station or None,
                actor=Actor(request.user.role, request.user.id),
                deactivate_missing=False,
                scope=await scope_of(request.user),
            )
        except GeoJSONError as exc:
            return _errors(
                422,
                [{"field": e.field, "message": localise_geo_message(e.message, lang)} for e in exc.errors],
            )
        except ApiError as exc:
            errors = [
                {"field": e.get("field") or "", "message": localise_geo_message(e.get("message") or "", lang)}
                for e in exc.errors
            ]
            # A refusal (a station outside the dispatcher's, say) is an error of the form, as on the
            # console's GeoJSON form: 422 with the reasons.
            status = 422 if exc.status_code in (403, 404) else exc.status_code
            return _errors(status, errors or [{"field": "", "message": localise_api_error(exc, lang)}])
        return Response(content={"code": code, "summary": summary}, status_code=201)
