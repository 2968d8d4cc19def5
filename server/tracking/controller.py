"""The customer's tracking page, public at /t/<code>: one page (tracking.html), its htmx partials, its
event stream and its action forms.

The tracking code is the only key (≈99 bits, server/domain/contact.py), so every route here answers an
unknown code exactly like a malformed one: the same 404 page in the page's language, after the same
indexed lookup. Nothing here is indexed by search engines (X-Robots-Tag, meta robots) and no link leaks
the code to another site (Referrer-Policy: no-referrer). What the page shows is decided in queries.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath, FromQuery, HeaderParameter
from litestar.response import ServerSentEvent, Template

from server.i18n import translate
from server.intake import serviceability
from server.pages import is_htmx, request_language, station_timezone
from server.push.hub import PushHub
from server.push.log import PushMessage
from server.push.sse import event_stream, parse_last_event_id, sse_frame
from server.throttle import client_key
from server.tracking import forms, queries

TEMPLATE = "tracking.html"
# Open streams one tracking page may hold in this process (a customer with a few tabs and a phone),
# and one client address across codes (a building behind one NAT has many customers).
STREAMS_PER_PICKUP = 5
STREAMS_PER_CLIENT = 20
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
}


def _url(lang: str, path: str, **params: str | None) -> str:
    query = {k: v for k, v in params.items() if v}
    if lang == "en":
        query["lang"] = "en"
    return f"{path}?{urlencode(query)}" if query else path


def _context(lang: str, view: queries.TrackingView | None, **extra: Any) -> dict[str, Any]:
    timezone = station_timezone(view.timezone if view else queries.DEFAULT_TIMEZONE)

    def fmt(value: datetime, pattern: str = "%m-%d %H:%M") -> str:
        return value.astimezone(timezone).strftime(pattern)

    return {
        "lang": lang,
        "t": lambda key, **kw: translate(key, lang, **kw),
        "u": lambda path, **params: _url(lang, path, **params),
        "fmt": fmt,
        "v": view,
        "base": f"/t/{view.code}" if view else "",
        "errors": {},
        "form": {},
        "done": None,
        "slots": [],
        **extra,
        # The change of address's pickers: as the form left them, else the current address.
        "place": forms.address_pickers(view, extra.get("form") or {}) if view else None,
    }


def _missing(lang: str) -> Template:
    return Template(
        template_name=TEMPLATE, context=_context(lang, None), status_code=404, headers=PAGE_HEADERS
    )


def _block(block: str, context: dict[str, Any], status: int = 200) -> HTMXBlockTemplate:
    return HTMXBlockTemplate(
        template_name=TEMPLATE, block_name=block, context=context, status_code=status, headers=PAGE_HEADERS
    )


async def zone_slots(pickup_id: int) -> list[Any]:
    """The pickup's zone's next slots (server/intake/serviceability.py zone_slots), [] without a zone."""
    zone = await queries.zone_of(pickup_id)
    if zone is None:
        return []
    return list(await serviceability.zone_slots(zone))


class TrackingController(Controller):
    path = "/t"
    include_in_schema = False

    @get("/{code:str}")
    async def page(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        lang = request_language(request)
        view = await self._view(code)
        if view is None:
            return _missing(lang)
        context = _context(lang, view, slots=await zone_slots(view.id))
        return Template(template_name=TEMPLATE, context=context, headers=PAGE_HEADERS)

    @get("/{code:str}/status")
    async def status(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        lang = request_language(request)
        view = await self._view(code)
        if view is None:
            return _missing(lang)
        return _block("status", _context(lang, view))

    @get("/{code:str}/actions")
    async def actions(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        lang = request_language(request)
        view = await self._view(code)
        if view is None:
            return _missing(lang)
        return _block("actions", _context(lang, view, slots=await zone_slots(view.id)))

    @get("/{code:str}/areas")
    async def areas(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        """The change of address's pickers as they stand (htmx swaps them in when one changes); a plain
        GET gets the whole page with the form open and those choices."""
        lang = request_language(request)
        view = await self._view(code)
        if view is None:
            return _missing(lang)
        chosen = {name: str(request.query_params.get(name) or "") for name in (*forms.PICKERS, "detail")}
        context = _context(lang, view, form={**chosen, "step": "place"}, slots=await zone_slots(view.id))
        if is_htmx(request):
            return _block("address_place", context)
        return Template(template_name=TEMPLATE, context=context, headers=PAGE_HEADERS)

    @get("/{code:str}/events")
    async def events(
        self,
        request: Request[Any, Any, Any],
        code: FromPath[str],
        last_event_id_header: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
        last_event_id: FromQuery[str | None] = None,
    ) -> ServerSentEvent | Response[Any]:
        """The page's live stream: a `changed` event (its id and type, nothing else) for each of the
        pickup's customer-visible events; resumable with Last-Event-ID like every stream here."""
        pickup_id = await queries.pickup_id_by_code(code)
        if pickup_id is None:
            return _missing(request_language(request))
        hub: PushHub = request.app.state.hub
        host = request.client.host if request.client else ""
        conn = hub.attach_pickup(
            pickup_id, client_key(host), per_pickup=STREAMS_PER_PICKUP, per_client=STREAMS_PER_CLIENT
        )
        if conn is None:
            return Response(
                content={"code": "too_many_streams", "message": "too many open streams", "errors": []},
                status_code=429,
                headers={"Retry-After": "30"},
            )

        async def visible(message: PushMessage) -> bool:
            return message.pickup_id == pickup_id and message.type in queries.CUSTOMER_TYPES

        stream = event_stream(
            hub,
            attach=lambda _: conn,
            replay=lambda after, limit: queries.customer_events(pickup_id, after, limit),
            latest=lambda: queries.latest_customer_event_id(pickup_id),
            last_event_id=parse_last_event_id(last_event_id_header, last_event_id),
            visible=visible,
            encode=to_public_sse,
        )
        # The stream detaches itself when it ends; a client gone before it started never runs it.
        stream.background = BackgroundTask(hub.detach, conn)
        stream.headers.update(PAGE_HEADERS)
        return stream

    # -- actions -----------------------------------------------------------------------------------------

    @post("/{code:str}/chase", status_code=200)
    async def chase(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        return await self._act(request, code, "chase")

    @post("/{code:str}/cancel", status_code=200)
    async def cancel(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        return await self._act(request, code, "cancel")

    @post("/{code:str}/reschedule", status_code=200)
    async def reschedule(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        return await self._act(request, code, "reschedule")

    @post("/{code:str}/address", status_code=200)
    async def address(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        return await self._act(request, code, "address")

    @post("/{code:str}/rate", status_code=200)
    async def rate(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        return await self._act(request, code, "rate")

    @post("/{code:str}/complain", status_code=200)
    async def complain(self, request: Request[Any, Any, Any], code: FromPath[str]) -> Template:
        return await self._act(request, code, "complain")

    async def _act(self, request: Request[Any, Any, Any], code: str, action: str) -> Template:
        lang = request_language(request)
        view = await self._view(code)
        if view is None:
            return _missing(lang)
        form = {k: str(v) for k, v in (await request.form()).items()}
        slots = await zone_slots(view.id)
        if action == "address" and form.get("step") == "place":
            # The no-JavaScript pickers: show what is under the choice, change nothing.
            context = _context(lang, view, form=form, slots=slots)
            if is_htmx(request):
                return _block("actions", context)
            return Template(template_name=TEMPLATE, context=context, headers=PAGE_HEADERS)
        errors, status, done = await forms.run(action, view, form, slots, lang)
        view = await queries.tracking_view(view.id) or view
        if errors and not forms.offered(action, view):
            # Its form is gone from the page (cancelled meanwhile, say): say why below the actions.
            errors = {"form": " ".join(errors.values())}
        kept = {} if not errors else form
        context = _context(lang, view, errors=errors, form=kept, done=done, slots=slots)
        if not is_htmx(request):
            return Template(template_name=TEMPLATE, context=context, status_code=status, headers=PAGE_HEADERS)
        # The answer also replaces the "done" line above the actions (out of band): it lives outside
        # them so that the actions re-read a change of status brings does not take it away.
        context["answer"] = True
        return _block("actions", context, status)

    @staticmethod
    async def _view(code: str) -> queries.TrackingView | None:
        pickup_id = await queries.pickup_id_by_code(code)
        return await queries.tracking_view(pickup_id) if pickup_id is not None else None


def to_public_sse(message: PushMessage) -> bytes:
    """Only that something changed and what: the page re-reads its partials (queries.py decides what
    they show), so no event data, actor or id of anything else ever travels this public stream.

    A change of status is a `state` event (the status and the action forms re-read); the customer's
    own actions (chased, rated, ...) are `changed` (only the status re-reads: the form that sent it
    has its answer already, and re-reading the forms under it would race that answer away).
    """
    kind = message.type.removeprefix("pickup.")
    event = "state" if message.type in queries.STATE_TYPES else "changed"
    return sse_frame(f'{{"type":"{kind}"}}'.encode(), event=event, id=message.id)
