"""create_app(settings) -> Litestar: routes, auth, sessions, CSRF, templates, static files, channels."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.base import ChannelsBackend
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.config.csrf import CSRFConfig
from litestar.logging import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import File, Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from server.addresses.controller import AddressController
from server.admin.controller import AdminController
from server.alerts import gateway as alert_gateway
from server.auth.controller import AuthController, home_for_session, me
from server.auth.principal import AuthMiddleware
from server.auth.session_store import DatabaseSessionStore, SessionConfig
from server.booking.controller import BookingController
from server.console.controller import ConsoleController
from server.console.couriers import CouriersController
from server.console.drawer import DrawerController
from server.console.map import ConsoleMapController
from server.console.stations import StationsPageController
from server.courier.controller import CourierController
from server.courier_app.controller import CourierAppController, service_worker
from server.db.engine import close_engine, get_engine, open_engine
from server.dispatch.controller import DispatchController
from server.dispatch.scheduler import Scheduler
from server.dispatch.scope import forget_scopes
from server.domain import divisions, oneline
from server.errors import EXCEPTION_HANDLERS
from server.intake import stop_ship
from server.intake.controller import ServiceabilityController, StopShipController
from server.openapi import openapi_config
from server.ops import metrics as ops_metrics
from server.ops.controller import metrics, readyz
from server.ops.logs import JSON_FORMATTER, TEXT_FORMAT
from server.partnerapi.middleware import partner_api_middleware
from server.photos.controller import CourierPhotoController, PickupPhotoController
from server.pickups.controller import PickupController
from server.push import log as push_log
from server.push.backends import SafePgNotifyBackend, SafeRedisBackend
from server.push.hub import PushHub, stop_task
from server.push.log import PushMessage
from server.security_headers import add_security_headers
from server.settings import Settings, load_settings
from server.tracking.controller import TrackingController
from server.validation import check_request_line
from server.webhooks.controller import WebhookController
from server.webhooks.service import WebhookWorker
from server.webpush.service import PublishWithPush, PushSender
from server.zones.service import directory

ROOT = Path(__file__).resolve().parent
PWA = ROOT.parent / "pwa"
SESSION_COOKIE = "lanshou_session"
PUBLIC_PATHS = [
    "^/auth/login",
    "^/auth/logout",
    "^/schema",
    "^/static",
    "^/health",
    "^/readyz$",
    "^/metrics$",  # its own check: a bearer token, or loopback clients only (server/ops/controller.py)
    "^/$",
    "^/favicon.ico",
    "^/sw.js$",
    "^/book$",  # the customer's booking page and its address block: no account
    "^/book/areas$",
    # The customer's tracking page and its stream and forms: the tracking code is the key. Exactly
    # this prefix (with its slash): nothing else under /t… is public.
    "^/t/",
]

log = logging.getLogger("lanshou")


@get("/health", include_in_schema=False)
async def health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """200 while this process can push; 503 (for a load balancer to take it out) when it cannot."""
    hub: PushHub = request.app.state.hub
    ready = hub.healthy
    return Response(
        {"ok": ready, "push_ready": ready, "connections": hub.connection_count()},
        status_code=200 if ready else 503,
    )


@get("/favicon.ico", include_in_schema=False)
async def favicon() -> File:
    """Browsers ask for it at the root on every page; without it each page load logs a 404."""
    return File(
        path=PWA / "favicon.ico",
        media_type="image/x-icon",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@get("/", include_in_schema=False)
async def index(request: Request[Any, Any, Any]) -> Redirect:
    return Redirect(path=await home_for_session(request))


def channels_backend(settings: Settings) -> ChannelsBackend:
    url = settings.channels_url
    if url.startswith(("redis://", "rediss://")):
        from redis.asyncio import Redis

        return SafeRedisBackend(redis=Redis.from_url(url), key_prefix=settings.channels_prefix)
    if url.startswith(("postgres://", "postgresql://")):
        return SafePgNotifyBackend(dsn=url)
    return MemoryChannelsBackend()


class Runtime(InitPluginProtocol):
    """What the process runs beside the routes: the database, the push hub, the zone directory.

    Registered after the ChannelsPlugin so that its lifespan starts after channels are up and stops
    before they go down.
    """

    def __init__(self, settings: Settings, channels: ChannelsPlugin) -> None:
        self.settings = settings
        self.channels = channels
        self.hub = PushHub()
        self.webpush = PushSender(
            settings.vapid_private_key,
            settings.vapid_subject,
            settings.push_allowed_hosts,
            renotify_s=settings.push_renotify_s,
        )

    def on_app_init(self, app_config: Any) -> Any:
        app_config.lifespan.append(self.lifespan)
        app_config.state["hub"] = self.hub
        app_config.state["webpush"] = self.webpush
        app_config.state["settings"] = self.settings
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        engine = get_engine(self.settings.database_url)
        await open_engine(engine)
        await directory.reload()
        await stop_ship.directory.reload()
        # The one-line address splitter's tables (~0.2 s of CPU), loaded now so no request waits on them.
        await asyncio.to_thread(oneline.warm)
        # The division data (≈0.1 s to read) is loaded now, not by the first pickup create or booking.
        await asyncio.to_thread(divisions.provinces)
        # Everything loaded so far (the division tables, the address matcher, the app itself: ~90,000
        # objects) stays for the life of the process. Frozen, it is left out of the garbage collector's
        # full passes, which otherwise walked it all, ~20 ms each, at random requests: the console
        # board's p99 at 100,000 pickups went from 134 ms to 50 ms (tests/bench/bench_board.py).
        gc.collect()
        gc.freeze()
        self.hub.route_hook = self.on_message
        hub_task = asyncio.create_task(self.hub.run(self.channels), name="lanshou-push-hub")
        push_log.set_publisher(PublishWithPush(self.hub, self.webpush))
        alert_gateway.configure(self.settings)
        webpush_task = asyncio.create_task(self.webpush.run(), name="lanshou-webpush")
        scheduler = Scheduler(self.settings.scheduler_interval_ms / 1000)
        app.state["scheduler"] = scheduler
        scheduler_task = asyncio.create_task(scheduler.run(), name="lanshou-scheduler")
        webhooks = WebhookWorker(
            self.settings.webhook_interval_ms / 1000,
            self.settings.webhook_allowed_hosts,
            give_up_s=self.settings.webhook_give_up_s,
        )
        webhook_task = asyncio.create_task(webhooks.run())
        watchdog_task = asyncio.create_task(self.hub.watch(), name="lanshou-push-watchdog")
        try:
            await asyncio.wait_for(self.hub.ready.wait(), 10)
            yield
        finally:
            await stop_task(scheduler_task)
            alert_gateway.configure(None)
            await stop_task(webhook_task)
            await stop_task(watchdog_task)
            push_log.set_publisher(None)
            await stop_task(webpush_task)
            self.hub.close_all()
            await stop_task(hub_task)
            await close_engine(engine)
            ops_metrics.process_stopped()

    async def on_message(self, message: PushMessage) -> None:
        if message.type in ("zones.changed", "station.created"):
            await directory.reload()
            forget_scopes()
        elif message.type == "stop_ship.changed":
            await stop_ship.directory.reload()


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    channels = ChannelsPlugin(backend=channels_backend(settings), channels=["lanshou"])
    runtime = Runtime(settings, channels)
    session_config = SessionConfig(
        key=SESSION_COOKIE,
        store="sessions",
        max_age=7 * 24 * 3600,  # a courier stays signed in for the week; renewed on use
        renew_on_access=True,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    # No method is exempt from authentication, OPTIONS included (see AuthMiddleware).
    auth = DefineMiddleware(AuthMiddleware, exclude=PUBLIC_PATHS, exclude_http_methods=[])
    app = Litestar(
        route_handlers=[
            health,
            readyz,
            metrics,
            index,
            favicon,
            me,
            AuthController,
            PickupController,
            ServiceabilityController,
            StopShipController,
            AddressController,
            PickupPhotoController,
            CourierPhotoController,
            CourierController,
            AdminController,
            DispatchController,
            WebhookController,
            ConsoleController,
            CouriersController,
            StationsPageController,
            DrawerController,
            ConsoleMapController,
            BookingController,
            CourierAppController,
            TrackingController,
            service_worker,
            create_static_files_router(path="/static", directories=[PWA / "static", PWA]),
        ],
        plugins=[channels, runtime],
        # After auth: it counts and remembers per partner (rate limits, Idempotency-Key).
        middleware=[check_request_line, session_config.middleware, auth, partner_api_middleware(settings)],
        stores={"sessions": DatabaseSessionStore()},
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name="lanshou_csrf",
            cookie_secure=settings.secure_cookies,
            header_name="x-csrftoken",
            # The JSON API is protected by SameSite cookies and by refusing form bodies with cookies
            # (see AuthMiddleware); partners use bearer keys, which a browser never sends by itself.
            exclude=["/api/", "/auth/login", "/auth/logout"],
        ),
        template_config=TemplateConfig(directory=ROOT / "templates", engine=JinjaTemplateEngine),
        openapi_config=openapi_config(PUBLIC_PATHS),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        before_send=[add_security_headers(settings)],
        request_max_body_size=settings.max_body_bytes,
        logging_config=LoggingConfig(
            root={"level": settings.log_level.upper(), "handlers": ["queue_listener"]},
            formatters={"standard": JSON_FORMATTER if settings.log_format == "json" else TEXT_FORMAT},
            log_exceptions="always" if settings.log_level == "debug" else "debug",
        ),
        debug=False,
    )
    # Around everything Litestar does for a request (routing and error handling included), so 404s and
    # 500s are counted too. In JSON mode it also writes the access log, with the request's duration.
    app.asgi_handler = ops_metrics.RequestMetrics(app.asgi_handler, log_access=settings.log_format == "json")
    return app
