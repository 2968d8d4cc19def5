"""One error shape for the whole JSON API: {"code", "message", "errors": [{"field", "message"}], ...}.

Clients (partners' systems, the courier app) branch on `code`; people read `message`; `field` is a dotted
path into the request (`address.city`, `features[2].geometry`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

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


class ApiError(HTTPException):
    """An error the API reports as is: a status, a machine code, a message, optional field errors."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=message, status_code=status_code)
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


def _body(code: str, message: str, errors: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors, **extra}


def _validation_errors(exc: ValidationException) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid value"))
        key = item.get("key")
        match = _MSGSPEC_PATH.search(message)
        if match:
            # msgspec names the place in the body: "Expected `int`, got `str` - at `$.address.lat`"
            key = match.group(1) or key
            message = message[: match.start()]
        source = item.get("source")
        field = str(key) if key else (str(source) if source else "body")
        out.append({"field": field.replace("data.", "", 1), "message": message})
    return out


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ApiError):
        content = _body(exc.code, exc.message, exc.errors, **exc.extra_fields)
    elif isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        detail = str(exc.detail)
        if "JSON" in detail or "decode" in detail.lower() or "malformed" in detail.lower():
            content = _body("malformed_body", f"the request body is not valid JSON: {detail}", [])
        elif errors:
            summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            content = _body("validation_error", f"invalid request: {summary}", errors)
            status = 422 if any(e["field"] not in ("body",) for e in errors) else 400
        else:
            content = _body("bad_request", detail, [])
    else:
        code = _STATUS_CODES.get(status, "error")
        if isinstance(exc, NotAuthorizedException):
            code = "not_authenticated"
        elif isinstance(exc, PermissionDeniedException):
            code = "forbidden"
        content = _body(code, str(exc.detail), [])
    return Response(content=content, status_code=status, media_type=MediaType.JSON, headers=exc.headers)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        content=_body("internal_error", "something went wrong on our side; it has been logged", []),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type=MediaType.JSON,
    )


EXCEPTION_HANDLERS = {HTTPException: handle_http_exception, Exception: handle_unexpected}
