"""Server-Sent Event streams backed by the durable log.

The stream attaches to the hub BEFORE reading the log, so nothing published in between is missed.
A client reconnecting with Last-Event-ID (browsers do it by themselves) gets everything addressed to
it since then, read from the log page by page however long the gap, before anything live. Live
messages arrive in id order (see UnitOfWork), so those the log already gave are skipped by id.

A Last-Event-ID that is not an event id of this log (not a number, negative, 2^63 or more, or beyond
the newest event, say after the database was replaced) starts the stream afresh, as if none was sent:
answering 400 would make EventSource give up for good.

Frames are encoded here, as bytes, and written as they are: a live message's frame is encoded once for
every stream it goes down (hub.Outgoing), and an idle stream holds no timer of its own (the hub sends
every stream its keepalive).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import msgspec
from litestar.response import ServerSentEvent, Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send

from server.push.hub import Connection, PushHub
from server.push.log import REPLAY_PAGE, PushMessage, latest_event_id
from server.validation import MAX_ID

RETRY_MS = 2000
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_EVENT_ID = re.compile(r"[0-9]{1,19}", re.ASCII)
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")

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


def sse_frame(
    data: bytes | None,
    *,
    event: str | None = None,
    id: int | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One Server-Sent Event as it goes on the wire. `data` is the message's text (JSON here: one
    line); a comment has no data, so EventSource dispatches nothing for it."""
    parts = []
    if comment is not None:
        parts.append(b": " + comment.encode())
    if id is not None:
        parts.append(b"id: %d" % id)
    if event is not None:
        parts.append(b"event: " + event.encode())
    if data is not None:
        parts += [b"data: " + line for line in _LINE_BREAK.split(data)]
    if retry is not None:
        parts.append(b"retry: %d" % retry)
    return b"\r\n".join(parts) + b"\r\n\r\n"


def to_sse(message: PushMessage) -> bytes:
    body = {
        "id": message.id,
        "type": message.type,
        "at": message.at,
        "pickup_id": message.pickup_id,
        **message.data,
    }
    # Offers written before they stopped naming every courier offered: no one else's id to a courier.
    body.pop("couriers", None)
    return sse_frame(_encoder.encode(body), event=message.type, id=message.id)


def to_console_sse(message: PushMessage) -> bytes:
    """What the dispatcher console needs of an event: which pickup changed, so it re-reads that row
    (scoped, like the board). Customer data (name, address, note, position) never travels this stream."""
    body = {"id": message.id, "type": message.type, "pickup_id": message.pickup_id}
    return sse_frame(_encoder.encode(body), event=message.type, id=message.id)


class _StreamInOneTask(ASGIStreamingResponse):
    """Litestar's streaming response, sent from the request's own task.

    Litestar sends a stream from a task of its own in an anyio task group while the request's task
    waits for the client to go away; per open stream that is a task group, a cancel scope, an event
    and more, a few KiB each for thousands of idle streams. Here the request's task sends, and one
    small task waits on `receive` and, when the client goes away, cancels the sending (the same
    cancellation the task group made, ending the frames' generator where it waits)."""

    __slots__ = ()

    async def send_body(self, send: Send, receive: Receive) -> None:
        sender = asyncio.current_task()
        assert sender is not None
        gone = False

        async def until_disconnect() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            sender.cancel()

        listener = asyncio.ensure_future(until_disconnect())
        try:
            async for chunk in self.iterator:
                body = chunk if isinstance(chunk, bytes) else chunk.encode(self.encoding)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone:
                raise  # the server is cancelling the request, not the client leaving
            sender.uncancel()
        finally:
            listener.cancel()


class EventStream(ServerSentEvent):
    """A text/event-stream response whose body is frames made by sse_frame, written as they are.

    Litestar's ServerSentEvent encodes every message again for every stream (and hops to a worker
    thread once per stream for its first bytes). A subclass of it, so that handlers still declare
    ServerSentEvent (the OpenAPI document recognises streams by it); it is set up as the plain Stream
    it is underneath, and sent in one task (_StreamInOneTask)."""

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str]) -> None:
        Stream.__init__(self, frames, media_type="text/event-stream", headers=dict(headers))
        self.headers["Connection"] = "keep-alive"

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        response = super().to_asgi_response(*args, **kwargs)
        assert type(response) is ASGIStreamingResponse
        response.__class__ = _StreamInOneTask  # the same slots: only how the body is sent differs
        return response


def event_stream(
    hub: PushHub,
    attach: Callable[[PushHub], Connection],
    replay: Replay,
    latest: Callable[[], Awaitable[int]],
    last_event_id: int | None,
    *,
    visible: Callable[[PushMessage], Awaitable[bool]] | None = None,
    encode: Callable[[PushMessage], bytes] = to_sse,
) -> ServerSentEvent:
    """`latest` is the newest id the stream's reader has (the `ready` id of a fresh start); `replay`
    reads the log already filtered for the reader, and `visible` filters live messages the same way.
    `encode` must be a function defined once (not a new lambda per stream): live frames are shared by
    encoder."""

    async def generate() -> AsyncGenerator[bytes, None]:
        conn = attach(hub)
        try:
            resume_after = last_event_id
            if resume_after is not None and resume_after > await latest_event_id():
                resume_after = None  # beyond the log: not an id this log gave out
            if resume_after is None:
                # A fresh stream starts at "now": the ready event carries the id to resume from.
                seen_up_to = await latest()
                yield sse_frame(b"{}", event="ready", id=seen_up_to, retry=RETRY_MS)
            else:
                yield sse_frame(None, comment="resuming", retry=RETRY_MS)
                seen_up_to = resume_after
                while True:
                    page = await replay(seen_up_to, REPLAY_PAGE)
                    if page:
                        yield b"".join(encode(missed) for missed in page)
                        seen_up_to = page[-1].id
                    if len(page) < REPLAY_PAGE:
                        break
                yield sse_frame(b"{}", event="ready")
            while True:
                frames: list[bytes] = []
                for item in await conn.take():
                    if item is None:
                        if frames:
                            yield b"".join(frames)
                        return
                    if isinstance(item, bytes):
                        frames.append(item)
                        continue
                    message = item.message
                    # Committed before the log was last read, so sent from it already (or not for us).
                    if message.id <= seen_up_to:
                        continue
                    if visible is not None and not await visible(message):
                        continue
                    frames.append(item.frame(encode))
                if frames:
                    # One write for what came together; a lone frame is the shared bytes themselves.
                    yield frames[0] if len(frames) == 1 else b"".join(frames)
        finally:
            hub.detach(conn)

    return EventStream(generate(), SSE_HEADERS)
