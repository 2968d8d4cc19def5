"""JSON answers written straight to ASGI `send`, for the partner API middleware (before any handler)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.types import Send


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
    **extra: Any,
) -> None:
    """The API's one error shape (server/errors.py): {"code", "message", "errors": [{field, message}]}."""
    errors = [{"field": field, "message": message}] if field else []
    body = msgspec.json.encode({"code": code, "message": message, "errors": errors, **extra})
    await send_json_bytes(send, status, body, extra_headers=headers)
