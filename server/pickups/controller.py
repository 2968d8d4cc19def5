"""Partner API for pickups: create, read one, list own, and act on one (server/pickups/actions.py)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, JSONBody, Parameter

from server.addresses.service import structured_address
from server.auth.principal import Principal, partner_only
from server.domain.pickup_states import Status
from server.pickups import actions, batch, service
from server.pickups.schemas import (
    AddressChangeIn,
    BatchOut,
    CancelIn,
    ComplaintIn,
    PickupCreate,
    PickupOut,
    PickupPage,
    RatingIn,
    RescheduleIn,
)
from server.push.log import Actor
from server.validation import PathId, check_json_body


class PickupController(Controller):
    path = "/api/v1/pickups"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    guards = [partner_only]
    tags = ["pickups"]

    @post("/", status_code=201, summary="Ask for a doorstep pickup")
    async def create(self, request: Request[Principal, Any, Any], data: JSONBody[PickupCreate]) -> PickupOut:
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
        status: FromQuery[Status | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> PickupPage:
        return await service.list_partner_pickups(request.user, status=status, limit=limit, cursor=cursor)

    @post(
        "/{pickup_id:int}/chase", status_code=200, summary="The customer chases (催件): re-alert the courier"
    )
    async def chase(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> PickupOut:
        await actions.chase(_partner(request), pickup_id)
        return await service.partner_pickup(request.user, pickup_id)

    @post("/{pickup_id:int}/cancel", status_code=200, summary="Cancel a pickup that is not collected yet")
    async def cancel(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[CancelIn | None] = None
    ) -> PickupOut:
        await actions.cancel(_partner(request), pickup_id, (data or CancelIn()).reason)
        return await service.partner_pickup(request.user, pickup_id)

    @post("/{pickup_id:int}/reschedule", status_code=200, summary="A new time window for an open pickup")
    async def reschedule(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[RescheduleIn]
    ) -> PickupOut:
        await actions.reschedule(_partner(request), pickup_id, data.window)
        return await service.partner_pickup(request.user, pickup_id)

    @post(
        "/{pickup_id:int}/address",
        status_code=200,
        summary="A new address for an open pickup: matched again, offered afresh if its zone changes",
    )
    async def change_address(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[AddressChangeIn]
    ) -> PickupOut:
        await actions.change_address(_partner(request), pickup_id, structured_address(data.address))
        return await service.partner_pickup(request.user, pickup_id)

    @post(
        "/{pickup_id:int}/rating",
        status_code=200,
        summary="The customer's rating (1-5 stars, a comment), once, after collection",
    )
    async def rate(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[RatingIn]
    ) -> PickupOut:
        await actions.rate(_partner(request), pickup_id, data.stars, data.comment)
        return await service.partner_pickup(request.user, pickup_id)

    @post(
        "/{pickup_id:int}/complaint",
        status_code=200,
        summary="The customer's complaint, after collection or failure",
    )
    async def complain(
        self, request: Request[Principal, Any, Any], pickup_id: PathId, data: JSONBody[ComplaintIn]
    ) -> PickupOut:
        await actions.complain(_partner(request), pickup_id, data.text)
        return await service.partner_pickup(request.user, pickup_id)


def _partner(request: Request[Principal, Any, Any]) -> Actor:
    return Actor("partner", request.user.id)
