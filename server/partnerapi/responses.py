"""JSON answers written straight to ASGI `send`, for the partner API middleware (before any handler)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.types import Send

from server.api_language import EN, localize_body


async def send_json_bytes(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", (content_type or "application/json").encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    lang: str = EN,
    **extra: Any,
) -> None:
    """The API's one error shape (server/errors.py): {"code", "message", "errors": [{field, message}]},
    its messages in `lang` (server/api_language.py: scope_language(scope) gives the caller's)."""
    errors = [{"field": field, "message": message}] if field else []
    content = localize_body({"code": code, "message": message, "errors": errors, **extra}, lang)
    body = msgspec.json.encode(content)
    vary = [(b"vary", b"Accept-Language")]
    await send_json_bytes(send, status, body, extra_headers=[*(headers or []), *vary])
