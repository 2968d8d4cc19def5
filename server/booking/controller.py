"""The customer's booking page, /book: no account, one form, a phone in one hand.

GET /book is the form; GET /book/areas is its address block alone (the pickers, whether the address is
served, the slots), which htmx swaps in whenever a picker changes. Without JavaScript the same block
comes back with the whole page: the form's "update" button (shown only in <noscript>) posts it with
step=place, which re-renders the page and books nothing. POST /book books: 303 to the tracking page
/t/<code> (HX-Redirect to it when htmx posted the form), or the page again with each error beside its
field and everything typed kept.

Cross-site posts are refused by Litestar's CSRF check (the form carries the token) and, where the
browser says so (Sec-Fetch-Site, Origin), before the form is read. Bookings are throttled per client
address (server/throttle.py), shared by every process.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template

from server.booking import service
from server.i18n import known, translate
from server.pages import is_htmx, request_language
from server.throttle import Throttle, client_key, retry_after
from server.zones.service import directory

TEMPLATE = "book.html"
DEFAULT_TZ = "Asia/Shanghai"


def _url(lang: str, path: str) -> str:
    return f"{path}?lang=en" if lang == "en" else path


def _slot_label(start: datetime, end: datetime, tz: ZoneInfo, lang: str, today: datetime) -> str:
    """A slot as the customer reads it: 今天 14:00–16:00, Tomorrow 08:00–10:00, 11-28 08:00–10:00."""
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    days = (local_start.date() - today.astimezone(tz).date()).days
    if days == 0:
        day = translate("book.today", lang)
    elif days == 1:
        day = translate("book.tomorrow", lang)
    else:
        day = local_start.strftime("%m-%d")
    return f"{day} {local_start:%H:%M}–{local_end:%H:%M}"


def _context(
    request: Request[Any, Any, Any],
    values: dict[str, str],
    where: service.Place,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
) -> dict[str, Any]:
    lang = request_language(request)
    slots = []
    served = where.served
    if served is not None and served.serviceable:
        zone = directory.zones.get(served.zone.id) if served.zone else None
        tz = ZoneInfo(zone.timezone if zone else DEFAULT_TZ)
        now = datetime.now(UTC)
        slots = [
            (service.slot_value(s.start, s.end), _slot_label(s.start, s.end, tz, lang, now))
            for s in served.slots
        ]
    # Errors are translation keys, but for a stop-ship area's reason: the dispatcher's own words.
    shown = {
        field: translate(text, lang) if known(text) else translate("book.stop_ship_reason", lang, reason=text)
        for field, text in (errors or {}).items()
    }
    return {
        "lang": lang,
        "t": lambda key, **kw: translate(key, lang, **kw),
        "u": lambda path: _url(lang, path),
        "v": values,
        "place": where,
        "slots": slots,
        "errors": shown,
        # The first field in error takes the focus, so a phone scrolls to it after the round trip.
        "focus": next((f for f in service.FIELDS if f in shown), None),
        "notice": notice,
    }


def _page(request: Request[Any, Any, Any], context: dict[str, Any], status: int = 200, **kw: Any) -> Template:
    return Template(template_name=TEMPLATE, context=context, status_code=status, **kw)


def _cross_site(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser says this post comes from another site. Sec-Fetch-Site (every current browser)
    is the browser's own verdict and survives proxies that rewrite Host; without it, Origin is compared
    with the host the request was sent to. Neither header: not a browser's cross-site post (the CSRF
    token still has to match)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site:
        return fetch_site == "cross-site"
    origin = request.headers.get("origin")
    if origin is None:
        return False
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return origin == "null" or urlsplit(origin).netloc not in hosts - {""}


def booking_throttle(request: Request[Any, Any, Any]) -> Throttle:
    settings = request.app.state.settings
    return Throttle("book.address", settings.booking_per_address, settings.booking_window_s)


class BookingController(Controller):
    path = "/book"
    include_in_schema = False  # pages, not API

    @get("/")
    async def form(self, request: Request[Any, Any, Any]) -> Template:
        values = service.form_values({})
        values["parcel_count"] = "1"
        return _page(request, _context(request, values, await service.place(values)))

    @get("/areas")
    async def areas(self, request: Request[Any, Any, Any]) -> Template:
        """The address block for the pickers as they stand (or the whole page, for a plain GET)."""
        values = service.form_values(request.query_params)
        context = _context(request, values, await service.place(values))
        if is_htmx(request):
            context["partial"] = True  # no no-JavaScript button in a block JavaScript swapped in
            return HTMXBlockTemplate(template_name=TEMPLATE, block_name="place", context=context)
        return _page(request, context)

    @post("/", status_code=303)
    async def book(self, request: Request[Any, Any, Any]) -> Template | Redirect | Response[bytes]:
        lang = request_language(request)
        if _cross_site(request):
            empty = service.form_values({})
            notice = translate("book.cross_site", lang)
            return _page(request, _context(request, empty, await service.place(empty), notice=notice), 403)
        form = await request.form()
        values = service.form_values(form)
        where = await service.place(values)
        if form.get("step") == "place":  # the no-JavaScript pickers: show what is under the choice
            return _page(request, _context(request, values, where), 200)
        limit = booking_throttle(request)
        address = client_key(request.client.host if request.client else "unknown")
        if not await limit.acquire(address):
            wait = max(await retry_after((limit, address)), 1)
            notice = translate("book.throttled", lang, minutes=math.ceil(wait / 60))
            return _page(
                request,
                _context(request, values, where, notice=notice),
                429,
                headers={"Retry-After": str(wait)},
            )
        code, errors = await service.book(values, where)
        if code is None:
            return _page(request, _context(request, values, where, errors), 422)
        tracking = _url(lang, f"/t/{code}")
        if is_htmx(request):  # htmx would follow a 303 itself and swap the tracking page into the form
            return Response(content=b"", status_code=200, headers={"HX-Redirect": tracking})
        return Redirect(path=tracking, status_code=303)
