"""The console's pickup drawer: one pickup with its offers and its whole history, and what a dispatcher
may do to it (assign or reassign, take back, cancel on the customer's behalf, add a note).

GET /console/pickups/{id} is the drawer (the `drawer` block of console_drawer.html) when htmx or
console-drawer.js asks for it, and a page of its own otherwise (a tracking code opened in a new tab).
Each action is a form POST answered with the drawer re-rendered, its outcome shown in the form that
was sent; every change is an event with the dispatcher as actor, written by the services that own it.
The drawer follows the console's stream through console-drawer.js (it opens no stream of its own).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Controller, Request, get, post
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response import Template

from server.auth.principal import Principal, dispatcher_only
from server.console import queries
from server.console.actions import NOTE_MAX, add_note
from server.console.controller import _base_context, _forbidden, _to_login, localise_api_error
from server.console.pickup_detail import ACTOR_KINDS, EVENT_NAMES, OFFER_OUTCOMES, pickup_detail
from server.courier_app.controller import DECLINE_REASONS
from server.dispatch import service as dispatch
from server.dispatch.rules import STAGE_NAMES
from server.dispatch.scope import scope_of
from server.domain.pickup_states import FAILURE_REASONS, HELD_STATES, Action, allowed_from
from server.errors import ApiError
from server.i18n import translate
from server.pages import is_htmx, request_language, station_timezone
from server.pickups import actions as pickup_actions
from server.push.log import Actor
from server.validation import MAX_SERIAL_ID, PathId, form_id

TEMPLATE = "console_drawer.html"
REASON_MAX = 200
FORMS = ("assign", "unassign", "cancel", "note")
# Why offers were withdrawn (close_offers' and release's reasons), said in words in the history.
WITHDRAW_REASONS = (
    "expired",
    "taken",
    "assigned",
    "reassigned",
    "unassigned",
    "cancelled",
    "address_changed",
)
ASSIGNABLE = frozenset(s.value for s in allowed_from(Action.ASSIGN))
CANCELLABLE = frozenset(s.value for s in allowed_from(Action.CANCEL))
# What unassign_pickups takes back: held, offered, or failed (offered again).
TAKEABLE = frozenset({*(s.value for s in HELD_STATES), "offered", "failed"})


def local_time(value: datetime | None, timezone: str, seconds: bool = False) -> str:
    """A moment in the station's own time zone, as the board shows due times."""
    if value is None:
        return "—"
    return value.astimezone(station_timezone(timezone)).strftime("%m-%d %H:%M" + (":%S" if seconds else ""))


def _actor(request: Request[Principal, Any, Any]) -> Actor:
    return Actor(request.user.role, request.user.id)


async def _render(
    request: Request[Principal, Any, Any],
    pickup_id: int,
    *,
    result: dict[str, Any] | None = None,
    status: int = 200,
) -> Template:
    lang = request_language(request)
    scope = await scope_of(request.user)
    detail = await pickup_detail(pickup_id, _actor(request), scope)
    context = _base_context(request, lang) | {
        "d": detail,
        "result": result or {},
        "at": local_time,
        "couriers": await queries.couriers(scope=scope) if detail else [],
        "event_names": EVENT_NAMES,
        "actor_kinds": ACTOR_KINDS,
        "outcomes": OFFER_OUTCOMES,
        "stages": tuple(STAGE_NAMES.values()),
        "withdraw_reasons": WITHDRAW_REASONS,
        "failure_reasons": tuple(FAILURE_REASONS),
        "decline_reasons": DECLINE_REASONS,
        "assignable": ASSIGNABLE,
        "cancellable": CANCELLABLE,
        "takeable": TAKEABLE,
        "note_max": NOTE_MAX,
        "reason_max": REASON_MAX,
    }
    if detail is None and status < 400:
        status = 404
    if is_htmx(request):
        return HTMXBlockTemplate(
            template_name=TEMPLATE, block_name="drawer", context=context, status_code=status
        )
    return Template(template_name=TEMPLATE, context=context, status_code=status)


def _text(form: Any, name: str) -> str:
    return str(form.get(name) or "").replace("\r\n", "\n").strip()


class DrawerController(Controller):
    path = "/console/pickups"
    guards = [dispatcher_only]
    include_in_schema = False
    exception_handlers = {NotAuthorizedException: _to_login, PermissionDeniedException: _forbidden}

    @get("/{pickup_id:int}")
    async def drawer(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> Template:
        return await _render(request, pickup_id)

    @post("/{pickup_id:int}/assign", status_code=200)
    async def assign(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> Template:
        lang = request_language(request)
        form = await request.form()
        courier_id = form_id(form.get("courier_id"), MAX_SERIAL_ID)
        reason = _text(form, "reason")
        # Not kept after the answer: each assignment outside a zone is decided afresh.
        outside = str(form.get("allow_outside_zone") or "") in ("on", "true", "1")
        result: dict[str, Any] = {"form": "assign", "courier_id": courier_id, "reason": reason}
        status = 200
        if courier_id is None:
            result["error"], status = translate("console.dispatch.no_courier", lang), 422
        elif not reason:
            result["error"], status = translate("console.dispatch.no_reason", lang), 422
        elif len(reason) > REASON_MAX:
            result["error"], status = translate("console.drawer.too_long", lang, n=REASON_MAX), 422
        else:
            try:
                await dispatch.assign_pickups(
                    _actor(request),
                    [pickup_id],
                    courier_id,
                    reason=reason,
                    allow_outside_zone=outside,
                    scope=await scope_of(request.user),
                )
                name = await queries.courier_name(courier_id)
                result = {"form": "assign", "done": translate("console.drawer.assigned", lang, courier=name)}
            except ApiError as exc:
                result["error"], status = localise_api_error(exc, lang), exc.status_code
        return await _render(request, pickup_id, result=result, status=status)

    @post("/{pickup_id:int}/unassign", status_code=200)
    async def unassign(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> Template:
        lang = request_language(request)
        form = await request.form()
        reason = _text(form, "reason")
        result: dict[str, Any] = {"form": "unassign", "reason": reason}
        status = 200
        if not reason:
            result["error"], status = translate("console.dispatch.no_reason", lang), 422
        elif len(reason) > REASON_MAX:
            result["error"], status = translate("console.drawer.too_long", lang, n=REASON_MAX), 422
        else:
            try:
                await dispatch.unassign_pickups(
                    _actor(request), [pickup_id], reason=reason, scope=await scope_of(request.user)
                )
                result = {"form": "unassign", "done": translate("console.drawer.taken_back", lang)}
            except ApiError as exc:
                result["error"], status = localise_api_error(exc, lang), exc.status_code
        return await _render(request, pickup_id, result=result, status=status)

    @post("/{pickup_id:int}/cancel", status_code=200)
    async def cancel(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> Template:
        lang = request_language(request)
        form = await request.form()
        reason = _text(form, "reason")
        result: dict[str, Any] = {"form": "cancel", "reason": reason}
        status = 200
        if not reason:
            result["error"], status = translate("console.dispatch.no_reason", lang), 422
        elif len(reason) > REASON_MAX:
            result["error"], status = translate("console.drawer.too_long", lang, n=REASON_MAX), 422
        else:
            try:
                await pickup_actions.cancel(
                    _actor(request), pickup_id, reason, scope=await scope_of(request.user)
                )
                result = {"form": "cancel", "done": translate("console.drawer.cancelled", lang)}
            except ApiError as exc:
                status = exc.status_code
                current = exc.extra_fields.get("current_status")
                if exc.code == "illegal_transition" and current:
                    state = translate(f"console.status.{current}", lang)
                    result["error"] = translate("console.drawer.cannot_cancel", lang, status=state)
                else:
                    result["error"] = localise_api_error(exc, lang)
        return await _render(request, pickup_id, result=result, status=status)

    @post("/{pickup_id:int}/note", status_code=200)
    async def note(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> Template:
        lang = request_language(request)
        form = await request.form()
        text = _text(form, "text")
        result: dict[str, Any] = {"form": "note", "text": text}
        status = 200
        if not text:
            result["error"], status = translate("console.drawer.note_empty", lang), 422
        elif len(text) > NOTE_MAX:
            result["error"], status = translate("console.drawer.too_long", lang, n=NOTE_MAX), 422
        else:
            try:
                await add_note(_actor(request), pickup_id, text, scope=await scope_of(request.user))
                result = {"form": "note", "done": translate("console.drawer.noted", lang)}
            except ApiError as exc:
                result["error"], status = localise_api_error(exc, lang), exc.status_code
        return await _render(request, pickup_id, result=result, status=status)
