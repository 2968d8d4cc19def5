"""The one place that decodes, bounds and normalises what clients send.

- Field types (`line`, `lines`, `Id`, `Moment`, `PHONE_PATTERN`) used by every request struct, so the
  bounds are declared once and the OpenAPI schema states them (patterns, lengths, ranges).
- `check_json_body`, the `before_request` hook of every JSON controller: JSON only (415), UTF-8 (400),
  not nested without end (400), and the body checked strictly against the handler's struct with EVERY
  bad field reported (422), before Litestar's own lenient conversion ever sees it.
- `check_request_line`, an ASGI middleware refusing control characters in the path and query string:
  PostgreSQL refuses NUL in text, so a NUL in any parameter would otherwise reach the database.
"""

from __future__ import annotations

import re
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import Request
from litestar.params import Parameter
from litestar.types import ASGIApp, Receive, Scope, Send

from server.domain.text import LINE_PATTERN, LINES_PATTERN, OPTIONAL_LINE_PATTERN
from server.errors import ApiError, field_errors, malformed_body

# PostgreSQL BIGINT: a larger id can name nothing, and the database refuses to compare with it.
MAX_ID = 2**63 - 1
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
# The same bound for an id in a path (/api/v1/pickups/{pickup_id}): out of range is a bad parameter.
PathId = Annotated[int, Parameter(ge=1, le=MAX_ID)]
# Couriers, users, stations, zones and partners have PostgreSQL `serial` (32-bit) ids.
MAX_SERIAL_ID = 2**31 - 1
SerialId = Annotated[int, msgspec.Meta(ge=1, le=MAX_SERIAL_ID)]
PathSerialId = Annotated[int, Parameter(ge=1, le=MAX_SERIAL_ID)]

# A mainland-China mobile number; +86 / 0086 / 86 and spaces or dashes between digits are accepted.
PHONE_PATTERN = r"^(\+86|0086|86)?[ \-]?1[3-9]([ \-]?[0-9]){9}$"
# Ids that apps make up for their own actions (UUIDs, ULIDs, counters).
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"

_PATTERN_MESSAGES = {
    LINE_PATTERN: "must not be blank or contain control characters",
    OPTIONAL_LINE_PATTERN: "must not contain control characters",
    LINES_PATTERN: "must not contain control characters other than line breaks",
    PHONE_PATTERN: "not a mainland-China mobile number (11 digits, 1[3-9]…, optionally +86)",
    CLIENT_ID_PATTERN: "1 to 64 letters, digits or . _ : -",
}

# Times outside this range are mistakes (a phone's clock at zero, a year typed as 20266), and near the
# ends of the calendar converting an offset to UTC overflows.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
Moment = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description="ISO 8601 with a UTC offset (2026-11-25T14:00:00+08:00), from 2000 up to 2100 in UTC",
    ),
]


# Text fields by length: `LineN` a required single line (not blank), `OptionalLineN` a single line that
# may be empty, `TextN` free text with line breaks. Written out (not built by a function) so that type
# checkers read them as types.
Line32 = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=LINE_PATTERN)]
Line64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=LINE_PATTERN)]
Line128 = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=LINE_PATTERN)]
Line200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=LINE_PATTERN)]
OptionalLine64 = Annotated[str, msgspec.Meta(max_length=64, pattern=OPTIONAL_LINE_PATTERN)]
OptionalLine128 = Annotated[str, msgspec.Meta(max_length=128, pattern=OPTIONAL_LINE_PATTERN)]
Text200 = Annotated[str, msgspec.Meta(max_length=200, pattern=LINES_PATTERN)]
Text500 = Annotated[str, msgspec.Meta(max_length=500, pattern=LINES_PATTERN)]
# The pattern bounds the length too (and says what is wrong better than a length would).
Phone = Annotated[str, msgspec.Meta(pattern=PHONE_PATTERN)]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=CLIENT_ID_PATTERN)]
# A web address Lanshou will call (webhooks). Checked where it is used (server/webhooks/destinations.py),
# which answers every problem with one code (bad_webhook_url) that clients can branch on.
Url = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=500,
        description="http(s)://host[:port]/path on the public internet, without user name or password",
    ),
]


def form_id(value: object, largest: int = MAX_ID) -> int | None:
    """An id from a form field, or None when it is not one (ASCII digits, within the column's range)."""
    text = str(value or "")
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if 1 <= number <= largest else None


# -- checking a decoded body against a struct, reporting every problem ------------------------------------

_MSGSPEC_MESSAGE = re.compile(r"^(.*?)(?: - at `\$[^`]*`)?$", re.S)


def _message(exc: msgspec.ValidationError) -> str:
    text = _MSGSPEC_MESSAGE.match(str(exc)).group(1)  # type: ignore[union-attr]
    regex = re.match(r"^Expected `str` matching regex '(.*)'$", text, re.S)
    if regex:
        # msgspec shows the pattern with its backslashes doubled.
        return _PATTERN_MESSAGES.get(regex.group(1).replace("\\\\", "\\"), "has an invalid format")
    if text == "Expected `datetime` with a timezone component":
        return "needs a UTC offset, e.g. 2026-11-25T14:00:00+08:00"
    return text


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> list[Any] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return list(typing.get_args(tp))
    return None


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _check_moment(value: datetime, path: str, errors: list[dict[str, str]]) -> None:
    if value.tzinfo is None:
        return  # msgspec's tz=True decides where an offset is required
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        errors.append({"field": path or "body", "message": "must be between 2000 and 2100"})


def _collect(value: Any, tp: Any, path: str, errors: list[dict[str, str]]) -> None:
    bare = _strip_annotated(tp)
    members = _union_members(bare)
    if members is not None:
        if value is None and type(None) in members:
            return
        nested = [m for m in members if m is not type(None)]
        if len(nested) == 1 and (_is_struct(_strip_annotated(nested[0])) or _list_item(nested[0])):
            _collect(value, nested[0], path, errors)
            return
        chosen = _member_for(value, nested)
        if chosen is not None:
            # `Address | OneLineAddress`: an object is checked field by field against the struct, a
            # string against the string's own bounds.
            _collect(value, chosen, path, errors)
            return
    if _is_struct(bare):
        _collect_struct(value, bare, path, errors)
        return
    item = _list_item(bare)
    if item is not None and isinstance(value, list):
        try:
            # Length bounds of the list itself (Annotated Meta), without its items.
            msgspec.convert([None] * len(value), _relax_items(tp), strict=True)
        except msgspec.ValidationError as exc:
            errors.append({"field": path or "body", "message": _message(exc)})
            return
        for i, element in enumerate(value):
            _collect(element, item, _join(path, i), errors)
        return
    try:
        converted = msgspec.convert(value, tp, strict=True)
    except msgspec.ValidationError as exc:
        choices = _choices(bare)
        message = f"one of: {', '.join(choices)}" if choices and isinstance(value, str) else _message(exc)
        errors.append({"field": path or "body", "message": message})
        return
    if isinstance(converted, datetime):
        _check_moment(converted, path, errors)


def _member_for(value: Any, members: list[Any]) -> Any | None:
    """The one member of a union a JSON object (a struct) or string (a str) is meant for, if exactly one."""
    if isinstance(value, dict):
        fitting = [m for m in members if _is_struct(_strip_annotated(m))]
    elif isinstance(value, str):
        fitting = [m for m in members if _strip_annotated(m) is str]
    else:
        return None
    return fitting[0] if len(fitting) == 1 else None


def _choices(tp: Any) -> list[str] | None:
    """The allowed values of a Literal or an Enum (for "one of: …" messages)."""
    if typing.get_origin(tp) is Literal:
        return [str(v) for v in typing.get_args(tp)]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return [str(m.value) for m in tp]
    return None


def _list_item(tp: Any) -> Any | None:
    bare = _strip_annotated(tp)
    if typing.get_origin(bare) in (list, tuple) and typing.get_args(bare):
        item = typing.get_args(bare)[0]
        inner = _strip_annotated(item)
        # Only recurse where items are structs or constrained scalars; plain lists convert whole.
        return item if _is_struct(inner) or inner is not Any else None
    return None


def _relax_items(tp: Any) -> Any:
    """The list type with its own length bounds but items of any kind."""
    if typing.get_origin(tp) is Annotated:
        _base, *metas = typing.get_args(tp)
        return Annotated[tuple([list[Any], *metas])]  # type: ignore[misc]
    return list[Any]


def _collect_struct(value: Any, cls: type[msgspec.Struct], path: str, errors: list[dict[str, str]]) -> None:
    if not isinstance(value, dict):
        errors.append({"field": path or "body", "message": f"expected an object, got {_json_kind(value)}"})
        return
    fields = msgspec.structs.fields(cls)
    known = {f.encode_name for f in fields}
    if cls.__struct_config__.forbid_unknown_fields:
        for key in value:
            if key not in known:
                errors.append({"field": _join(path, str(key)), "message": "unknown field"})
    for f in fields:
        if f.encode_name not in value:
            if f.required:
                errors.append({"field": _join(path, f.encode_name), "message": "this field is required"})
            continue
        _collect(value[f.encode_name], f.type, _join(path, f.encode_name), errors)


def _json_kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
    }.get(type(value), "a value")


def body_errors(value: Any, tp: Any) -> list[dict[str, str]]:
    """Every problem of a decoded JSON value against the type a handler takes, with its field path."""
    errors: list[dict[str, str]] = []
    _collect(value, tp, "", errors)
    return errors


def decode_json_bytes(body: bytes) -> Any:
    """JSON text to Python values, or a 400 that says what is wrong with it."""
    try:
        return msgspec.json.decode(body)
    except UnicodeDecodeError:
        raise malformed_body("it is not UTF-8 text") from None
    except RecursionError:
        raise malformed_body("it is nested too deeply") from None
    except msgspec.DecodeError as exc:
        raise malformed_body(str(exc)) from None


# -- the hooks --------------------------------------------------------------------------------------------


def _data_type(request: Request[Any, Any, Any]) -> Any | None:
    try:
        field = request.route_handler.parsed_fn_signature.parameters.get("data")
    except AttributeError:
        return None
    return None if field is None else field.annotation


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook for the JSON API: bodies must say they are JSON (415), be JSON (400) and
    fit the handler's struct (422, every bad field listed).

    Litestar decodes a `data` argument as JSON whatever the Content-Type says, and converts leniently
    ("3" for 3); a client that labels JSON text/plain or sends strings for numbers has a bug it should
    hear about now — and text/plain is also what a cross-site page can send without asking.
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        return  # no body at all: the handler decides whether it needs one
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON with Content-Type: application/json (got {media_type or 'none'!r})",
        )
    data_type = _data_type(request)
    if data_type is None:
        return
    body = await request.body()
    if not body.strip():
        return  # Litestar answers a missing required body (errors.py says it in our words)
    request._connection_state.json = check_body(body, data_type)


def check_body(body: bytes, data_type: Any) -> Any:
    """The body decoded strictly into `data_type`, or an ApiError listing every problem.

    The common case costs one typed decode (a few microseconds); only a body that fails it is walked
    field by field (a few hundred) to name every bad field rather than the first. What is returned is
    left where Litestar reads the parsed body (msgspec passes an instance of the target type through
    its own conversion untouched), so the body is decoded once.
    """
    try:
        value = msgspec.json.decode(body, type=data_type, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        value = decode_json_bytes(body)  # 400 when it is not JSON at all
        errors = body_errors(value, data_type)
        if not errors:  # msgspec refused what the walk accepts: never expected, but never a 500
            errors = [{"field": "body", "message": "does not fit this endpoint"}]
        raise field_errors(errors) from None
    errors = []
    _check_moments(value, "", errors)
    if errors:
        raise field_errors(errors)
    return value


def _check_moments(value: Any, path: str, errors: list[dict[str, str]]) -> None:
    """Every datetime inside a decoded struct within the range Lanshou takes (see _check_moment)."""
    if isinstance(value, msgspec.Struct):
        for name, key in zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True):
            field = getattr(value, name)
            # Only what can hold a datetime is walked (and its path built): most fields are plain.
            if isinstance(field, (msgspec.Struct, datetime, list)):
                _check_moments(field, _join(path, key), errors)
    elif isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
        for i, item in enumerate(value):
            _check_moments(item, _join(path, i), errors)
    elif isinstance(value, datetime):
        _check_moment(value, path, errors)


_DECODED_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def check_request_line(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: a path or query string with control characters (raw or %-encoded) is refused
    with 400 before any handler, so none reaches a query (PostgreSQL refuses NUL in text)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            query = scope.get("query_string", b"")
            problem = None
            if _DECODED_CONTROL.search(unquote_to_bytes(raw_path)):
                problem = "path"
            elif _DECODED_CONTROL.search(unquote_to_bytes(query.replace(b"+", b" "))):
                problem = "query"
            if problem is not None:
                body = msgspec.json.encode(
                    {
                        "code": "bad_parameter",
                        "message": f"the {problem} contains control characters",
                        "errors": [{"field": problem, "message": "control characters are not allowed"}],
                    }
                )
                start: Any = {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
                await send(start)
                end: Any = {"type": "http.response.body", "body": body}
                await send(end)
                return
        await app(scope, receive, send)

    return middleware
