"""The dispatcher's live console: one page (console.html) and its htmx partials, all under /console.

The board updates itself from the console SSE stream (the events of the dispatcher's stations, from the
durable log; each says only which pickup changed): console.js re-fetches the row partial of each pickup
an event names. Forms (zone import, assign, unassign) answer
with their own partial; the board then changes through the same stream, like for any other change.
"""

from __future__ import annotations

import codecs
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromQuery, HeaderParameter
from litestar.response import Redirect, ServerSentEvent, Template

from server.auth.principal import Principal, dispatcher_only
from server.console import courier_admin, queries
from server.console.board import ATTENTION, SORTS, STATUSES, BoardFilter, filter_options, read_board
from server.console.board_rows import row_html
from server.dispatch import service as dispatch
from server.dispatch.scope import Scope, scope_of
from server.domain.geo import GeoJSONError
from server.errors import ApiError
from server.i18n import MESSAGES, translate
from server.pages import forbidden_page, is_htmx, request_language, station_timezone
from server.push.log import Actor, PushMessage, all_events_since, latest_event_id, utcnow
from server.push.sse import event_stream, parse_last_event_id, to_console_sse
from server.validation import MAX_SERIAL_ID, PathId, form_id
from server.zones.service import import_zones

TEMPLATE = "console.html"
# The side panel lists every courier in reach, as it always has; the couriers page pages its own list.
PANEL_LIMIT = 2000
DATUMS = ("wgs84", "gcj02", "bd09")
# Strings console.js needs (relative times, the live indicator), sent once with the page.
JS_STRINGS = (
    "console.live",
    "console.offline",
    "console.due.left",
    "console.due.over",
    "console.dur.min",
    "console.dur.hour",
    "console.dur.day",
    "console.dispatch.selected",
    "console.form.unreachable",
    "console.form.failed",
    "console.board.loading",
    "console.board.failed_load",
)
# Strings console-map.js needs (server/console/map.py serves its data).
MAP_JS_STRINGS = (
    *(f"console.status.{s}" for s in ("pending", "offered", "accepted", "contacted", "failed")),
    "console.section.queue",
    "console.courier.on_duty",
    "console.courier.off_duty",
    "console.courier.last_seen",
    "console.map.stale",
    "console.map.open_count",
    "console.map.truncated",
    "console.map.draw.hint",
    "console.map.draw.start",
    "console.map.draw.cont",
    "console.map.draw.end",
    "console.map.draw.crossing",
    "console.map.draw.saving",
    "console.map.draw.done",
    "console.form.unreachable",
    "console.form.failed",
)


def _url(lang: str, path: str, **params: str | None) -> str:
    """A console URL that keeps the page language (zh-CN is the default and needs no parameter)."""
    query = {k: v for k, v in params.items() if v}
    if lang == "en":
        query["lang"] = "en"
    return f"{path}?{urlencode(query)}" if query else path


class Formatter:
    """Times for people: due times in the station's own time zone, durations and ages in words."""

    def __init__(self, lang: str, now: datetime | None = None) -> None:
        self.lang = lang
        self.now = now or utcnow()

    def local(self, value: datetime, timezone: str = queries.DEFAULT_TIMEZONE) -> str:
        return value.astimezone(station_timezone(timezone)).strftime("%m-%d %H:%M")

    def duration(self, seconds: float) -> str:
        minutes = max(int(seconds // 60), 0)
        if minutes < 1:
            return translate("console.dur.min", self.lang, n="<1")
        if minutes < 60:
            return translate("console.dur.min", self.lang, n=minutes)
        if minutes < 24 * 60:
            hours, minutes = divmod(minutes, 60)
            return translate("console.dur.hour", self.lang, h=hours, m=minutes)
        return translate("console.dur.day", self.lang, n=minutes // (24 * 60))

    def remaining(self, row: queries.PickupRow) -> str:
        if row.due_at is None or row.section in ("failed", "closed"):
            return ""
        left = (row.due_at - self.now).total_seconds()
        if left >= 0:
            return translate("console.due.left", self.lang, d=self.duration(left))
        return translate("console.due.over", self.lang, d=self.duration(-left))

    def ago(self, value: datetime | None) -> str:
        if value is None:
            return "—"
        seconds = (self.now - value).total_seconds()
        if seconds < 60:
            return translate("console.just_now", self.lang)
        return translate("console.ago", self.lang, d=self.duration(seconds))


def _base_context(request: Request[Principal, Any, Any], lang: str) -> dict[str, Any]:
    return {
        "lang": lang,
        "t": lambda key, **kw: translate(key, lang, **kw),
        "u": lambda path, **params: _url(lang, path, **params),
        "fmt": Formatter(lang),
        "user": request.user,
        "board_row": row_html,
    }


async def _board_context(board_filter: BoardFilter, scope: Scope) -> dict[str, Any]:
    board = await read_board(board_filter, scope)
    return {
        "board": board,
        "bf": board.filter,
        "zone": board.zone,
        "sections": board.sections,
        "board_choices": {"statuses": STATUSES, "attention": ATTENTION, "sorts": SORTS},
    }


def _dispatch_context(couriers: list[queries.CourierRow], **form: Any) -> dict[str, Any]:
    return {"courier_options": couriers, "dispatch": {"courier_id": None, "reason": ""} | form}


async def _zone_form_context(**result: Any) -> dict[str, Any]:
    return {"stations": await queries.stations(), "datums": DATUMS, "zone_result": result}


def _block(block: str, context: dict[str, Any], status: int = 200, **kwargs: Any) -> HTMXBlockTemplate:
    return HTMXBlockTemplate(
        template_name=TEMPLATE, block_name=block, context=context, status_code=status, **kwargs
    )


async def _page(
    request: Request[Principal, Any, Any],
    lang: str,
    board_filter: BoardFilter | None,
    *,
    dispatch: dict[str, Any] | None = None,
    zone_result: dict[str, Any] | None = None,
    status: int = 200,
) -> Template:
    """The whole page; forms posted without htmx come back to it with their outcome shown."""
    context = _base_context(request, lang)
    # Read before the board: console.js resumes the stream from here, so nothing that happens between
    # rendering the page and connecting the stream is missed.
    context["last_event_id"] = await latest_event_id()
    scope = await scope_of(request.user)
    context.update(await _board_context(board_filter or BoardFilter(), scope))
    context["filter_options"] = await filter_options(scope)
    couriers = await queries.couriers(scope=scope)
    context.update(_dispatch_context(couriers, **(dispatch or {})))
    context.update(await _zone_form_context(**(zone_result or {})))
    context.update(
        couriers=couriers,
        tile_url=request.app.state.settings.map_tile_url,
        tile_datum=request.app.state.settings.map_tile_datum,
        js_strings={key: translate(key, lang) for key in JS_STRINGS},
        map_strings={key: translate(key, lang) for key in MAP_JS_STRINGS},
    )
    return Template(template_name=TEMPLATE, context=context, status_code=status)


# -- zone import errors in the page language ------------------------------------------------------------

# The GeoJSON checks (server/domain/geo.py, zones/service.py) speak English to API clients; the console
# recognises their messages and says them in Chinese. One not listed here is shown as it is.
_GEO_MESSAGES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), key)
    for p, key in (
        (r"^expected a GeoJSON FeatureCollection$", "console.geo.not_collection"),
        (r"^a FeatureCollection needs a 'features' array$", "console.geo.no_features"),
        (r"^expected a GeoJSON Feature$", "console.geo.not_feature"),
        (r"^properties must be an object$", "console.geo.properties"),
        (r"^code (is required|must be a non-empty string)$", "console.geo.code"),
        (r"^name (is required|must be a string)$", "console.geo.name"),
        (r"^priority must be an integer", "console.geo.priority"),
        (
            r"^(?P<what>code|name|station|an admin area) must not contain control characters$",
            "console.geo.control",
        ),
        (
            r"^(?P<what>code|name|station|an admin area) must be at most (?P<n>\d+) characters$",
            "console.geo.too_long",
        ),
        (r"^(?P<what>code|name|station|an admin area) must not be blank$", "console.geo.blank"),
        (r"^a whole number of seconds from (?P<low>\d+) to (?P<high>\d+)$", "console.geo.ttl"),
        (r"^a number of minutes above 0 and at most (?P<high>\d+)$", "console.geo.sla"),
        (r"^admin_areas must be an array of strings$", "console.geo.admin_areas"),
        (r"^an admin area must be a non-empty string$", "console.geo.admin_areas"),
        (r"^station must be a string code$", "console.geo.station"),
        (r"^(?P<n>\d+) more invalid positions in this ring are not listed$", "console.geo.more_positions"),
        (
            r"^duplicate code '(?P<code>.*)': already used by features\[(?P<other>\d+)\]$",
            "console.geo.duplicate",
        ),
        (r"^geometry is null", "console.geo.null_geometry"),
        (r"^geometry must be a GeoJSON geometry object or null$", "console.geo.geometry"),
        (r"^unsupported geometry type (?P<type>.*?);", "console.geo.geometry_type"),
        (r"^a position must be \[longitude, latitude\] numbers$", "console.geo.position"),
        (r"^position (?P<pos>.*?): longitude .* outside \[-180, 180\]", "console.geo.longitude"),
        (r"^position (?P<pos>.*?): latitude .* outside \[-90, 90\]", "console.geo.latitude"),
        (r"^position (?P<pos>.*) is outside China", "console.geo.outside_china"),
        (r"^a linear ring needs at least 4 positions .*got (?P<n>\d+)$", "console.geo.ring_short"),
        (r"^linear ring is not closed", "console.geo.ring_open"),
        (
            r"^(invalid polygon|invalid MultiPolygon|\w+ becomes invalid in WGS-84): (?P<why>.*)$",
            "console.geo.invalid",
        ),
        (r"^no station given$", "console.geo.no_station"),
        (r"^station '(?P<code>.*)' is outside the stations you answer for$", "console.geo.station_scope"),
        (r"^zone '(?P<code>.*)' belongs to a station outside yours$", "console.geo.zone_scope"),
        (r"^unknown station '(?P<code>.*)'$", "console.geo.unknown_station"),
        (r"^grab or assign$", "console.geo.dispatch_mode"),
    )
]
_SWAPPED_HINT = "it looks like [latitude, longitude]"
# GEOS' reasons for an invalid polygon, as geo.py passes them on ("Self-intersection at or near point …").
_GEOS_REASONS_ZH = (
    ("Ring Self-intersection", "环自相交"),
    ("Self-intersection", "自相交"),
    ("Hole lies outside shell", "内环在外环之外"),
    ("Nested shells", "外环相互嵌套"),
    ("Nested holes", "内环相互嵌套"),
    ("Interior is disconnected", "内部不连通"),
    ("Too few points", "点数太少"),
    ("Duplicate Rings", "环重复"),
    (" at or near point ", "，位置约在 "),
)
_FEATURE_INDEX = re.compile(r"^features\[(\d+)\]")


def localise_geo_message(message: str, lang: str) -> str:
    if lang == "en":
        return message
    for pattern, key in _GEO_MESSAGES:
        match = pattern.search(message)
        if match:
            values = match.groupdict()
            if "why" in values:
                for english, chinese in _GEOS_REASONS_ZH:
                    values["why"] = values["why"].replace(english, chinese)
            text = translate(key, lang, **values)
            if _SWAPPED_HINT in message:
                text += translate("console.geo.swapped", lang)
            return text
    return message


# Errors about the upload as a whole rather than a place in it: said as sentences, not table rows.
_UPLOAD_FIELDS = ("", "body", "file", "geojson", "datum")


def _zone_errors(raw: list[tuple[int | None, str, str]], lang: str) -> list[dict[str, Any]]:
    out = []
    for index, field, message in raw:
        if index is None and (match := _FEATURE_INDEX.match(field)):
            index = int(match.group(1))
        short = (
            field[match.end() + 1 :]
            if (match := _FEATURE_INDEX.match(field)) and match.end() < len(field)
            else field
        )
        out.append(
            {
                "index": index,
                "field": field,
                "short_field": short,
                "message": localise_geo_message(message, lang),
                "general": index is None and field in _UPLOAD_FIELDS,
            }
        )
    return out


def localise_api_error(exc: ApiError, lang: str) -> str:
    """The service's message in the page language: by its code when that language's catalogue knows
    it; otherwise (English only: every code the console meets has Chinese) the API's own text, which
    is written for programs ("set allow_outside_zone to insist"), made a sentence."""
    key = f"console.error.{exc.code}"
    if key in MESSAGES[lang]:
        return translate(key, lang)
    text = exc.message.strip()
    if not text:
        return translate("console.form.failed", lang, status=exc.status_code)
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# msgspec's reasons for refusing JSON text ("JSON is malformed: expected ':' (byte 5)"), in words.
_JSON_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), key)
    for p, key in (
        (r"object keys must be strings", "console.zones.json.keys"),
        (r"trailing comma", "console.zones.json.trailing_comma"),
        (r"trailing characters", "console.zones.json.trailing"),
        (r"expected ':'", "console.zones.json.colon"),
        (r"expected ',' or '(?P<bracket>[\]}])'", "console.zones.json.comma"),
        (r"invalid character|invalid escape|invalid number", "console.zones.json.character"),
        (r"truncated", "console.zones.json.truncated"),
    )
]
_JSON_BYTE = re.compile(r"\(byte (\d+)\)")


def json_error_message(exc: msgspec.DecodeError, source: str, lang: str) -> str:
    """Where and why msgspec refused the text, as a person reads it: line and column (msgspec gives a
    byte offset into the UTF-8 text) and the reason in the page language."""
    detail = str(exc)
    reason = detail
    for pattern, key in _JSON_REASONS:
        if match := pattern.search(detail):
            reason = translate(key, lang, **match.groupdict())
            break
    if match := _JSON_BYTE.search(detail):
        offset = int(match.group(1))
        if "trailing characters" in detail:
            offset -= 1  # msgspec counts that one past the first extra character
        before = source.encode("utf-8")[: max(offset, 0)].decode("utf-8", errors="ignore")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        return translate("console.zones.bad_json_at", lang, line=line, column=column, reason=reason)
    return translate("console.zones.bad_json", lang, detail=reason)


# -- access: anonymous browsers go to the login page, others get a page saying why not ------------------


def _login_url(lang: str) -> str:
    return "/auth/login?" + urlencode(
        {"next": _url(lang, "/console")} | ({"lang": "en"} if lang == "en" else {})
    )


def _to_login(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    lang = request_language(request)
    target = _login_url(lang)
    if is_htmx(request):
        # A partial would otherwise swap the login page into the board.
        return Response(content="", status_code=401, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)


def _forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    return forbidden_page(request, "console.forbidden", _login_url(request_language(request)))


# -- reading an uploaded zone file ----------------------------------------------------------------------

# A city's zones with detailed boundaries fit several times over; the JSON API's general limit
# (LANSHOU_MAX_BODY_BYTES, 1 MiB) is for pickups, not for a whole map.
ZONE_UPLOAD_MAX_BYTES = 8 * 1024 * 1024
# A zone file needs 8 levels (collection, features, feature, geometry, then MultiPolygon coordinates);
# anything much deeper is not a zone file and would only exhaust the stack of whoever walks it.
ZONE_MAX_DEPTH = 32


class _TooDeep(ValueError):
    pass


def _upload_text(raw: bytes) -> str | None:
    """The text of an uploaded file, or None when it is in no encoding we can read.

    UTF-8 with or without a BOM; UTF-16 when it starts with its BOM (Windows Notepad's "Unicode");
    otherwise GB18030, a superset of GBK, which is what Chinese Windows tools save by default.
    """
    if raw.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _decode_json(text: str) -> Any:
    """JSON text to Python values, refusing nesting deeper than ZONE_MAX_DEPTH."""
    try:
        value = msgspec.json.decode(text)
    except RecursionError:  # msgspec gives up near 1000 levels
        raise _TooDeep from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > ZONE_MAX_DEPTH:
            raise _TooDeep
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


class ConsoleController(Controller):
    path = "/console"
    guards = [dispatcher_only]
    include_in_schema = False
    exception_handlers = {NotAuthorizedException: _to_login, PermissionDeniedException: _forbidden}

    # The board's filter is the query string (q, status, station, zone, courier, partner, attention,
    # sort, <section>_page: see board.py); a value that makes no sense is dropped, never a 4xx.
    @get("/")
    async def page(self, request: Request[Principal, Any, Any]) -> Template:
        board_filter = BoardFilter.from_params(request.query_params)
        return await _page(request, request_language(request), board_filter)

    @get("/board")
    async def board(self, request: Request[Principal, Any, Any]) -> Template:
        board_filter = BoardFilter.from_params(request.query_params)
        context = _base_context(request, request_language(request)) | await _board_context(
            board_filter, await scope_of(request.user)
        )
        return _block("board", context)

    @get("/pickups/{pickup_id:int}/row")
    async def row(self, request: Request[Principal, Any, Any], pickup_id: PathId) -> Response[Any]:
        row = await queries.pickup_row(pickup_id, await scope_of(request.user))
        if row is None:
            return Response(content="", status_code=404, media_type=MediaType.HTML)
        lang = request_language(request)
        html = row_html(row, lang, lambda path, **params: _url(lang, path, **params), Formatter(lang))
        return Response(content=html, media_type=MediaType.HTML)

    @get("/couriers/panel")
    async def couriers(
        self,
        request: Request[Principal, Any, Any],
        station: FromQuery[str | None] = None,
        zone: FromQuery[str | None] = None,
    ) -> Template:
        """The board's courier panel, for the board's own station and zone filter (the couriers page,
        /console/couriers, is server/console/couriers.py)."""
        filters = courier_admin.Filters(station=(station or "")[:64] or None, zone=(zone or "")[:64] or None)
        couriers, _ = await courier_admin.list_couriers(
            await scope_of(request.user), filters, limit=PANEL_LIMIT
        )
        context = _base_context(request, request_language(request)) | {
            "couriers": couriers,
            "panel_filter": {"station": filters.station, "zone": filters.zone},
        }
        return _block("couriers", context)

    @get("/events")
    async def events(
        self,
        request: Request[Principal, Any, Any],
        last_event_id_header: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
        last_event_id: FromQuery[str | None] = None,
    ) -> ServerSentEvent:
        principal = request.user

        # The scope is looked up per message, not once: zones and stations added while the stream is
        # open count at once (scope_of caches it, and zones.changed clears the cache).
        async def visible(message: PushMessage) -> bool:
            return (await scope_of(principal)).covers_zone(message.zone)

        async def replay(after_id: int, limit: int) -> list[PushMessage]:
            scope = await scope_of(principal)
            return await all_events_since(after_id, limit, zone_filter=scope.pickup_filter)

        return event_stream(
            request.app.state.hub,
            attach=lambda hub: hub.attach_console(),
            replay=replay,
            latest=latest_event_id,
            last_event_id=parse_last_event_id(last_event_id_header, last_event_id),
            visible=visible,
            encode=to_console_sse,
        )

    @post("/zones", status_code=200, request_max_body_size=ZONE_UPLOAD_MAX_BYTES)
    async def upload_zones(self, request: Request[Principal, Any, Any]) -> Template:
        lang = request_language(request)
        errors: list[tuple[int | None, str, str]] = []
        status = 422
        try:
            form = await request.form()
        except RequestEntityTooLarge:
            form, status = FormMultiDict(), 413
            mb = ZONE_UPLOAD_MAX_BYTES // (1024 * 1024)
            errors.append((None, "file", translate("console.zones.too_large", lang, mb=mb)))
        except (UnicodeDecodeError, LookupError):
            # A text field in a charset Litestar cannot decode (only a hand-made request does this).
            form = FormMultiDict()
            errors.append((None, "geojson", translate("console.zones.bad_encoding", lang)))
        upload = form.get("file")
        text = str(form.get("geojson") or "")
        raw = await upload.read() if isinstance(upload, UploadFile) else b""
        source: str | None = text
        if raw.strip():
            source = _upload_text(raw)
            if source is None:
                errors.append((None, "file", translate("console.zones.bad_encoding", lang)))
        station = str(form.get("station") or "") or None
        datum = str(form.get("datum") or "wgs84")
        keep = {"text": text if len(text) < 200_000 else "", "station": station, "datum": datum}
        summary = None
        if errors or source is None:
            pass  # the form or the file could not be read: nothing to import
        elif not source.strip():
            errors.append((None, "file", translate("console.zones.empty", lang)))
        elif datum not in DATUMS:
            errors.append((None, "datum", f"wgs84, gcj02 or bd09: {datum!r}"))
        else:
            try:
                collection = _decode_json(source)
                summary = await import_zones(
                    collection,
                    datum=datum,  # type: ignore[arg-type]
                    default_station=station,
                    actor=Actor(request.user.role, request.user.id),
                    deactivate_missing=False,
                    scope=await scope_of(request.user),
                )
            except msgspec.DecodeError as exc:
                errors.append((None, "body", json_error_message(exc, source, lang)))
            except _TooDeep:
                errors.append((None, "body", translate("console.zones.too_deep", lang, n=ZONE_MAX_DEPTH)))
            except GeoJSONError as exc:
                errors.extend((e.index, e.field, e.message) for e in exc.errors)
            except ApiError as exc:
                errors.extend((None, e.get("field") or "", e.get("message") or "") for e in exc.errors)
                if not exc.errors:
                    errors.append((None, "", localise_api_error(exc, lang)))
        result = {"errors": _zone_errors(errors, lang), "summary": summary, **keep}
        status = status if errors else 200
        if not is_htmx(request):
            return await _page(request, lang, None, zone_result=result, status=status)
        context = _base_context(request, lang) | await _zone_form_context(**result)
        # The map redraws itself on this event (and on the zones.changed event of the stream).
        if summary is None:
            return _block("zone_form", context, status)
        return _block("zone_form", context, status, trigger_event="zones-changed", after="receive")

    @post("/pickups/assign", status_code=200)
    async def assign(self, request: Request[Principal, Any, Any]) -> Template:
        return await self._dispatch(request, unassign=False)

    @post("/pickups/unassign", status_code=200)
    async def unassign(self, request: Request[Principal, Any, Any]) -> Template:
        return await self._dispatch(request, unassign=True)

    async def _dispatch(self, request: Request[Principal, Any, Any], *, unassign: bool) -> Template:
        lang = request_language(request)
        form = await request.form()
        pickup_ids = sorted({i for v in form.getall("pickup_ids", []) if (i := form_id(v)) is not None})
        courier_id = form_id(form.get("courier_id"), MAX_SERIAL_ID)
        reason = str(form.get("reason") or "").strip()
        allow_outside_zone = str(form.get("allow_outside_zone") or "") in ("on", "true", "1")
        kept: dict[str, Any] = {
            "courier_id": courier_id,
            "reason": reason,
            "allow_outside_zone": allow_outside_zone,
        }
        error, status, done = None, 200, None
        if not pickup_ids:
            error, status = translate("console.dispatch.no_selection", lang), 422
        elif courier_id is None and not unassign:
            error, status = translate("console.dispatch.no_courier", lang), 422
        elif not reason:
            error, status = translate("console.dispatch.no_reason", lang), 422
        else:
            actor = Actor(request.user.role, request.user.id)
            scope = await scope_of(request.user)
            try:
                if courier_id is None or unassign:
                    changed = await dispatch.unassign_pickups(actor, pickup_ids, reason=reason, scope=scope)
                    done = translate("console.dispatch.done_unassign", lang, n=len(changed))
                else:
                    changed = await dispatch.assign_pickups(
                        actor,
                        pickup_ids,
                        courier_id,
                        reason=reason,
                        allow_outside_zone=allow_outside_zone,
                        scope=scope,
                    )
                    name = await queries.courier_name(courier_id)
                    done = translate("console.dispatch.done_assign", lang, n=len(changed), courier=name)
                # Done: the next action starts afresh; a forgotten "allow outside zone" would let the
                # next assignment skip the zone check without anyone noticing.
                kept.update(reason="", allow_outside_zone=False)
            except ApiError as exc:
                error, status = localise_api_error(exc, lang), exc.status_code
        kept.update(error=error, done=done)
        if not is_htmx(request):
            return await _page(request, lang, None, dispatch=kept, status=status)
        couriers = await queries.couriers(scope=await scope_of(request.user))
        context = _base_context(request, lang) | _dispatch_context(couriers, **kept)
        return _block("dispatch_form", context, status)
