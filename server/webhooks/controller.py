"""A partner sets, inspects and removes its own webhook, audits its deliveries, replays one, and re-arms
a webhook given up (dead letter)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.params import FromQuery, JSONBody, Parameter

from server.auth.principal import Principal, partner_only
from server.validation import PathId, Url, check_json_body
from server.webhooks import deliveries, service
from server.webhooks.deliveries import DeliveryOut, DeliveryPage
from server.webhooks.destinations import allowed_hosts


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Url


class WebhookController(Controller):
    path = "/api/v1/partner/webhook"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    guards = [partner_only]
    tags = ["webhooks"]

    @put("/", summary="Send my pickups' events to this URL (returns a new signing secret, shown once)")
    async def set_webhook(
        self, request: Request[Principal, Any, Any], data: JSONBody[WebhookIn]
    ) -> dict[str, Any]:
        allowed = allowed_hosts(request.app.state.settings.webhook_allowed_hosts)
        return await service.set_webhook(request.user.id, data.url, allowed)

    @get("/", summary="Where my events go, and how delivery stands")
    async def status(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        return await service.webhook_status(request.user.id)

    @delete("/", status_code=204, summary="Stop sending events")
    async def remove(self, request: Request[Principal, Any, Any]) -> None:
        await service.remove_webhook(request.user.id)

    @get("/deliveries", summary="My recent deliveries, newest first, cursor-paginated")
    async def list_deliveries(
        self,
        request: Request[Principal, Any, Any],
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> DeliveryPage:
        return await deliveries.list_deliveries(request.user.id, limit=limit, cursor=cursor)

    @get("/deliveries/{delivery_id:int}", summary="One of my deliveries, with the events it carried")
    async def read_delivery(self, request: Request[Principal, Any, Any], delivery_id: PathId) -> DeliveryOut:
        return await deliveries.read_delivery(request.user.id, delivery_id)

    @post(
        "/deliveries/{delivery_id:int}/replay",
        status_code=202,
        summary="Send a finished delivery's events again (fresh signature), as a new delivery; "
        "the ordered stream is not moved",
    )
    async def replay(self, request: Request[Principal, Any, Any], delivery_id: PathId) -> DeliveryOut:
        return await deliveries.request_replay(request.user.id, delivery_id)

    @post("/rearm", status_code=200, summary="Resume delivery after a dead letter, from where it stopped")
    async def rearm(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        await deliveries.rearm(request.user.id)
        return await service.webhook_status(request.user.id)
