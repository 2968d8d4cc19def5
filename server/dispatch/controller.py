"""Dispatcher API: assign, reassign, unassign one pickup or many; figures rolled up the station tree."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from server.auth.principal import Principal, dispatcher_only
from server.dispatch import service
from server.dispatch.schemas import AssignIn, DispatchResult, StationSummary, UnassignIn
from server.dispatch.scope import scope_of
from server.dispatch.stations import station_summary
from server.push.log import Actor
from server.validation import check_json_body


class DispatchController(Controller):
    path = "/api/v1/dispatch"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    guards = [dispatcher_only]
    tags = ["dispatch"]

    @post("/assign", status_code=200, summary="Assign (or reassign) pickups to a courier; all or none")
    async def assign(self, request: Request[Principal, Any, Any], data: JSONBody[AssignIn]) -> DispatchResult:
        actor = Actor(request.user.role, request.user.id)
        changed = await service.assign_pickups(
            actor,
            data.pickup_ids,
            data.courier_id,
            reason=data.reason,
            allow_outside_zone=data.allow_outside_zone,
            scope=await scope_of(request.user),
        )
        return DispatchResult(changed=changed)

    @post("/unassign", status_code=200, summary="Take pickups back and dispatch them afresh; all or none")
    async def unassign(
        self, request: Request[Principal, Any, Any], data: JSONBody[UnassignIn]
    ) -> DispatchResult:
        actor = Actor(request.user.role, request.user.id)
        scope = await scope_of(request.user)
        return DispatchResult(
            changed=await service.unassign_pickups(actor, data.pickup_ids, reason=data.reason, scope=scope)
        )

    @get("/stations", summary="Open and closed pickups per station, rolled up province → city → district")
    async def stations(self, request: Request[Principal, Any, Any]) -> list[StationSummary]:
        return await station_summary(await scope_of(request.user))
