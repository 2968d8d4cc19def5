"""Admin and dispatcher set-up API: users, zones (GeoJSON), couriers' zones."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, get, post, put
from litestar.params import FromQuery, JSONBody

from server.admin import service
from server.admin.schemas import CourierZonesIn, StationCreate, StationOut, UserCreate, UserOut
from server.auth.principal import Principal, admin_only, dispatcher_only
from server.dispatch.scope import scope_of
from server.domain.geo import GeoJSONError
from server.errors import ApiError
from server.push.log import Actor
from server.validation import PathSerialId, check_json_body
from server.zones.service import export_zones, import_zones


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.role, principal.id)


class AdminController(Controller):
    path = "/api/v1"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    tags = ["set-up"]

    @post(
        "/users", guards=[admin_only], status_code=201, summary="Create a user (courier, dispatcher, admin)"
    )
    async def create_user(self, request: Request[Principal, Any, Any], data: JSONBody[UserCreate]) -> UserOut:
        return await service.add_user(data, actor_of(request.user))

    @post("/stations", guards=[admin_only], status_code=201, summary="Add a station to the tree")
    async def create_station(
        self, request: Request[Principal, Any, Any], data: JSONBody[StationCreate]
    ) -> StationOut:
        return await service.add_station(data, actor_of(request.user))

    @put("/couriers/{courier_id:int}/zones", guards=[dispatcher_only], summary="Set a courier's zones")
    async def courier_zones(
        self, request: Request[Principal, Any, Any], courier_id: PathSerialId, data: JSONBody[CourierZonesIn]
    ) -> dict[str, Any]:
        zones = await service.set_courier_zones(
            courier_id, data.zones, actor_of(request.user), scope=await scope_of(request.user)
        )
        return {"courier_id": courier_id, "zones": zones}

    @get(
        "/zones",
        guards=[dispatcher_only],
        summary="The zones you answer for as a GeoJSON FeatureCollection (WGS-84)",
    )
    async def export_zones(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        return await export_zones(await scope_of(request.user))

    @put("/zones", guards=[dispatcher_only], summary="Import zones from a GeoJSON FeatureCollection")
    async def import_zones(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[dict[str, Any]],
        datum: FromQuery[Literal["wgs84", "gcj02", "bd09"]] = "wgs84",
        station: FromQuery[str | None] = None,
        replace: FromQuery[bool] = False,
    ) -> dict[str, int]:
        try:
            return await import_zones(
                data,
                datum=datum,
                default_station=station,
                actor=actor_of(request.user),
                deactivate_missing=replace,
                scope=await scope_of(request.user),
            )
        except GeoJSONError as exc:
            raise ApiError(
                422,
                "invalid_geojson",
                f"the GeoJSON was refused ({len(exc.errors)} problem(s)); nothing was changed",
                errors=[{"field": e.field, "message": e.message, "index": e.index} for e in exc.errors],
            ) from None
