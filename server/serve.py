"""The HTTP server process: uvicorn, with two changes.

* A deadline for the request head. uvicorn times out idle kept-alive connections, but a connection that
  sends part of a request line or of its headers and then nothing is held forever, and a few thousand
  of those exhaust the process's file descriptors (slowloris). Here a connection gets
  `header_timeout_s` to deliver each request's line and headers, counted from the connection for the
  first request and from its first byte for later ones; then it is answered 408 and closed.
* Neither that deadline nor uvicorn's keep-alive timeout closes a connection whose client has sent
  bytes the event loop has not read yet. An overloaded or stalled loop runs its overdue timers before
  it reads sockets (uvloop runs timers first in each turn), so a request sent well within the
  keep-alive window was cut off (the client saw a reset) because the loop was late, not the client.
  Such a timer now looks once more after the loop has read what was waiting.
* Shutdown ends SSE streams at once. uvicorn waits for open responses before it shuts the app down, and
  a stream never finishes by itself: Ctrl+C took the full graceful timeout and then cancelled the
  streams mid-flight, logging an ASGI error for each. Here the signal tells the push hub to end every
  stream (clients see a clean end and reconnect, elsewhere if they can, resuming from the event log).

`serve(..., workers=N)` runs N such processes on one listening socket (server/workers.py supervises
them); each builds its own app, and push is shared through the channels backend.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

# httptools comes with uvicorn[standard], a dependency of Lanshou (pyproject.toml): always importable.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.ops.logs import uvicorn_log_config


def _response_408() -> bytes:
    body = b"the request headers took too long to arrive\n"
    return (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


class Config(uvicorn.Config):
    """uvicorn's configuration plus the request-head deadline, which the protocols below read from it.

    Nothing in it is built at run time (the protocol classes are module-level), so it can be sent to
    worker processes as it is.
    """

    def __init__(self, app: Any, *, header_timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout_s = float(header_timeout_s)


# A timer that finds unread bytes waits this long more: any delay puts the second look after the loop's
# next pass over the sockets (uvloop turns a zero delay into call_soon, which runs before that pass).
_UNREAD_GRACE_S = 0.01


def unread_bytes(transport: asyncio.BaseTransport) -> int:
    """How many bytes the client has sent that the event loop has not read yet (0 if unknown)."""
    if sys.platform == "win32":
        return 0
    import fcntl
    import termios

    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):  # closed meanwhile
        return 0
    return int.from_bytes(answer, sys.byteorder)


class _HeadDeadline:
    """The timers both parsers share: the head deadline (armed while a request head is awaited, disarmed
    once it is in), and a late look at unread bytes before it or the keep-alive timeout closes."""

    header_timeout_s: float = 10.0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive_task: asyncio.TimerHandle | None
    _head_timer: asyncio.TimerHandle | None = None
    _head_started = False

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        self.header_timeout_s = getattr(config, "header_timeout_s", self.header_timeout_s)

    def _arm_head_deadline(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        self._head_started = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        if unread_bytes(self.transport):
            # Bytes the client sent in time are waiting: read them before judging. Once only: after
            # the loop's next read the deadline holds, so a trickle cannot keep the connection.
            self._head_timer = self.loop.call_later(_UNREAD_GRACE_S, self._head_deadline_passed)
        else:
            self._head_deadline_passed()

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_started:  # part of a request came: say why it ends (nothing came: just close)
            self.transport.write(_response_408())
        self.transport.close()

    def timeout_keep_alive_handler(self) -> None:
        if unread_bytes(self.transport):
            # Not idle: a request is waiting to be read. Reading it cancels this timer (uvicorn's
            # data_received); if it is somehow not read, the connection closes after the grace.
            self.timeout_keep_alive_task = self.loop.call_later(
                _UNREAD_GRACE_S,
                super().timeout_keep_alive_handler,  # type: ignore[misc]
            )
            return
        super().timeout_keep_alive_handler()  # type: ignore[misc]


class HttpToolsWithHeadDeadline(_HeadDeadline, HttpToolsProtocol):  # type: ignore[misc,valid-type]
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._arm_head_deadline()  # a later request on a kept-alive connection; the first is armed

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)


class H11WithHeadDeadline(_HeadDeadline, H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        waiting_for_head = self.conn.their_state is h11.IDLE
        if waiting_for_head:
            self._head_started = True
            self._arm_head_deadline()
        super().data_received(data)
        if waiting_for_head and self.conn.their_state is not h11.IDLE:
            self._disarm_head_deadline()  # h11 leaves IDLE once the whole head is parsed

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)


def http_protocol(parser: str) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's `http=`: httptools ("auto", "httptools") or h11."""
    if parser in ("auto", "httptools"):
        return HttpToolsWithHeadDeadline  # type: ignore[no-any-return]
    return H11WithHeadDeadline


def _hub_closer(app: Any) -> Callable[[], None]:
    """The push hub's close_all of the Litestar app inside uvicorn's wrappers (proxy headers …)."""
    while not hasattr(app, "state") and hasattr(app, "app"):
        app = app.app
    return app.state.hub.close_all  # type: ignore[no-any-return]


async def _started() -> None:
    """The app's startup, already done."""


class Server(uvicorn.Server):
    """uvicorn's server, calling `end_streams` as soon as a shutdown signal arrives.

    Without `end_streams` (a worker process, which builds its app from the factory) it is the loaded
    app's push hub's close_all. `before_listening`, if given, is called (in a thread) once the app has
    started and before the socket is served: a worker waits there for its siblings (server/workers.py).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        end_streams: Callable[[], None] | None = None,
        before_listening: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.end_streams = end_streams
        self.before_listening = before_listening
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ender: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        if not self.config.loaded:
            self.config.load()
        if self.end_streams is None:
            self.end_streams = _hub_closer(self.config.loaded_app)
        try:
            await super().serve(sockets)
        finally:
            if self._ender is not None:
                self._ender.cancel()

    async def startup(self, sockets: Any = None) -> None:
        if self.before_listening is not None:
            # uvicorn starts the app and then serves the socket in one method: start the app here, let
            # uvicorn's call of it be a no-op, and wait in between.
            lifespan = self.lifespan
            await lifespan.startup()
            if lifespan.should_exit:
                raise SystemExit(3)
            await asyncio.to_thread(self.before_listening)
            lifespan.startup = _started  # type: ignore[method-assign]
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        if first and self._loop is not None:
            # A signal handler may interrupt the loop anywhere: hand the work to the loop, thread-safely.
            self._loop.call_soon_threadsafe(self._start_ending_streams)

    def _start_ending_streams(self) -> None:
        self._ender = asyncio.get_running_loop().create_task(self._end_streams_until_exit())

    async def _end_streams_until_exit(self) -> None:
        # Again every 100 ms until the process ends: a stream whose request was already in flight when
        # the signal came attaches after the first call, and would otherwise hold the shutdown.
        assert self.end_streams is not None
        while True:
            self.end_streams()
            await asyncio.sleep(0.1)


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    header_timeout_s: int,
    parser: str = "auto",
    log_format: str = "text",
    factory: bool = False,
) -> Config:
    """The configuration every Lanshou server process runs with (one process or each worker)."""
    return Config(
        app,
        factory=factory,
        host=host,
        port=port,
        log_level=log_level,
        log_config=uvicorn_log_config(log_format),
        # JSON: the app writes the access lines itself (server/ops/metrics.py), with each one's duration.
        access_log=log_format != "json",
        http=http_protocol(parser),
        header_timeout_s=header_timeout_s,
        # Streams are ended at the signal; this bounds what is left (a slow upload, a stuck handler).
        timeout_graceful_shutdown=3,
        proxy_headers=True,
    )


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    header_timeout_s: int,
    parser: str = "auto",
    log_format: str = "text",
    workers: int = 1,
) -> None:
    """Run until SIGINT or SIGTERM; returns once it has shut down.

    One process: `app` is the Litestar app. Several (`workers` > 1): `app` is the import string of a
    factory each worker calls ("server.app:create_app"), and server/workers.py supervises them.
    """
    if log_format == "json":
        logging.captureWarnings(True)  # Python's warnings as JSON lines too, not bare text on stderr
    config = server_config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        header_timeout_s=header_timeout_s,
        parser=parser,
        log_format=log_format,
        factory=workers > 1,
    )
    if workers > 1:
        from server.workers import Supervisor

        raise SystemExit(Supervisor(config, workers).run())
    server = Server(config)
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the signal it handled once it has shut down
        pass
    if not server.started:
        raise SystemExit(3)
