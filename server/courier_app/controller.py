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
from server.courier.schemas import FailureReason
from server.i18n import translate
from server.pages import forbidden_page, request_language
from server.push.log import latest_event_id, utcnow
from server.tables import Courier, PickupOffer

TEMPLATE = "courier.html"
SERVICE_WORKER = Path(__file__).resolve().parents[2] / "pwa" / "static" / "sw.js"
FAILURE_REASONS = get_args(FailureReason)
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
    "courier.offers",  # the title of the background notification
)


def _login_url(lang: str) -> str:
    target = "/app?lang=en" if lang == "en" else "/app"
    return "/auth/login?" + urlencode({"next": target} | ({"lang": "en"} if lang == "en" else {}))


def _to_login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    target = _login_url(request_language(request))
    if request.headers.get("hx-request") == "true":
        # A partial would otherwise swap the login page into the list.
        return Response(content="", status_code=401, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)


def _forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    return forbidden_page(request, "courier.forbidden", _login_url(request_language(request)))


async def _pickups_context(principal: Principal) -> dict[str, Any]:
    """The offers (each with when it runs out) and the held pickups, as the JSON API gives them."""
    courier_id = principal.courier_id
    assert courier_id is not None  # courier_only guard
    mine = await service.my_pickups(principal)
    expiries = await PickupOffer.select(PickupOffer.pickup, PickupOffer.expires_at).where(
        (PickupOffer.courier == courier_id) & PickupOffer.outcome.is_null()
    )
    expires: dict[int, datetime | None] = {row["pickup"]: row["expires_at"] for row in expiries}
    now = utcnow()
    for offer in mine["offers"]:
        at = expires.get(offer["id"])
        offer["expires_at"] = at.isoformat() if at else None
        offer["seconds_left"] = max(0, int((at - now).total_seconds())) if at else None
    return {"offers": mine["offers"], "held": mine["held"]}


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
