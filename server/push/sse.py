"""Server-Sent Event streams backed by the durable log.

The stream attaches to the hub BEFORE reading the log, so nothing published in between is missed;
events that arrive both ways are sent once. A client reconnecting with Last-Event-ID (browsers do it
by themselves) gets everything addressed to it since then, from the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

import msgspec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from server.errors import ApiError
from server.push.hub import Connection, PushHub
from server.push.log import PushMessage

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
# Comments are sent with data=None: Litestar's default data="" adds an empty `data:` line, and by the
# SSE spec that makes EventSource dispatch an empty `message` event for every keepalive.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_encoder = msgspec.json.Encoder()


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    raw = header if header not in (None, "") else query
    if raw in (None, ""):
        return None
    try:
        value = int(raw)  # type: ignore[arg-type]
    except ValueError:
        raise ApiError(
            400, "bad_last_event_id", "Last-Event-ID must be an event id", field="Last-Event-ID"
        ) from None
    return max(value, 0)


def to_sse(message: PushMessage) -> ServerSentEventMessage:
    body = {
        "id": message.id,
        "type": message.type,
        "at": message.at,
        "pickup_id": message.pickup_id,
        **message.data,
    }
    return ServerSentEventMessage(data=_encoder.encode(body).decode(), event=message.type, id=str(message.id))


def event_stream(
    hub: PushHub,
    attach: Callable[[PushHub], Connection],
    replay: Callable[[int], Awaitable[list[PushMessage]]],
    latest: Callable[[], Awaitable[int]],
    last_event_id: int | None,
    keepalive: float = KEEPALIVE_SECONDS,
) -> ServerSentEvent:
    async def generate() -> AsyncGenerator[ServerSentEventMessage, None]:
        conn = attach(hub)
        try:
            sent: set[int] = set()
            if last_event_id is None:
                # A fresh stream starts at "now": the ready event carries the id to resume from.
                newest = await latest()
                yield ServerSentEventMessage(data="{}", event="ready", id=str(newest), retry=RETRY_MS)
            else:
                yield ServerSentEventMessage(data=None, comment="resuming", retry=RETRY_MS)
                for missed in await replay(last_event_id):
                    sent.add(missed.id)
                    yield to_sse(missed)
                yield ServerSentEventMessage(data="{}", event="ready")
            while True:
                try:
                    async with asyncio.timeout(keepalive):
                        message = await conn.queue.get()
                except TimeoutError:
                    yield ServerSentEventMessage(data=None, comment="keepalive")
                    continue
                if message is None:
                    return
                if message.id in sent:
                    continue
                yield to_sse(message)
        finally:
            hub.detach(conn)

    return ServerSentEvent(generate(), headers=SSE_HEADERS)
