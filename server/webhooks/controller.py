"""A partner sets, inspects and removes its own webhook."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, put

from server.auth.principal import Principal, partner_only
from server.validation import Url, check_json_body
from server.webhooks import service
from server.webhooks.destinations import allowed_hosts


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Url


class WebhookController(Controller):
    path = "/api/v1/partner/webhook"
    before_request = check_json_body  # type: ignore[assignment]  # JSON that fits the struct, or 4xx
    guards = [partner_only]
    tags = ["webhooks"]

    @put("/", summary="Send my pickups' events to this URL (returns a new signing secret, shown once)")
    async def set_webhook(self, request: Request[Principal, Any, Any], data: WebhookIn) -> dict[str, Any]:
        allowed = allowed_hosts(request.app.state.settings.webhook_allowed_hosts)
        return await service.set_webhook(request.user.id, data.url, allowed)

    @get("/", summary="Where my events go, and how delivery stands")
    async def status(self, request: Request[Principal, Any, Any]) -> dict[str, Any]:
        return await service.webhook_status(request.user.id)

    @delete("/", status_code=204, summary="Stop sending events")
    async def remove(self, request: Request[Principal, Any, Any]) -> None:
        await service.remove_webhook(request.user.id)
