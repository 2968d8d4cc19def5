"""A partner sets, inspects and removes its own webhook."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, put

from server.auth.principal import Principal, partner_only
from server.errors import require_json_body
from server.webhooks import service


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=500)]


class WebhookController(Controller):
    path = "/api/v1/partner/webhook"
    before_request = require_json_body  # type: ignore[assignment]  # JSON only, or 415
    guards = [partner_only]
    tags = ["webhooks"]

    @put("/", summary="Send my pickups' events to this URL (returns a new signing secret, shown once)")
    async def set_webhook(self, request: Request[Principal, Any, Any], data: WebhookIn) -> dict[str, Any]:
        return await service.set_webhook(request.user.id, data.url)

    @get("/", summary="Where my events go, and how delivery stands")
    async def status(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        return await service.webhook_status(request.user.id)

    @delete("/", status_code=204, summary="Stop sending events")
    async def remove(self, request: Request[Principal, Any, Any]) -> None:
        await service.remove_webhook(request.user.id)
