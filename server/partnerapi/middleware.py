"""The middleware every partner call passes through, after authentication: the rate limit on every
request signed with an API key (headers on every answer, 429 past the limit), then Idempotency-Key on
every POST under /api/v1. Being middleware, a POST route added later gets both without a line of its own.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from server.api_language import scope_language
from server.partnerapi.idempotency import Idempotency, header_value
from server.partnerapi.ratelimit import RateLimit
from server.partnerapi.responses import send_error
from server.settings import Settings


def partner_api_middleware(settings: Settings) -> Any:
    """A middleware factory for Litestar's `middleware=[...]` (listed after the auth middleware)."""
    limiter = RateLimit.from_settings(settings) if settings.api_rate_limit > 0 else None
    idempotency = Idempotency(
        settings.idempotency_ttl_s, settings.idempotency_wait_s, settings.max_body_bytes
    )

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope.get("auth") != "api_key":
                await app(scope, receive, send)
                return
            partner_id: int = scope["user"].id
            if limiter is not None:
                allowed, headers = await limiter.check(partner_id)
                if not allowed:
                    await send_error(
                        send,
                        429,
                        "rate_limited",
                        f"more than {limiter.limit} requests in {limiter.window_s} s with this API key; "
                        "retry after the seconds in Retry-After",
                        headers=headers,
                        lang=scope_language(scope),
                    )
                    return
                send = _with_headers(send, headers)
            http = cast(HTTPScope, scope)
            key = header_value(scope) if http["method"] == "POST" else None
            if key is not None and http["path"].startswith("/api/v1/"):
                await idempotency(app, http, receive, send, partner_id, key)
            else:
                await app(scope, receive, send)

        return middleware

    return wrap


def _with_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *headers]}
        await send(message)

    return sending
