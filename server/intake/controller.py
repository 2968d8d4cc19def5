"""Serviceability for partners, and the stop-ship areas: managed by staff, listed for partners."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post, put
from litestar.params import FromQuery, JSONBody, Parameter, QueryParameter

from server.auth.principal import Principal, dispatcher_only, partner_only
from server.dispatch.scope import scope_of
from server.domain.geo import out_of_china, point_in_wgs84
from server.errors import ApiError
from server.intake import stop_ship
from server.intake.schemas import ActiveStopShipOut, ServiceabilityOut, StopShipAreaOut, StopShipIn
from server.intake.serviceability import serviceability
from server.validation import PathSerialId, check_json_body

AreaName = Annotated[str, Parameter(max_length=32)]
StreetName = Annotated[str, Parameter(max_length=64)]
# The range of a coordinate, for the document only: point_in_wgs84 refuses a point off the globe with its
# own message (after the datum shift, which can push a point in range off it too). As a constraint
# (`QueryParameter(ge=…)`) Litestar would refuse it first, with another message.
LNG_RANGE: dict[str, Any] = {"minimum": -180.0, "maximum": 180.0}
LAT_RANGE: dict[str, Any] = {"minimum": -90.0, "maximum": 90.0}


class ServiceabilityController(Controller):
    path = "/api/v1/serviceability"
    guards = [partner_only]
    tags = ["pickups"]

    @get("/", summary="Can Lanshou pick up at this address or point: who, how soon, which slots — or why not")
    async def check(
        self,
        province: AreaName = "",
        city: AreaName = "",
        district: AreaName = "",
        street: StreetName = "",
        lng: Annotated[float | None, QueryParameter(schema_extra=LNG_RANGE)] = None,
        lat: Annotated[float | None, QueryParameter(schema_extra=LAT_RANGE)] = None,
        datum: FromQuery[Literal["wgs84", "gcj02", "bd09"]] = "gcj02",
    ) -> ServiceabilityOut:
        point, errors = point_in_wgs84(lng, lat, datum, "")
        if point is not None and out_of_china(*point):
            errors.append({"field": "lng", "message": "this point is outside China, where Lanshou works"})
        if lng is None and lat is None and not (district.strip() or street.strip()):
            errors.append(
                {"field": "district", "message": "give an address (province, city, district) or a point"}
            )
        if errors:
            summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise ApiError(400, "bad_parameter", f"invalid request: {summary}", errors=errors)
        w_lng, w_lat = point if point else (None, None)
        return await serviceability(
            province=province, city=city, district=district, street=street, lng=w_lng, lat=w_lat
        )


class StopShipController(Controller):
    path = "/api/v1/stop-ship-areas"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    tags = ["stop-ship areas"]

    @get("/active", guards=[partner_only], summary="The stop-ship areas in force now (停发区域)")
    async def active(self) -> list[ActiveStopShipOut]:
        return await stop_ship.list_active()

    @get("/", guards=[dispatcher_only], summary="The stop-ship areas of the stations you answer for")
    async def list_areas(
        self, request: Request[Principal, Any, Any], include_ended: FromQuery[bool] = False
    ) -> list[StopShipAreaOut]:
        return await stop_ship.list_areas(await scope_of(request.user), include_ended=include_ended)

    @post("/", guards=[dispatcher_only], status_code=201, summary="Stop pickups in an area for a while")
    async def create(
        self, request: Request[Principal, Any, Any], data: JSONBody[StopShipIn]
    ) -> StopShipAreaOut:
        return await stop_ship.create_area(request.user, await scope_of(request.user), data)

    @put("/{area_id:int}", guards=[dispatcher_only], summary="Redefine a stop-ship area")
    async def update(
        self, request: Request[Principal, Any, Any], area_id: PathSerialId, data: JSONBody[StopShipIn]
    ) -> StopShipAreaOut:
        return await stop_ship.update_area(request.user, await scope_of(request.user), area_id, data)

    @post("/{area_id:int}/end", guards=[dispatcher_only], status_code=200, summary="End a stop-ship area now")
    async def end(self, request: Request[Principal, Any, Any], area_id: PathSerialId) -> StopShipAreaOut:
        return await stop_ship.end_area(request.user, await scope_of(request.user), area_id)
