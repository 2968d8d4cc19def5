"""The JSON API's error messages in the caller's language: English by default, Chinese on request.

Raise sites write their messages in English (the text partners' systems have always read, kept byte for
byte). The error handlers (server/errors.py, and the partner middleware's send_error) hand the finished
body to `localize_body`, which, for a caller preferring Chinese, maps each English text to a catalogue key
by the patterns in RULES and fills the key's {placeholders} from the pattern's named groups, so values
(field names, limits, the admin's reason) carry over unchanged. A text no pattern matches stays English:
never an empty or key-looking message. `code` and `field` are never touched.

A group named `sub_…` is itself a message (an example list, a hint) and is localized the same way; an
empty one stays empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from server.i18n import translate

ZH = "zh-CN"
EN = "en"


def api_language(query_lang: str | None, accept_language: str | None) -> str:
    """zh-CN when ?lang= asks for Chinese or Accept-Language prefers Chinese to English; else en.

    Unlike the pages (server/i18n.pick_language, Chinese by default) the API answers English unless
    asked: partners' systems send no Accept-Language, or a library's default.
    """
    if query_lang:
        lowered = query_lang.strip().lower()
        if lowered.startswith("zh"):
            return ZH
        if lowered.startswith("en"):
            return EN
    best_q, best = 0.0, EN
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag.startswith(("zh", "en")):
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # The first listed wins a tie (the order a browser writes its preferences in).
        if q > best_q or (position == 0 and q == best_q):
            best_q, best = q, (ZH if tag.startswith("zh") else EN)
    return best if best_q > 0 else EN


def scope_language(scope: Mapping[str, Any]) -> str:
    """api_language from an ASGI scope (for middleware answering before Litestar makes a Request)."""
    accept = None
    for name, value in scope.get("headers") or ():
        if name.lower() == b"accept-language":
            accept = value.decode("latin-1")
            break
    lang = None
    for pair in (scope.get("query_string") or b"").decode("latin-1").split("&"):
        name, _, value = pair.partition("=")
        if name == "lang":
            lang = value
            break
    return api_language(lang, accept)


# (English text as a regex with named groups, catalogue key with the same {placeholders}); first match wins.
_RULES: list[tuple[str, str]] = [
    # -- generic, by status (Litestar's default details and our own) --
    (r"Bad Request", "api.error.bad_request"),
    (r"Unauthorized", "api.error.not_authenticated"),
    (r"Forbidden", "api.error.forbidden"),
    (r"Not Found", "api.error.not_found"),
    (r"Method Not Allowed", "api.error.method_not_allowed"),
    (r"Conflict", "api.error.conflict"),
    (r"Request Entity Too Large|Content Too Large", "api.error.body_too_large"),
    (r"Unsupported Media Type", "api.error.unsupported_media_type"),
    (r"Unprocessable Entity|Unprocessable Content", "api.error.validation_error"),
    (r"Too Many Requests", "api.error.rate_limited"),
    (r"something went wrong on our side; it has been logged", "api.error.internal"),
    (r"the API key is not valid or has been revoked", "api.error.bad_api_key"),
    (r"sign in first \(POST /auth/login\) or send an API key", "api.error.sign_in_or_key"),
    (r"sign in first", "api.error.sign_in"),
    (r"wrong username or password", "api.error.wrong_password"),
    (r"cookie-authenticated API calls must send JSON", "api.error.cookie_json"),
    (r"this needs the role (?P<roles>.+)", "api.error.needs_role"),
    (r"(?P<sub_what>.+) not found", "api.error.thing_not_found"),
    (r"pickup", "api.error.thing.pickup"),
    (r"courier", "api.error.thing.courier"),
    (r"photo", "api.error.thing.photo"),
    (r"delivery", "api.error.thing.delivery"),
    (r"stop-ship area", "api.error.thing.stop_ship_area"),
    # -- the body itself --
    (r"the request body is not valid JSON: (?P<sub_detail>.*)", "api.error.malformed_body"),
    (r"it is not UTF-8 text", "api.error.not_utf8"),
    (r"it is nested too deeply", "api.error.nested_too_deeply"),
    (r"Input data was truncated", "api.error.truncated"),
    (r"JSON is malformed: .*\(byte (?P<byte>\d+)\)", "api.error.json_malformed_at"),
    (r"the request is not UTF-8 text", "api.error.request_not_utf8"),
    (r"the request body is empty: send a JSON object", "api.error.body_empty"),
    (r"the body is empty", "api.error.body_empty_short"),
    (r"the request body is larger than the (?P<limit>\d+) bytes allowed", "api.error.body_larger_than"),
    (r"the request body is too large", "api.error.body_too_large"),
    (
        r"send the body as JSON with Content-Type: application/json \(got (?P<got>.*)\)",
        "api.error.send_json",
    ),
    (r"does not fit this endpoint", "api.error.does_not_fit"),
    # -- field shapes (msgspec and server/validation.py) --
    (r"this field is required", "api.error.required"),
    (r"unknown field", "api.error.unknown_field"),
    (r"Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`", "api.error.wrong_type"),
    (r"expected an object, got (?P<sub_kind>.+)", "api.error.expected_object"),
    (r"null", "api.error.kind.null"),
    (r"a boolean", "api.error.kind.boolean"),
    (r"a number", "api.error.kind.number"),
    (r"a string", "api.error.kind.string"),
    (r"an array", "api.error.kind.array"),
    (r"a value", "api.error.kind.value"),
    (r"Expected `(?:str|array|object)` of length <= (?P<limit>\d+)", "api.error.too_long"),
    (r"Expected `(?:str|array|object)` of length >= (?P<limit>\d+)", "api.error.too_short"),
    (r"Expected `(?:int|float)` >= (?P<limit>\S+)", "api.error.at_least"),
    (r"Expected `(?:int|float)` > (?P<limit>\S+)", "api.error.greater_than"),
    (r"Expected `(?:int|float)` <= (?P<limit>\S+)", "api.error.at_most"),
    (r"Expected `(?:int|float)` < (?P<limit>\S+)", "api.error.less_than"),
    (r"Expected `str` matching regex (?P<pattern>.+)", "api.error.pattern_regex"),
    (r"has an invalid format", "api.error.invalid_format"),
    (r"one of: (?P<choices>.*)", "api.error.one_of"),
    (r"Invalid enum value (?P<value>.*)", "api.error.invalid_enum"),
    (r"Invalid RFC3339 encoded datetime", "api.error.invalid_datetime"),
    (r"needs a UTC offset, e\.g\. (?P<example>\S+)", "api.error.needs_offset"),
    (r"must be between 2000 and 2100", "api.error.between_years"),
    (r"must not be blank or contain control characters", "api.error.pattern_line"),
    (r"must not contain control characters", "api.error.pattern_optional_line"),
    (r"must not contain control characters other than line breaks", "api.error.pattern_lines"),
    (r"not a mainland-China mobile number \(11 digits, 1\[3-9\]…, optionally \+86\)", "api.error.phone"),
    (r"not a mainland-China mobile number \(11 digits, 1\[3-9\]…\)", "api.error.phone"),
    (r"1 to 64 letters, digits or \. _ : -", "api.error.pattern_client_id"),
    (r"the (?P<sub_part>path|query) contains control characters", "api.error.control_in_request_line"),
    (r"control characters are not allowed", "api.error.control_not_allowed"),
    (r"path", "api.error.part.path"),
    (r"query", "api.error.part.query"),
    (r"the cursor is not one this API gave out", "api.error.bad_cursor"),
    # -- pickup windows (server/pickups/service.py check_window) --
    (r"times need a UTC offset, e\.g\. (?P<example>\S+)", "api.error.window_offset"),
    (r"the window must end after it starts", "api.error.window_order"),
    (r"the window is already over", "api.error.window_over"),
    (r"the window starts more than (?P<days>\d+) days ahead", "api.error.window_ahead"),
    # -- points (server/domain/geo.py, server/intake/controller.py) --
    (r"give both lat and lng, or neither", "api.error.lat_lng_both"),
    (r"not a point on Earth once converted from (?P<datum>\S+)", "api.error.not_on_earth"),
    (r"this point is outside China, where Lanshou works", "api.error.outside_china"),
    (r"position (?P<shown>\[.*?\]) is outside China(?P<sub_hint>.*)", "api.error.position_outside_china"),
    (
        r"position (?P<shown>\[.*?\]): (?P<sub_axis>longitude|latitude) (?P<value>\S+) is outside "
        r"(?P<range>\[.*?\])(?P<sub_hint>.*)",
        "api.error.position_out_of_range",
    ),
    (r"longitude", "api.error.axis.longitude"),
    (r"latitude", "api.error.axis.latitude"),
    (
        r"; it looks like \[latitude, longitude\] - GeoJSON positions are \[longitude, latitude\]",
        "api.error.looks_swapped",
    ),
    # -- divisions (server/domain/divisions.py check_division) --
    (r" \(e\.g\. (?P<names>.*)\)", "api.error.examples"),
    (
        r"unknown province (?P<province>.*): use its full name, e\.g\. 湖南省, 北京市",
        "api.error.unknown_province",
    ),
    (r"(?P<province>\S+) has no city (?P<city>'.*?'|\".*?\")(?P<sub_examples>.*)", "api.error.no_city"),
    (
        r"(?P<place>\S+) has no district (?P<district>'.*?'|\".*?\")(?P<sub_examples>.*)",
        "api.error.no_district",
    ),
    (
        r"(?P<district>\S+) has no street or town (?P<street>'.*?'|\".*?\")(?P<sub_examples>.*)",
        "api.error.no_street",
    ),
    # -- one-line addresses (server/domain/oneline.py problems) --
    (
        r"(?P<district>\S+) is the name of districts in several cities \((?P<places>.*)\): "
        r"name the city \(or province\) before it",
        "api.error.oneline_ambiguous",
    ),
    (
        r"(?P<district>\S+) is no longer a district in GB/T 2260 \(merged or renamed\): "
        r"use its current name(?P<sub_examples>.*)",
        "api.error.oneline_renamed",
    ),
    (
        r"nothing follows the district or street: add the road, building and door number",
        "api.error.oneline_detail",
    ),
    (
        r"no (?P<sub_part>\w+) found in the one-line address: name it \(e\.g\. 湖南省长沙市开福区…\)",
        "api.error.oneline_missing",
    ),
    (r"province", "api.error.part.province"),
    (r"city", "api.error.part.city"),
    (r"district", "api.error.part.district"),
    (r"street", "api.error.part.street"),
    # -- refusals of a pickup --
    (
        r"no pickups here for now: stop-ship area (?P<name>'.*?'|\".*?\"): (?P<reason>.*)",
        "api.error.stop_ship",
    ),
    (r"a batch holds 1 to (?P<max>\d+) pickups, this one (?P<count>\d+)", "api.error.batch_size"),
    (
        r"pickups with these order numbers are being created meanwhile; retry",
        "api.error.batch_conflict",
    ),
    (r"a pickup with partner_order_no (?P<order>.*) exists already", "api.error.duplicate_order"),
    (r"the pickup changed meanwhile; try again", "api.error.changed_meanwhile"),
    (r"cannot (?P<sub_action>.+?) a pickup that is (?P<status>\w+)", "api.error.illegal_transition"),
    (r"cancel", "api.error.action.cancel"),
    (r"reschedule", "api.error.action.reschedule"),
    (r"chase", "api.error.action.chase"),
    (r"rate", "api.error.action.rate"),
    (r"change the address of", "api.error.action.change_address"),
    (r"complain about", "api.error.action.complain"),
    (r"this pickup has been rated", "api.error.already_rated"),
    (
        r"the courier was alerted less than (?P<minutes>\d+) minutes ago",
        "api.error.chase_too_soon",
    ),
    # -- rate limits and idempotency keys (server/partnerapi, server/auth) --
    (
        r"more than (?P<limit>\d+) requests in (?P<window>\d+) s with this API key; "
        r"retry after the seconds in Retry-After",
        "api.error.rate_limited_key",
    ),
    (
        r"too many failed sign-ins for this username or from this address; try again in (?P<seconds>\d+) s",
        "api.error.sign_in_throttled",
    ),
    (
        r"Idempotency-Key must be 1 to 255 printable ASCII characters without spaces \(a UUID is a good choice\)",
        "api.error.bad_idempotency_key",
    ),
    (
        r"Idempotency-Key (?P<idem_key>.*) was first used for (?P<first>.+?) with another body; "
        r"use a new key for a new request",
        "api.error.idempotency_reused_body",
    ),
    (
        r"Idempotency-Key (?P<idem_key>.*) was first used for (?P<first>.+?); use a new key for a new request",
        "api.error.idempotency_reused",
    ),
    (
        r"a request with Idempotency-Key (?P<idem_key>.*) is still being processed; retry shortly",
        "api.error.idempotency_in_use",
    ),
]
RULES: list[tuple[re.Pattern[str], str]] = [(re.compile(pattern, re.S), key) for pattern, key in _RULES]
# Every key RULES may produce (tests/unit/test_i18n.py counts them as used).
KEYS = frozenset(key for _, key in RULES) | {"api.error.invalid_request"}
_INVALID_REQUEST = "invalid request: "


def localize(text: str, lang: str) -> str:
    """The English message `text` in `lang`; unchanged when `lang` is English or no rule knows it."""
    if lang == EN or not text:
        return text
    for pattern, key in RULES:
        match = pattern.fullmatch(text)
        if match:
            values = {
                name: (localize(value, lang) if name.startswith("sub_") else value)
                for name, value in match.groupdict(default="").items()
            }
            try:
                return translate(key, lang, **values)
            except (KeyError, IndexError, ValueError):  # a catalogue text with a stray brace: stay English
                return text
    return text


def _summary(errors: list[dict[str, Any]], lang: str) -> str:
    separator, colon = ("；", "：") if lang == ZH else ("; ", ": ")
    return separator.join(f"{e.get('field')}{colon}{e.get('message')}" for e in errors)


def localize_body(body: dict[str, Any], lang: str) -> dict[str, Any]:
    """An error body {"code", "message", "errors": [...]} with its messages in `lang` (a new dict)."""
    if lang == EN:
        return body
    old = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    errors = [
        {**e, "message": localize(e["message"], lang)} if isinstance(e.get("message"), str) else e
        for e in old
    ]
    message = body.get("message")
    if isinstance(message, str):
        if old and message == _INVALID_REQUEST + _summary(old, EN):
            # field_errors' summary of the field errors: rebuilt from their translations.
            message = translate("api.error.invalid_request", lang, summary=_summary(errors, lang))
        else:
            message = localize(message, lang)
    return {**body, "message": message, "errors": errors}
