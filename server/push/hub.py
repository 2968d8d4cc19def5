"""Per-process fan-out of pushed events to the SSE connections this process holds.

Each process subscribes ONCE, at start, to a single Litestar channel and routes every message to its
local connections by courier id, to the customers' tracking pages by pickup id (public, so bounded per
pickup and per client address: attach_pickup), and to every console connection (each console stream keeps what its
dispatcher's scope covers, by the message's zone). SSE connections come and go in our own dict, never as channel
subscriptions: that sidesteps Litestar Channels' subscribe/unsubscribe race (litestar #4894, which can
drop events for every subscriber of a channel) and its leaked subscribers (#4871, #4867), and it keeps
one LISTEN (or one Redis SUBSCRIBE) per process however many couriers are connected.

A message too large for the backend (PostgreSQL NOTIFY takes 8000 bytes) goes as lists of event ids,
a few hundred per message, and each process reads those events from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from litestar.channels import ChannelsPlugin

from server.ops.metrics import SSE_STREAMS
from server.push.log import PushMessage, decode_event_row, events_with_zone
from server.tables import Event, EventRecipient

log = logging.getLogger("lanshou.push")

CHANNEL = "lanshou"
_MAX_INLINE_BYTES = 7000
_REFS_PER_MESSAGE = 350  # ids of up to 18 digits, a comma each: under _MAX_INLINE_BYTES
# A client this far behind is cut off; it reconnects and resumes from the log instead.
_MAX_QUEUED = 2000
# How often every stream gets a keepalive comment (through proxies, and so that clients notice a
# dead connection).
KEEPALIVE_SECONDS = 15.0


class _Envelope(msgspec.Struct, frozen=True):
    messages: list[PushMessage] = []
    refs: list[int] = []  # event ids to load from the log
    ping: str = ""  # the process's own watchdog message (see PushHub.watch)


class Outgoing:
    """A message on its way down every stream it is routed to, with its SSE frames encoded once.

    Each stream asks for the frame its encoder makes (a courier's, a console's, a tracking page's); the
    first asks encodes it, the rest get the same bytes: fanning a message out to thousands of streams
    is one serialisation, not thousands."""

    __slots__ = ("_frames", "message")

    def __init__(self, message: PushMessage) -> None:
        self.message = message
        self._frames: dict[Callable[[PushMessage], bytes], bytes] = {}

    def frame(self, encode: Callable[[PushMessage], bytes]) -> bytes:
        frame = self._frames.get(encode)
        if frame is None:
            frame = self._frames[encode] = encode(self.message)
        return frame


# What the hub's one timer hands every stream now and then: an SSE comment, sent as it is.
KEEPALIVE_FRAME = b": keepalive\r\n\r\n"
# An item of a stream's mailbox: a message, a frame to send as it is, or None (close the stream).
Item = Outgoing | bytes | None


class Connection:
    """One SSE stream's mailbox: a list and, while the stream waits, one future (no queue, no timer of
    its own: thousands of idle streams each hold a few hundred bytes here)."""

    __slots__ = ("_items", "_waiter", "client", "courier_id", "pickup_id")

    def __init__(self, courier_id: int | None, pickup_id: int | None = None, client: str = "") -> None:
        self.courier_id = courier_id
        self.pickup_id = pickup_id  # a customer's tracking page (public: see attach_pickup)
        self.client = client
        self._items: list[Item] = []
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, item: Item) -> None:
        if item is not None and len(self._items) >= _MAX_QUEUED:
            item = None
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[Item]:
        """Everything delivered since the last take, oldest first; waits while there is nothing."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, self._items = self._items, []
        return items


class PushHub:
    def __init__(self, keepalive_s: float = KEEPALIVE_SECONDS) -> None:
        self.keepalive_s = keepalive_s
        self._ping_token = secrets.token_hex(8)
        self._last_ping_seen = time.monotonic()
        # True while this process's own pings stop coming back through the backend.
        self.stalled = False
        self._couriers: dict[int, set[Connection]] = {}
        self._consoles: set[Connection] = set()
        self._pickups: dict[int, set[Connection]] = {}
        self._public_clients: dict[str, int] = {}
        self._channels: ChannelsPlugin | None = None
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Envelope)
        self.ready = asyncio.Event()
        # Called for every message (zones.changed reloads the zone directory in every process).
        self.route_hook: Callable[[PushMessage], Awaitable[None]] | None = None

    # -- connections -------------------------------------------------------------------------------
    def attach_courier(self, courier_id: int) -> Connection:
        conn = Connection(courier_id)
        self._couriers.setdefault(courier_id, set()).add(conn)
        SSE_STREAMS.labels("courier").inc()
        return conn

    def attach_console(self) -> Connection:
        conn = Connection(None)
        self._consoles.add(conn)
        SSE_STREAMS.labels("console").inc()
        return conn

    def attach_pickup(
        self, pickup_id: int, client: str, *, per_pickup: int, per_client: int
    ) -> Connection | None:
        """A tracking page's stream, or None when that pickup or that client has as many open as allowed.

        Synchronous from check to attach: a burst of connections cannot all pass the check first.
        """
        conns = self._pickups.get(pickup_id, set())
        if len(conns) >= per_pickup or self._public_clients.get(client, 0) >= per_client:
            return None
        conn = Connection(None, pickup_id, client)
        self._pickups.setdefault(pickup_id, set()).add(conn)
        self._public_clients[client] = self._public_clients.get(client, 0) + 1
        SSE_STREAMS.labels("tracking").inc()
        return conn

    def detach(self, conn: Connection) -> None:
        if conn.pickup_id is not None:
            pickup_conns = self._pickups.get(conn.pickup_id)
            if pickup_conns is None or conn not in pickup_conns:
                return  # detached already (the stream's end and its background task both call this)
            pickup_conns.discard(conn)
            if not pickup_conns:
                del self._pickups[conn.pickup_id]
            left = self._public_clients.get(conn.client, 1) - 1
            if left > 0:
                self._public_clients[conn.client] = left
            else:
                self._public_clients.pop(conn.client, None)
            SSE_STREAMS.labels("tracking").dec()
            return
        if conn.courier_id is None:
            if conn in self._consoles:
                self._consoles.discard(conn)
                SSE_STREAMS.labels("console").dec()
            return
        conns = self._couriers.get(conn.courier_id)
        if conns is not None and conn in conns:
            conns.discard(conn)
            SSE_STREAMS.labels("courier").dec()
            if not conns:
                del self._couriers[conn.courier_id]

    def connected_couriers(self) -> set[int]:
        return set(self._couriers)

    def connection_count(self) -> int:
        return (
            sum(len(c) for c in self._couriers.values())
            + len(self._consoles)
            + sum(len(c) for c in self._pickups.values())
        )

    def close_all(self) -> None:
        for conn in self._connections():
            conn.deliver(None)

    # -- publishing --------------------------------------------------------------------------------
    def publish(self, messages: Sequence[PushMessage]) -> None:
        if self._channels is None:
            # Not started (or already stopped): the events are in the log; clients get them on resume.
            return
        payload = self._encoder.encode(_Envelope(messages=list(messages)))
        if len(payload) <= _MAX_INLINE_BYTES:
            self._channels.publish(payload, CHANNEL)
            return
        # The ids, a few hundred per message: PostgreSQL refuses a NOTIFY over 8000 bytes, and one
        # refused publish ends Litestar's publishing task, so no push would leave this process again.
        ids = [m.id for m in messages]
        for start in range(0, len(ids), _REFS_PER_MESSAGE):
            refs = _Envelope(refs=ids[start : start + _REFS_PER_MESSAGE])
            self._channels.publish(self._encoder.encode(refs), CHANNEL)

    # -- the process's one subscription ------------------------------------------------------------
    async def run(self, channels: ChannelsPlugin) -> None:
        self._channels = channels
        keepalive = asyncio.create_task(self.keep_alive(self.keepalive_s), name="lanshou-sse-keepalive")
        try:
            async with channels.start_subscription([CHANNEL]) as subscriber:
                self.ready.set()
                async for raw in subscriber.iter_events():
                    try:
                        envelope = self._decoder.decode(raw)
                        if envelope.ping:
                            if envelope.ping == self._ping_token:
                                self._last_ping_seen = time.monotonic()
                            continue
                        messages = envelope.messages or await self._load(envelope.refs)
                    except Exception:
                        log.exception("dropping an undecodable push message")
                        continue
                    for message in messages:
                        self.route(message)
                        if self.route_hook is not None:
                            try:
                                await self.route_hook(message)
                            except Exception:
                                log.exception("push hook failed for %s", message.type)
        finally:
            await stop_task(keepalive)
            self._channels = None
            self.ready.clear()  # /health reports it: this process no longer pushes

    @property
    def healthy(self) -> bool:
        return self.ready.is_set() and not self.stalled

    async def watch(self, interval_s: float = 5.0, deadline_s: float = 20.0) -> None:
        """Send this process a ping through the backend every few seconds and check that it comes back.

        A dropped LISTEN connection (Litestar's asyncpg backend does not reconnect) or a broken Redis
        subscription would otherwise stop push silently. When pings stop arriving the process reports
        itself unhealthy (/health 503, for the load balancer) and ends its SSE streams, so the apps
        reconnect, elsewhere if they can, and resume from the event log.
        """
        while True:
            if self._channels is not None:
                self._channels.publish(self._encoder.encode(_Envelope(ping=self._ping_token)), CHANNEL)
            await asyncio.sleep(interval_s)
            silent_for = time.monotonic() - self._last_ping_seen
            if silent_for > deadline_s and not self.stalled:
                log.error("push is stalled: no ping back for %.0f s; ending SSE streams", silent_for)
                self.stalled = True
                self.close_all()
            elif silent_for <= deadline_s and self.stalled:
                log.warning("push has recovered")
                self.stalled = False

    def route(self, message: PushMessage) -> None:
        outgoing = Outgoing(message)
        for courier_id in message.to:
            for conn in self._couriers.get(courier_id, ()):
                conn.deliver(outgoing)
        for conn in self._consoles:
            conn.deliver(outgoing)
        if message.pickup_id is not None:
            for conn in self._pickups.get(message.pickup_id, ()):
                conn.deliver(outgoing)

    def _connections(self) -> list[Connection]:
        conns = [c for cs in self._couriers.values() for c in cs]
        conns += self._consoles
        conns += [c for cs in self._pickups.values() for c in cs]
        return conns

    async def keep_alive(self, interval_s: float = KEEPALIVE_SECONDS, slices: int = 15) -> None:
        """One timer for every stream of the process, not one each: every stream gets a keepalive each
        `interval_s`, a slice of them at a time, so that 10,000 streams are not all woken at once."""
        tick = 0
        while True:
            await asyncio.sleep(interval_s / slices)
            tick = (tick + 1) % slices
            for conn in self._connections():
                if hash(conn) % slices == tick:
                    conn.deliver(KEEPALIVE_FRAME)

    @staticmethod
    async def _load(event_ids: list[int]) -> list[PushMessage]:
        if not event_ids:
            return []
        rows = await events_with_zone().where(Event.id.is_in(event_ids)).order_by(Event.id)
        links = await EventRecipient.select(EventRecipient.event, EventRecipient.courier).where(
            EventRecipient.event.is_in(event_ids)
        )
        to: dict[int, list[int]] = {}
        for link in links:
            to.setdefault(link["event"], []).append(link["courier"])
        return [decode_event_row(r, to.get(r["id"])) for r in rows]


async def stop_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
