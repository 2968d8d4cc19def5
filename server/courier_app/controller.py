"""The courier app: one server-rendered page (courier.html) at /app and its list partial, plus the
service worker at /sw.js.

The page talks to the courier JSON API (server/courier) from courier.js: actions go there with their
client_action_id and client_at, offers arrive over its event stream, and after each the page re-reads
its list partial (/app/pickups) through htmx. The ringing itself (Web Audio, vibration) is in
courier.js, because only the browser can make a sound.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response import File, Redirect, Template

from server.auth.principal import Principal, courier_only
from server.console.queries import DEFAULT_TIMEZONE
from server.courier import service
from server.courier.schemas import DeclineReason, FailureReason
from server.courier_app import day
from server.i18n import translate
from server.pages import forbidden_page, is_htmx, request_language
from server.push.log import latest_event_id, utcnow
from server.tables import Courier, PickupOffer

TEMPLATE = "courier.html"
SERVICE_WORKER = Path(__file__).resolve().parents[2] / "pwa" / "static" / "sw.js"
FAILURE_REASONS = get_args(FailureReason)
# The reasons a courier may give for declining an offer, as the decline endpoint takes them.
DECLINE_REASONS = get_args(DeclineReason)
# Strings courier.js shows (errors, the live indicator, time left), sent once with the page.
JS_STRINGS = (
    "courier.live",
    "courier.connecting",
    "courier.on_duty",
    "courier.off_duty",
    "courier.left",
    "courier.expired",
    "courier.waybill.invalid",
    "courier.waybill.taken",
    "courier.waybill.required",
    "courier.waybill.unknown",
    "courier.scan.starting",
    "courier.scan.aim",
    "courier.scan.not_waybill",
    "courier.scan.denied",
    "courier.scan.no_camera",
    "courier.pieces.invalid",
    "courier.weight.invalid",
    "courier.photo.unreadable",
    "courier.photo.failed",
    "courier.error.network",
    "courier.error.conflict",
    "courier.error.other",
    "courier.fail.new_time.invalid",
    "courier.offers",  # the title of the background notification
    "courier.due.left",  # the time-limit countdowns (countdown.js)
    "courier.due.over",
    # the outbox (actions waiting to be sent, refused replays) and the decline reasons
    "courier.outbox.pending",
    "courier.outbox.refused",
    "courier.outbox.cancelled",
    *(f"courier.outbox.action.{a}" for a in ("accept", "decline", "contacted", "arrived", "collect", "fail")),
    *(f"courier.pending.{a}" for a in ("accept", "contacted", "arrived", "collect", "fail")),
    "courier.decline.ask",
    *(f"courier.decline.{r}" for r in DECLINE_REASONS),
    "courier.decline.back",
)


def _login_url(lang: str) -> str:
    target = "/app?lang=en" if lang == "en" else "/app"
    return "/auth/login?" + urlencode({"next": target} | ({"lang": "en"} if lang == "en" else {}))


def _to_login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    target = _login_url(request_language(request))
    if is_htmx(request):
        # A partial would otherwise swap the login page into the list.
        return Response(content="", status_code=401, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)


def _forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    return forbidden_page(request, "courier.forbidden", _login_url(request_language(request)))


async def _pickups_context(principal: Principal) -> dict[str, Any]:
    """The offers (each with when it runs out and how far it is), the held pickups (as the JSON API
    gives them, with their navigation links) and My day."""
    courier_id = principal.courier_id
    assert courier_id is not None  # courier_only guard
    mine = await service.my_pickups(principal)
    position = await day.courier_position(courier_id)
    expiries = await PickupOffer.select(PickupOffer.pickup, PickupOffer.expires_at).where(
        (PickupOffer.courier == courier_id) & PickupOffer.outcome.is_null()
    )
    expires: dict[int, datetime | None] = {row["pickup"]: row["expires_at"] for row in expiries}
    now = utcnow()
    for offer in mine["offers"]:
        at = expires.get(offer["id"])
        offer["expires_at"] = at.isoformat() if at else None
        offer["seconds_left"] = max(0, int((at - now).total_seconds())) if at else None
        offer["distance_m"] = day.distance_to(position, offer["lat"], offer["lng"])
    for pickup in mine["held"]:
        pickup["navigation"] = day.navigation(pickup)
    return {
        "offers": mine["offers"],
        "held": mine["held"],
        "day": await day.my_day(courier_id, mine["held"], now),
    }


def _distance(lang: str) -> Any:
    """Formats metres for a card: "350 m" up to a kilometre, then "1.2 km"."""

    def distance(metres: int) -> str:
        if metres < 1000:
            return translate("courier.distance.m", lang, n=metres)
        return translate("courier.distance.km", lang, n=f"{metres / 1000:.1f}")

    return distance


def _duration(seconds: int) -> str:
    """H:MM:SS, as countdown.js writes it every second."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _due(lang: str) -> Any:
    """The time-limit countdown of a held pickup as first rendered: (text, "true" when overdue)."""

    def due(at: str) -> tuple[str, str]:
        seconds = int((datetime.fromisoformat(at) - utcnow()).total_seconds())
        if seconds >= 0:
            return translate("courier.due.left", lang, t=_duration(seconds)), "false"
        return translate("courier.due.over", lang, t=_duration(-seconds)), "true"

    return due


def _clock(value: datetime | str | None) -> str:
    """HH:MM in the service's local time (for the closed list and due times)."""
    if value is None:
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at.astimezone(ZoneInfo(DEFAULT_TIMEZONE)):%H:%M}"


def _slot(lang: str) -> Any:
    """Formats a time slot for the card, in the service's local time (HH:MM–HH:MM, the day if not today)."""
    tz = ZoneInfo(DEFAULT_TIMEZONE)

    def slot(start: str | None, end: str | None) -> str:
        if not start or not end:
            return translate("courier.slot.any", lang)
        begin, finish = (datetime.fromisoformat(v).astimezone(tz) for v in (start, end))
        day = "" if begin.date() == utcnow().astimezone(tz).date() else begin.strftime("%m-%d ")
        return f"{day}{begin:%H:%M}–{finish:%H:%M}"

    return slot


def _base_context(request: Request[Principal, Any, Any], lang: str) -> dict[str, Any]:
    return {
        "slot": _slot(lang),
        "distance": _distance(lang),
        "clock": _clock,
        "due": _due(lang),
        "decline_reasons": DECLINE_REASONS,
        "lang": lang,
        "t": lambda key, **kw: translate(key, lang, **kw),
        "user": request.user,
        "failure_reasons": FAILURE_REASONS,
        "lang_query": "?lang=en" if lang == "en" else "",
    }


class CourierAppController(Controller):
    path = "/app"
    guards = [courier_only]
    include_in_schema = False
    exception_handlers = {NotAuthorizedException: _to_login, PermissionDeniedException: _forbidden}

    @get("/")
    async def page(self, request: Request[Principal, Any, Any]) -> Template:
        lang = request_language(request)
        courier_id = request.user.courier_id
        assert courier_id is not None
        context = _base_context(request, lang)
        # Read before the list: courier.js resumes the stream from here, so an offer made between
        # rendering the page and connecting the stream still rings.
        context["last_event_id"] = await latest_event_id(courier_id)
        context.update(await _pickups_context(request.user))
        row = await Courier.select(Courier.on_duty).where(Courier.id == courier_id).first()
        context["on_duty"] = bool(row and row["on_duty"])
        context["js_strings"] = {key: translate(key, lang) for key in JS_STRINGS}
        # The page is the app shell the service worker keeps; it must not be stored by shared caches.
        return Template(template_name=TEMPLATE, context=context, headers={"Cache-Control": "no-store"})

    @get("/pickups")
    async def pickups(self, request: Request[Principal, Any, Any]) -> HTMXBlockTemplate:
        context = _base_context(request, request_language(request)) | await _pickups_context(request.user)
        return HTMXBlockTemplate(
            template_name=TEMPLATE,
            block_name="pickups",
            context=context,
            headers={"Cache-Control": "no-store"},
        )


@get("/sw.js", include_in_schema=False)
async def service_worker() -> File:
    """The service worker, from the site root so that its scope may cover /app (a worker under
    /static/ could only control /static/). Never cached by HTTP, so a new version is seen at once."""
    return File(
        path=SERVICE_WORKER,
        media_type="text/javascript",
        content_disposition_type="inline",
        headers={"Cache-Control": "no-cache"},
    )
