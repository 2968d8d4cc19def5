"""One error shape for the whole JSON API: {"code", "message", "errors": [{"field", "message"}], ...}.

Clients (partners' systems, the courier app) branch on `code`; people read `message`; `field` is a dotted
path into the request (`address.city`, `features[2].geometry`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from server.api_language import api_language, localize_body

log = logging.getLogger("lanshou")

_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}
_MSGSPEC_PATH = re.compile(r" - at `\$\.?(.*)`$")
_MSGSPEC_KEY = re.compile(r"^Object (missing required|contains unknown) field `(.+)`$")


class ApiError(HTTPException):
    """An error the API reports as is: a status, a machine code, a message, optional field errors."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=message, status_code=status_code, headers=headers)
        self.code = code
        self.message = message
        self.errors = (
            errors if errors is not None else ([{"field": field, "message": message}] if field else [])
        )
        self.extra_fields = extra


def field_errors(errors: list[dict[str, str]]) -> ApiError:
    """422 for a list of {"field", "message"} found by our own checks."""
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ApiError(422, "validation_error", f"invalid request: {summary}", errors=errors)


def not_found(what: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found", field=field)


def malformed_body(detail: str) -> ApiError:
    """400 for a body that is not JSON at all (empty, truncated, not JSON)."""
    return ApiError(400, "malformed_body", f"the request body is not valid JSON: {detail}", field="body")


def _body(code: str, message: str, errors: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors, **extra}


def _field_error(path: str, message: str) -> dict[str, str]:
    """One {"field", "message"} from a msgspec message and the path it was found at ("" = the root).

    msgspec reports a missing or unknown key at the object that holds it ("… field `city`" at
    `address`); the client needs the key itself (`address.city`).
    """
    match = _MSGSPEC_KEY.match(message)
    if match:
        problem, name = match.groups()
        path = f"{path}.{name}" if path else name
        message = "this field is required" if problem == "missing required" else "unknown field"
    return {"field": path or "body", "message": message}


def msgspec_field_errors(exc: msgspec.ValidationError) -> ApiError:
    """422 for a body msgspec refused while decoding it ourselves (outside Litestar's `data`)."""
    message = str(exc)
    match = _MSGSPEC_PATH.search(message)
    path = match.group(1) if match else ""
    return field_errors([_field_error(path, message[: match.start()] if match else message)])


def _validation_errors(exc: ValidationException) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        key = str(item.get("key") or "")
        match = _MSGSPEC_PATH.search(message)
        if match:
            # msgspec names the place in the body: "Expected `int`, got `str` - at `$.address.lat`"
            key = match.group(1) or key
            message = message[: match.start()]
        if item.get("source") == "body":
            # Litestar calls the body's root `data` and strips it from deeper paths.
            out.append(_field_error("" if key == "data" else key.removeprefix("data."), message))
        else:
            out.append({"field": key or str(item.get("source") or "body"), "message": message})
    return out


def _is_missing_body(exc: ValidationException) -> bool:
    # Litestar leaves `data` out of the handler's arguments when the body is empty; the signature
    # check then fails with a bare KeyError('data'), whose text is "'data'".
    extra = exc.extra if isinstance(exc.extra, list) else []
    return any(isinstance(e, dict) and e.get("key") == "data" and e.get("message") == "'data'" for e in extra)


def _body_limit(request: Request[Any, Any, Any]) -> int | None:
    try:
        return request.route_handler.resolve_request_max_body_size()
    except Exception:  # no route (e.g. raised before routing): the message just omits the limit
        return None


def _error_content(request: Request[Any, Any, Any], exc: HTTPException) -> tuple[int, dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, ApiError):
        return status, _body(exc.code, exc.message, exc.errors, **exc.extra_fields)
    if isinstance(exc, ValidationException):
        if _is_missing_body(exc):
            return 400, _body(
                "malformed_body",
                "the request body is empty: send a JSON object",
                [{"field": "body", "message": "the body is empty"}],
            )
        errors = _validation_errors(exc) or [{"field": "body", "message": str(exc.detail)}]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        sources = {item.get("source") for item in exc.extra if isinstance(item, dict)} if exc.extra else set()
        if sources and "body" not in sources:
            # Query and path parameters are part of the request line: a bad one is a bad request.
            return 400, _body("bad_parameter", f"invalid request: {summary}", errors)
        # The body was JSON but not what this endpoint takes: unprocessable content.
        return 422, _body("validation_error", f"invalid request: {summary}", errors)
    if isinstance(exc.__cause__, SerializationException):
        # Litestar turns a body msgspec could not decode into a bare 400 ClientException.
        error = malformed_body(str(exc.__cause__))
        return error.status_code, _body(error.code, error.message, error.errors)
    if status == 413:
        limit = _body_limit(request)
        message = (
            f"the request body is larger than the {limit} bytes allowed"
            if limit
            else "the request body is too large"
        )
        return status, _body("body_too_large", message, [{"field": "body", "message": message}])
    code = _STATUS_CODES.get(status, "error")
    if isinstance(exc, NotAuthorizedException):
        code = "not_authenticated"
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    return status, _body(code, str(exc.detail), [])


def _language(request: Request[Any, Any, Any]) -> str:
    """The caller's language for error messages (server/api_language.py): English unless asked."""
    try:
        query_lang = request.query_params.get("lang")
    except Exception:  # a query string Litestar cannot parse: the header alone decides
        query_lang = None
    return api_language(query_lang, request.headers.get("accept-language"))


def _localized(
    request: Request[Any, Any, Any],
    status: int,
    content: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """The error response with its messages in the caller's language, varying by Accept-Language."""
    vary = ", ".join(v for v in ((headers or {}).get("Vary"), "Accept-Language") if v)
    return Response(
        content=localize_body(content, _language(request)),
        status_code=status,
        media_type=MediaType.JSON,
        headers={**(headers or {}), "Vary": vary},
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status, content = _error_content(request, exc)
    return _localized(request, status, content, exc.headers)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    content = _body("internal_error", "something went wrong on our side; it has been logged", [])
    return _localized(request, HTTP_500_INTERNAL_SERVER_ERROR, content)


def handle_undecodable(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    """Text the client sent that is not UTF-8 (a form field, a multipart part): the client's mistake.

    JSON bodies are decoded in one place (server/validation.py) and answered there; Litestar's form
    parser lets the error through from wherever it decodes a field.
    """
    error = malformed_body("it is not UTF-8 text")
    return _localized(request, 400, _body(error.code, "the request is not UTF-8 text", error.errors))


EXCEPTION_HANDLERS = {
    HTTPException: handle_http_exception,
    UnicodeDecodeError: handle_undecodable,
    Exception: handle_unexpected,
}
