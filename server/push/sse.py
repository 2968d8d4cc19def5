"""Server-Sent Event streams backed by the durable log.

The stream attaches to the hub BEFORE reading the log, so nothing published in between is missed.
A client reconnecting with Last-Event-ID (browsers do it by themselves) gets everything addressed to
it since then, read from the log page by page however long the gap, before anything live. Live
messages arrive in id order (see UnitOfWork), so those the log already gave are skipped by id.

A Last-Event-ID that is not an event id of this log (not a number, negative, 2^63 or more, or beyond
the newest event, say after the database was replaced) starts the stream afresh, as if none was sent:
answering 400 would make EventSource give up for good.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable, Callable

import msgspec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from server.push.hub import Connection, PushHub
from server.push.log import REPLAY_PAGE, PushMessage, latest_event_id
from server.validation import MAX_ID

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
# Comments are sent with data=None: Litestar's default data="" adds an empty `data:` line, and by the
# SSE spec that makes EventSource dispatch an empty `message` event for every keepalive.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_EVENT_ID = re.compile(r"[0-9]{1,19}", re.ASCII)

_encoder = msgspec.json.Encoder()

# One page of the log after an id: (after_id, limit) -> events, oldest first.
Replay = Callable[[int, int], Awaitable[list[PushMessage]]]


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """The id to resume after, or None to start afresh (nothing given, or nothing usable)."""
    raw = header if header not in (None, "") else query
    if raw is None or not _EVENT_ID.fullmatch(raw.strip()):
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


def to_sse(message: PushMessage) -> ServerSentEventMessage:
    body = {
        "id": message.id,
        "type": message.type,
        "at": message.at,
        "pickup_id": message.pickup_id,
        **message.data,
    }
    return ServerSentEventMessage(data=_encoder.encode(body).decode(), event=message.type, id=str(message.id))


def to_console_sse(message: PushMessage) -> ServerSentEventMessage:
    """What the dispatcher console needs of an event: which pickup changed, so it re-reads that row
    (scoped, like the board). Customer data (name, address, note, position) never travels this stream."""
    body = {"id": message.id, "type": message.type, "pickup_id": message.pickup_id}
    return ServerSentEventMessage(data=_encoder.encode(body).decode(), event=message.type, id=str(message.id))


def event_stream(
    hub: PushHub,
    attach: Callable[[PushHub], Connection],
    replay: Replay,
    latest: Callable[[], Awaitable[int]],
    last_event_id: int | None,
    *,
    visible: Callable[[PushMessage], Awaitable[bool]] | None = None,
    encode: Callable[[PushMessage], ServerSentEventMessage] = to_sse,
    keepalive: float = KEEPALIVE_SECONDS,
) -> ServerSentEvent:
    """`latest` is the newest id the stream's reader has (the `ready` id of a fresh start); `replay`
    reads the log already filtered for the reader, and `visible` filters live messages the same way."""

    async def generate() -> AsyncGenerator[ServerSentEventMessage, None]:
        conn = attach(hub)
        try:
            resume_after = last_event_id
            if resume_after is not None and resume_after > await latest_event_id():
                resume_after = None  # beyond the log: not an id this log gave out
            if resume_after is None:
                # A fresh stream starts at "now": the ready event carries the id to resume from.
                seen_up_to = await latest()
                yield ServerSentEventMessage(data="{}", event="ready", id=str(seen_up_to), retry=RETRY_MS)
            else:
                yield ServerSentEventMessage(data=None, comment="resuming", retry=RETRY_MS)
                seen_up_to = resume_after
                while True:
                    page = await replay(seen_up_to, REPLAY_PAGE)
                    for missed in page:
                        yield encode(missed)
                    if page:
                        seen_up_to = page[-1].id
                    if len(page) < REPLAY_PAGE:
                        break
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
                # Committed before the log was last read, so sent from it already (or not for us).
                if message.id <= seen_up_to:
                    continue
                if visible is not None and not await visible(message):
                    continue
                yield encode(message)
        finally:
            hub.detach(conn)

    return ServerSentEvent(generate(), headers=SSE_HEADERS)
