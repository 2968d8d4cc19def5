"""The console's couriers page (/console/couriers): every courier within the dispatcher's reach, filtered
like the board (station, zone) and by name; put one on or off duty, change their zones and capacity.

One template (console_couriers.html) with its htmx partials as named blocks: the list, one row, the
editor. Each form also works without JavaScript: it posts, and the whole page comes back with the
outcome shown. The list follows the console's event stream through console.js (couriers.js re-reads it
on a courier's events) and re-reads itself every minute besides, so that "seen x min ago" moves on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect, Template

from server.auth.principal import Principal, dispatcher_only
from server.console import courier_admin as admin
from server.console.controller import JS_STRINGS, _base_context, _url
from server.console.courier_admin import CAPACITY_MAX, CAPACITY_MIN, Filters, ZoneChoice
from server.dispatch.scope import Scope, scope_of
from server.errors import ApiError
from server.i18n import translate
from server.pages import forbidden_page, is_htmx, request_language
from server.push.log import Actor, latest_event_id, utcnow
from server.validation import PathSerialId

TEMPLATE = "console_couriers.html"
PAGE = "/console/couriers"
# Filter values are codes and a name fragment: anything longer is not one.
MAX_FILTER = 64


def _login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    lang = request_language(request)
    # Back to the page as it was asked for (its filters too); a form's post goes back to the list.
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    back = here if request.method == "GET" and here.startswith(PAGE) else _url(lang, PAGE)
    target = "/auth/login?" + urlencode({"next": back} | ({"lang": "en"} if lang == "en" else {}))
    if is_htmx(request):
        return Response(content="", status_code=401, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)


def _forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    lang = request_language(request)
    return forbidden_page(
        request, "console.forbidden", "/auth/login?" + urlencode({"next": _url(lang, PAGE)})
    )


def _filters(request: Request[Any, Any, Any]) -> Filters:
    def param(name: str) -> str:
        return (request.query_params.get(name) or "").strip()[:MAX_FILTER]

    return Filters(station=param("station") or None, zone=param("zone") or None, q=param("q"))


def _filter_query(filters: Filters) -> dict[str, str | None]:
    return {"station": filters.station, "zone": filters.zone, "q": filters.q or None}


def _actor(request: Request[Principal, Any, Any]) -> Actor:
    return Actor(request.user.role, request.user.id)


def _context(request: Request[Principal, Any, Any], scope: Scope, **extra: Any) -> dict[str, Any]:
    lang = request_language(request)
    filters = _filters(request)
    return _base_context(request, lang) | {
        "filters": filters,
        "fq": _filter_query(filters),
        "stale_minutes": admin.STALE_AFTER_S // 60,
        "capacity_min": CAPACITY_MIN,
        "capacity_max": CAPACITY_MAX,
        "confirm_id": None,
        "held": 0,
        "row_error": None,
        "error_id": None,
        "done_id": None,
        "editing": None,
        "editor": {},
        **extra,
    }


async def _list_context(scope: Scope, filters: Filters) -> dict[str, Any]:
    stations = await admin.stations_in_scope(scope)
    entries, total = await admin.list_couriers(scope, filters, stations=stations)
    now = utcnow()
    return {
        "entries": entries,
        "total": total,
        "stale_count": sum(e.stale(now) for e in entries),
        "stations": stations,
        "zone_options": admin.zones_in_scope(scope),
    }


async def _page(
    request: Request[Principal, Any, Any], scope: Scope, *, status: int = 200, **extra: Any
) -> Template:
    """The whole page; a form posted without htmx comes back to it with its outcome in place."""
    context = _context(request, scope, **extra)
    context["last_event_id"] = await latest_event_id()  # console.js resumes its stream from here
    context.update(await _list_context(scope, context["filters"]))
    context["js_strings"] = {key: translate(key, context["lang"]) for key in JS_STRINGS}
    return Template(template_name=TEMPLATE, context=context, status_code=status)


def _block(block: str, context: dict[str, Any], status: int = 200, **kwargs: Any) -> HTMXBlockTemplate:
    return HTMXBlockTemplate(
        template_name=TEMPLATE, block_name=block, context=context, status_code=status, **kwargs
    )


async def _row(
    request: Request[Principal, Any, Any], scope: Scope, courier_id: int, status: int = 200, **extra: Any
) -> Template:
    """One row of the list (htmx), or the page with that row as it now is (a plain form post)."""
    if not is_htmx(request):
        return await _page(request, scope, status=status, **extra)
    context = _context(request, scope, **extra)
    entry = await admin.courier_entry(scope, courier_id)
    if entry is None:
        return _block("missing_row", context | {"missing_id": courier_id}, 404)
    return _block("courier_row", context | {"c": entry}, status)


async def _editor(
    request: Request[Principal, Any, Any], scope: Scope, courier_id: int, status: int = 200, **editor: Any
) -> Template:
    entry = await admin.courier_entry(scope, courier_id)
    if entry is None:
        status, editor = 404, {"error": translate("console.couriers.not_found", request_language(request))}
    extra = {"editing": entry, "editor": editor, "zone_choices": admin.zones_in_scope(scope)}
    if not is_htmx(request):
        return await _page(request, scope, status=status, **extra)
    context = _context(request, scope, **extra)
    if status == 200 and editor.get("done"):
        # The list shows the change too (and so does every other console, through the stream).
        return _block("editor", context, status, trigger_event="couriers-changed", after="receive")
    return _block("editor", context, status)


def _zone_problem(code: str, zone: str, lang: str) -> str:
    """One of set_zones' refusals in the page language."""
    if code == "unknown":
        return translate("console.couriers.error.unknown_zone", lang, zone=zone)
    if code == "out_of_scope":
        return translate("console.couriers.error.zone_scope", lang, zone=zone)
    if code == "twice":
        return translate("console.couriers.error.twice", lang, zone=zone)
    if code == "role":
        return translate("console.couriers.error.role", lang)
    return translate("console.couriers.error.bad_request", lang)


class CouriersController(Controller):
    path = PAGE
    guards = [dispatcher_only]
    include_in_schema = False
    exception_handlers = {NotAuthorizedException: _login, PermissionDeniedException: _forbidden}

    @get("/")
    async def page(self, request: Request[Principal, Any, Any]) -> Template:
        scope = await scope_of(request.user)
        # The filter form asks for the list alone; a history restore (no cached page) wants it whole.
        if is_htmx(request) and request.headers.get("hx-history-restore-request") != "true":
            context = _context(request, scope)
            context.update(await _list_context(scope, context["filters"]))
            return _block("courier_list", context)
        return await _page(request, scope)

    @get("/{courier_id:int}")
    async def edit(self, request: Request[Principal, Any, Any], courier_id: PathSerialId) -> Template:
        return await _editor(request, await scope_of(request.user), courier_id)

    @get("/{courier_id:int}/row")
    async def row(self, request: Request[Principal, Any, Any], courier_id: PathSerialId) -> Template:
        scope = await scope_of(request.user)
        if not is_htmx(request) and await admin.courier_entry(scope, courier_id) is None:
            return await _page(request, scope, status=404)
        return await _row(request, scope, courier_id)

    @post("/{courier_id:int}/duty", status_code=200)
    async def duty(self, request: Request[Principal, Any, Any], courier_id: PathSerialId) -> Template:
        lang = request_language(request)
        scope = await scope_of(request.user)
        form = await request.form()
        wanted = str(form.get("on_duty") or "")
        confirmed = str(form.get("confirm") or "") in ("1", "true", "on")
        if wanted not in ("true", "false"):
            error = translate("console.couriers.error.bad_request", lang)
            return await _row(request, scope, courier_id, 422, row_error=error, error_id=courier_id)
        if await admin.courier_entry(scope, courier_id) is None:
            return await _row(request, scope, courier_id, 404)
        if wanted == "false" and not confirmed:
            held = await admin.held_count(courier_id)
            if held:
                # Their pickups stay with them (as when they go off duty themselves): say so first.
                return await _row(request, scope, courier_id, confirm_id=courier_id, held=held)
        try:
            await admin.set_duty(_actor(request), scope, courier_id, wanted == "true")
        except ApiError as exc:
            return await _row(
                request, scope, courier_id, exc.status_code, row_error=exc.message, error_id=courier_id
            )
        return await _row(request, scope, courier_id, done_id=courier_id)

    @post("/{courier_id:int}/zones", status_code=200)
    async def zones(self, request: Request[Principal, Any, Any], courier_id: PathSerialId) -> Template:
        lang = request_language(request)
        scope = await scope_of(request.user)
        form = await request.form()
        codes = [str(v).strip() for v in form.getall("zone", [])]
        roles = [str(v).strip() for v in form.getall("role", [])]
        if len(codes) != len(roles) or len(codes) > 200:
            error = translate("console.couriers.error.bad_request", lang)
            return await _editor(request, scope, courier_id, 422, error=error)
        wanted = [
            ZoneChoice(code, role)
            for code, role in zip(codes, roles, strict=True)
            if code and role != "remove"
        ]
        try:
            await admin.set_zones(_actor(request), scope, courier_id, wanted)
        except ApiError as exc:
            if exc.status_code == 404:
                return await _editor(request, scope, courier_id)
            problems = []
            for e in exc.errors:
                index = _index(e)
                zone = wanted[index].code if index is not None and index < len(wanted) else ""
                problems.append(_zone_problem(str(e.get("code")), zone, lang))
            return await _editor(
                request,
                scope,
                courier_id,
                422,
                error=translate("console.couriers.error.zones", lang),
                problems=problems,
            )
        return await _editor(request, scope, courier_id, done=translate("console.couriers.zones_saved", lang))

    @post("/{courier_id:int}/capacity", status_code=200)
    async def capacity(self, request: Request[Principal, Any, Any], courier_id: PathSerialId) -> Template:
        lang = request_language(request)
        scope = await scope_of(request.user)
        form = await request.form()
        raw = str(form.get("capacity") or "").strip()
        value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else None
        if value is None or not CAPACITY_MIN <= value <= CAPACITY_MAX:
            error = translate("console.couriers.error.capacity", lang, low=CAPACITY_MIN, high=CAPACITY_MAX)
            return await _editor(request, scope, courier_id, 422, capacity_error=error, capacity=raw[:10])
        try:
            await admin.set_capacity(_actor(request), scope, courier_id, value)
        except ApiError as exc:
            if exc.status_code == 404:
                return await _editor(request, scope, courier_id)
            raise
        return await _editor(
            request, scope, courier_id, capacity_done=translate("console.couriers.capacity_saved", lang)
        )


def _index(error: dict[str, Any]) -> int | None:
    """The position in the submitted list that an error of set_zones names (zones[3].zone → 3)."""
    field = str(error.get("field") or "")
    if field.startswith("zones[") and "]" in field:
        number = field[6 : field.index("]")]
        return int(number) if number.isdigit() else None
    return None
