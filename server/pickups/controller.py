"""Partner API for pickups: create, read one, list own."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from server.auth.principal import Principal, partner_only
from server.dispatch import service as dispatch
from server.domain.pickup_states import Status
from server.pickups import batch, service
from server.pickups.schemas import BatchOut, CancelIn, PickupCreate, PickupOut, PickupPage
from server.validation import PathId, check_json_body


class PickupController(Controller):
    path = "/api/v1/pickups"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    guards = [partner_only]
    tags = ["pickups"]

    @post("/", status_code=201, summary="Ask for a doorstep pickup")
    async def create(self, request: Request[Principal, Any, Any], data: PickupCreate) -> PickupOut:
        return await service.create_pickup(request.user, data)

    @post("/batch", status_code=200, summary="Ask for up to 500 pickups at once; one result per item")
    async def create_batch(self, request: Request[Principal, Any, Any]) -> BatchOut:
        # The body is read here, not as `data`: a bad item is that item's result, not the batch's 422.
        return await batch.create_batch(request.user, await request.body())

    @get("/{pickup_id:int}", summary="One of your pickups, with its event history")
    async def read(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> PickupOut:
        return await service.partner_pickup(request.user, pickup_id)

    @get("/", summary="Your pickups, newest first, cursor-paginated")
    async def list_pickups(
        self,
        request: Request[Principal, Any, Any],
        status: Status | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> PickupPage:
        return await service.list_partner_pickups(request.user, status=status, limit=limit, cursor=cursor)

    @post(
        "/{pickup_id:int}/chase", status_code=200, summary="The customer chases (催件): re-alert the courier"
    )
    async def chase(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> PickupOut:
        await dispatch.chase(request.user.id, pickup_id)
        return await service.partner_pickup(request.user, pickup_id)

    @post("/{pickup_id:int}/cancel", status_code=200, summary="Cancel a pickup that is not collected yet")
    async def cancel(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: CancelIn | None = None
    ) -> PickupOut:
        await dispatch.cancel(request.user.id, pickup_id, (data or CancelIn()).reason)
        return await service.partner_pickup(request.user, pickup_id)
