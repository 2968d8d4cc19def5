"""The OpenAPI document (/schema/openapi.json) and its docs page (/schema), both served by this server alone.

Litestar generates the paths, parameters and operation ids from the route handlers. The document it
generates is then corrected once, where it would tell a client or a fuzzer something untrue:

- Bodies. Every msgspec struct is described by msgspec's own JSON Schema (`msgspec.json.schema_components`).
  msgspec decodes the requests and encodes the responses, so its schema is the contract by construction:
  unknown fields refused (`additionalProperties: false` for `forbid_unknown_fields`), patterns, exclusive
  bounds, literals as enums, datetimes that need an offset. Litestar's struct plugin drops some of them
  (unknown fields, any bound that is 0).
- Errors. Every error is `{"code", "message", "errors": [{"field", "message"}], ...}` (server/errors.py),
  described once (the `Error` schema and one reusable response per status) and referenced from each
  operation for the statuses it can answer, derived from what the operation takes (below) plus the
  service-level answers listed in `SERVICE_ERRORS`. Litestar's own `{status_code, detail, extra}` 400 is
  removed: the server never sends it.
- Sign-in reads its body itself (JSON or a form), and zone files are GeoJSON checked by their own code, so
  both are described here (with the checks' own bounds); streams are text/event-stream;
  optional bodies are optional; who may call each operation is stated (security schemes and a line in
  the description).

Why here, as the render plugin of /schema/openapi.json: Litestar 2 has no hook to post-process the
document it generates, and this plugin is the one place every reader of the document goes through (the
docs page, partners' client generators, Schemathesis). It sees the app through the request, so the
corrections are derived from the route handlers themselves (guards, path ids, bodies), not from a copy
of the route table. The corrected document is built once per process and cached.
"""

from __future__ import annotations

import copy
import html
import inspect
import re
import typing
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.routes import HTTPRoute

from server.auth.controller import LoginIn
from server.auth.principal import Principal, admin_only, courier_only, dispatcher_only, partner_only
from server.domain.geo import MAX_CODE_LENGTH, MAX_NAME_LENGTH, MAX_PRIORITY
from server.domain.text import LINE_PATTERN, OPTIONAL_LINE_PATTERN
from server.zones.service import OFFER_TTL_S, SLA_MINUTES

SCHEMAS = "#/components/schemas/"
RESPONSES = "#/components/responses/"
DOCS_UI = "/static/vendor/swagger-ui"
DOCS_INIT = "/static/schema-docs.js"
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
_WITH_BODY = ("POST", "PUT", "PATCH")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# -- the error shape ------------------------------------------------------------------------------------

ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {
        "title": "Error",
        "description": (
            "Every error the API answers. Branch on `code`; show `message` to people; `errors` lists "
            "each bad field (a dotted path into the request such as `address.city`, or `body`, `path`, "
            "`query`). Some errors add fields of their own, e.g. `current_status` on a 409 about a pickup."
        ),
        "type": "object",
        "properties": {
            "code": {"type": "string", "examples": ["validation_error", "not_found", "illegal_transition"]},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": SCHEMAS + "FieldError"}},
            "current_status": {"type": "string", "description": "The pickup's status, on a 409 about it."},
            "retry_after": {
                "type": "integer",
                "description": "On a 429: seconds until it may be tried again.",
            },
        },
        "required": ["code", "message", "errors"],
    },
    "FieldError": {
        "title": "FieldError",
        "type": "object",
        "properties": {
            "field": {"type": "string"},
            "message": {"type": "string"},
            "index": {
                "type": ["integer", "null"],
                "description": "In a zone import: the feature the problem is in.",
            },
        },
        "required": ["field", "message"],
    },
}

# One reusable response per status; operations refer to them by name.
ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "The request is malformed: the body is not JSON (`malformed_body`), or a parameter is not "
        "valid (`bad_parameter`, `bad_cursor`, `bad_filter`).",
    ),
    401: ("NotAuthenticated", "Not signed in, or the API key is not valid (`not_authenticated`)."),
    403: (
        "Forbidden",
        "Authenticated but not allowed (`forbidden`): the operation needs another role, or a "
        "cookie-authenticated call sent a form instead of JSON.",
    ),
    404: ("NotFound", "No such resource, or not one the caller may see (`not_found`)."),
    409: (
        "Conflict",
        "The resource is not in a state that allows this (`illegal_transition`, `conflict`, "
        "`not_yours`, `over_capacity`, …), or it exists already; `current_status` says where a pickup stands.",
    ),
    413: ("BodyTooLarge", "The body is larger than the server accepts (`body_too_large`)."),
    415: ("UnsupportedMediaType", "The body is not sent as JSON (`unsupported_media_type`)."),
    422: (
        "ValidationError",
        "The body is JSON but not acceptable; `errors` names every bad field (`validation_error`, …).",
    ),
    429: (
        "RateLimited",
        "Too many failed attempts (`rate_limited`); `Retry-After` says in how many seconds to try again.",
    ),
}

# What services answer beyond what `error_statuses` derives from an operation's shape: looked up in the
# services (ApiError, not_found, field_errors). The Schemathesis test fails on any status the server
# sends that the document does not list, so a new one shows up there.
SERVICE_ERRORS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/users"): {409},  # username taken
    ("POST", "/api/v1/stations"): {409},  # station code taken
    ("POST", "/api/v1/pickups"): {409},  # partner_order_no used before
    ("POST", "/api/v1/pickups/{pickup_id}/chase"): {409},
    ("POST", "/api/v1/pickups/{pickup_id}/cancel"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/accept"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/contacted"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/collect"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/fail"): {409},
    ("POST", "/api/v1/dispatch/assign"): {404, 409},  # unknown pickups or courier; a pickup's state
    ("POST", "/api/v1/dispatch/unassign"): {404, 409},
    ("POST", "/auth/login"): {429},  # the sign-in throttle
}

SECURITY_SCHEMES: dict[str, Any] = {
    "partnerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A partner's API key (`lanshou partner create`), sent as `Authorization: Bearer lsk_…`.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "lanshou_session",
        "description": "The session cookie set by `POST /auth/login` (couriers, dispatchers, admins).",
    },
}
_GUARD_ROLES = (
    (partner_only, ("partner",)),
    (courier_only, ("courier",)),
    (dispatcher_only, ("dispatcher", "admin")),
    (admin_only, ("admin",)),
)
ALL_ROLES = ["partner", "courier", "dispatcher", "admin"]


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 0}}
}


def _response_ref(status: int) -> dict[str, str]:
    return {"$ref": RESPONSES + ERROR_RESPONSES[status][0]}


def error_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (name, description) in ERROR_RESPONSES.items():
        response: dict[str, Any] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": SCHEMAS + "Error"}}},
        }
        if status == 429:
            response["headers"] = _RETRY_AFTER
        out[name] = response
    return out


# -- sign-in: the handler reads its body itself --------------------------------------------------------


_LOGIN_FORM = {
    "type": "object",
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "next": {"type": "string", "description": "A path on this site to go to after signing in."},
    },
    "required": ["username", "password"],
}
_HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}


def _describe_login(operation: dict[str, Any]) -> None:
    how = (
        "JSON (apps) answers with who signed in; a form (browsers) is redirected to the role's page, or "
        "shown the sign-in page again with the problem (400, 401, 429). Either way the session cookie is set."
    )
    operation["description"] = " ".join(filter(None, [how, operation.get("description")]))
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": SCHEMAS + "LoginIn"}},
            "application/x-www-form-urlencoded": {"schema": _LOGIN_FORM},
            "multipart/form-data": {"schema": _LOGIN_FORM},
        },
    }
    responses = operation["responses"]
    responses["200"] = {
        "description": "Signed in (JSON body): the session cookie is set.",
        "content": {"application/json": {"schema": {"$ref": SCHEMAS + "Principal"}}},
    }
    responses["303"] = {
        "description": "Signed in (form): on to the role's page, or to `next`.",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
    for status, what in (
        (400, "The body is malformed"),
        (401, "Wrong username or password"),
        (429, "Too many failed sign-ins for this username or from this address"),
    ):
        response: dict[str, Any] = {
            "description": f"{what}: an error (JSON body) or the sign-in page again (form).",
            "content": {"application/json": {"schema": {"$ref": SCHEMAS + "Error"}}, **_HTML_PAGE},
        }
        if status == 429:
            response["headers"] = _RETRY_AFTER
        responses[str(status)] = response


# -- zones: GeoJSON, checked by server/domain/geo.py and zones/service.py rather than a struct --------------


def _position() -> dict[str, Any]:
    return {
        "type": "array",
        "description": "[longitude, latitude] (an altitude may follow), in the datum of the request; in China",
        "prefixItems": [
            {"type": "number", "minimum": -180, "maximum": 180},
            {"type": "number", "minimum": -90, "maximum": 90},
        ],
        "items": {"type": "number"},
        "minItems": 2,
        "maxItems": 3,
    }


def zone_schemas() -> dict[str, Any]:
    """The zone file as the import checks it (the bounds are the checks' own constants)."""
    ring = {
        "type": "array",
        "description": "A closed ring: the last position repeats the first.",
        "items": _position(),
        "minItems": 4,
    }
    polygon = {"type": "array", "description": "Exterior ring, then holes.", "items": ring, "minItems": 1}
    line = {"type": "string", "pattern": LINE_PATTERN}
    return {
        "ZoneCollection": {
            "title": "ZoneCollection",
            "description": "Zones as a GeoJSON FeatureCollection (RFC 7946). A zone has a polygon, or "
            "only `admin_areas` (then geometry is null). A file with any bad feature changes nothing: "
            "422 lists every problem with the feature's `index`.",
            "type": "object",
            "properties": {
                "type": {"const": "FeatureCollection"},
                "features": {"type": "array", "items": {"$ref": SCHEMAS + "ZoneFeature"}},
            },
            "required": ["type", "features"],
        },
        "ZoneFeature": {
            "title": "ZoneFeature",
            "type": "object",
            "properties": {
                "type": {"const": "Feature"},
                "geometry": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {"type": {"const": "Polygon"}, "coordinates": polygon},
                            "required": ["type", "coordinates"],
                        },
                        {
                            "type": "object",
                            "properties": {
                                "type": {"const": "MultiPolygon"},
                                "coordinates": {"type": "array", "items": polygon, "minItems": 1},
                            },
                            "required": ["type", "coordinates"],
                        },
                        {"type": "null"},
                    ]
                },
                "properties": {"$ref": SCHEMAS + "ZoneProperties"},
            },
            "required": ["type", "properties"],
        },
        "ZoneProperties": {
            "title": "ZoneProperties",
            "type": "object",
            "properties": {
                "code": {**line, "maxLength": MAX_CODE_LENGTH, "description": "Unique; the zone's key."},
                "name": {"type": "string", "pattern": OPTIONAL_LINE_PATTERN, "maxLength": MAX_NAME_LENGTH},
                "station": {**line, "maxLength": MAX_CODE_LENGTH, "description": "The station's code."},
                "priority": {
                    "type": ["integer", "null"],
                    "minimum": -MAX_PRIORITY,
                    "maximum": MAX_PRIORITY,
                    "description": "Where zones overlap, the higher priority wins.",
                },
                "admin_areas": {
                    "type": ["array", "null"],
                    "items": {**line, "maxLength": MAX_NAME_LENGTH},
                    "description": "Names of streets or districts matched against addresses without coordinates.",
                },
                "dispatch_mode": {"enum": ["grab", "assign"]},
                "offer_ttl_s": {"type": "integer", "minimum": OFFER_TTL_S[0], "maximum": OFFER_TTL_S[1]},
                "sla_minutes": {
                    "type": "number",
                    "exclusiveMinimum": SLA_MINUTES[0],
                    "maximum": SLA_MINUTES[1],
                },
            },
            "required": ["code", "name"],
        },
    }


# Operations whose bodies are not structs: (method, path) -> (request schema, 200 response schema).
ZONE_FILE = {"$ref": SCHEMAS + "ZoneCollection"}
UNSTRUCTURED_BODIES: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    ("PUT", "/api/v1/zones"): (ZONE_FILE, None),
    ("GET", "/api/v1/zones"): (None, ZONE_FILE),
}


def _describe_unstructured_body(method: str, path: str, operation: dict[str, Any]) -> None:
    request, response = UNSTRUCTURED_BODIES.get((method, path), (None, None))
    if request is not None and "requestBody" in operation:
        operation["requestBody"]["content"]["application/json"]["schema"] = request
    if response is not None:
        operation["responses"]["200"]["content"]["application/json"]["schema"] = response


# -- finding the handlers and the structs they take and give -------------------------------------------


def _operations(app: Any) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    """(path as in the document, METHOD, handler) for every operation in the document."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if handler.resolve_include_in_schema():
                yield route.path_format or "/", method.upper(), handler


def _structs_in(annotation: Any, found: set[type[msgspec.Struct]]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        found.add(annotation)
        return
    for arg in typing.get_args(annotation):
        _structs_in(arg, found)


def _any_json(cls: type) -> dict[str, Any]:
    if cls is object:  # `dict[str, object]`: any JSON value
        return {"description": "any JSON value"}
    raise NotImplementedError


def struct_schemas(handlers: Sequence[HTTPRouteHandler]) -> dict[str, Any]:
    """msgspec's JSON Schema for every struct the handlers take or give, nested ones included."""
    found: set[type[msgspec.Struct]] = {LoginIn, Principal}  # sign-in reads and answers these itself
    for handler in handlers:
        _structs_in(handler.parsed_fn_signature.return_type.annotation, found)
        if handler.parsed_data_field is not None:
            _structs_in(handler.parsed_data_field.annotation, found)
    _, components = msgspec.json.schema_components(
        sorted(found, key=lambda cls: cls.__name__),
        ref_template=SCHEMAS + "{name}",
        schema_hook=_any_json,
    )
    for schema in components.values():
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
    return components


# -- statuses ----------------------------------------------------------------------------------------------


def _is_public(path: str, public_paths: Sequence[str]) -> bool:
    return any(re.match(pattern, path) for pattern in public_paths)


def error_statuses(
    method: str, path: str, operation: dict[str, Any], handler: HTTPRouteHandler, public_paths: Sequence[str]
) -> set[int]:
    """The error statuses an operation can answer, from what it takes and who may call it."""
    statuses = set(SERVICE_ERRORS.get((method, path), set()))
    where = {parameter["in"] for parameter in operation.get("parameters", [])}
    if not _is_public(path, public_paths):
        statuses.add(401)
        # A role guard refuses other roles; the auth middleware refuses cookie-authenticated writes
        # that send a form (what a cross-site page could send).
        if handler.resolve_guards() or method in _UNSAFE:
            statuses.add(403)
    if "path" in where:
        statuses |= {400, 404}  # a path id that is out of range / names nothing the caller may see
    if where & {"query", "header"}:
        statuses.add(400)
    if "requestBody" in operation:
        statuses |= {400, 413, 422}
    if method in _WITH_BODY and path.startswith("/api/"):
        statuses.add(415)  # the JSON API's before_request hook refuses any body not labelled JSON
    return statuses


def _who_may_call(handler: HTTPRouteHandler, path: str, public_paths: Sequence[str]) -> list[str]:
    """The roles that may call an operation ([] when anyone may), from its role guards."""
    if _is_public(path, public_paths):
        return []
    # The guards as declared on the handler and the layers above it (resolve_guards() wraps them).
    guards = [guard for layer in handler.ownership_layers for guard in (layer.guards or [])]
    roles = [role for guard, allowed in _GUARD_ROLES if guard in guards for role in allowed]
    return sorted(set(roles), key=ALL_ROLES.index) if roles else ALL_ROLES


_BOUNDS = (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"), ("lt", "exclusiveMaximum"))


def _exact_parameter_bounds(operation: dict[str, Any], handler: HTTPRouteHandler) -> None:
    """Litestar writes a parameter's integer bounds as floats: `le=2**63 - 1` becomes 2**63, one more
    than the server accepts. Take them exactly from the handler's `Parameter(ge=…, le=…)`."""
    fields = handler.parsed_fn_signature.parameters
    for parameter in operation.get("parameters", []):
        field = fields.get(parameter["name"])
        definition = field.kwarg_definition if field is not None else None
        for attr, key in _BOUNDS:
            value = getattr(definition, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                parameter["schema"][key] = value


def _describe_access(operation: dict[str, Any], roles: list[str]) -> None:
    """`security` (for client generators and the docs page's Authorize button), `x-roles` (for
    machines: the Schemathesis test calls each operation as a role that may) and a line for people."""
    operation["x-roles"] = roles
    if not roles:
        operation["security"], who = [], "Anyone may call this."
    elif roles == ["partner"]:
        operation["security"], who = [{"partnerKey": []}], "For partners (API key)."
    elif "partner" not in roles:
        operation["security"] = [{"session": []}]
        who = f"For a signed-in {' or '.join(roles)} (session cookie)."
    else:
        operation["security"] = [{"partnerKey": []}, {"session": []}]
        who = "For partners (API key) and signed-in users (session cookie)."
    operation["description"] = " ".join(filter(None, [operation.get("description"), who]))


def _query_parameters_without_null(operation: dict[str, Any]) -> None:
    """`status: str | None = None` becomes `oneOf: [string, null]`; a query string cannot say null
    (leaving the parameter out is how), so the parameter is just its type."""
    for parameter in operation.get("parameters", []):
        variants = parameter.get("schema", {}).get("oneOf")
        if parameter["in"] in ("query", "header") and variants and {"type": "null"} in variants:
            rest = [v for v in variants if v != {"type": "null"}]
            if len(rest) == 1:
                schema = {k: v for k, v in parameter["schema"].items() if k != "oneOf"}
                parameter["schema"] = {**rest[0], **schema}


def _returns_event_stream(handler: HTTPRouteHandler) -> bool:
    return getattr(handler.parsed_fn_signature.return_type.annotation, "__name__", "") == "ServerSentEvent"


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def truthful_document(app: Any, generated: dict[str, Any], public_paths: Sequence[str]) -> dict[str, Any]:
    """Litestar's generated document, corrected as the module docstring says (a new dict)."""
    document = copy.deepcopy(generated)
    operations = list(_operations(app))
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(struct_schemas([handler for _, _, handler in operations]))
    schemas.update(ERROR_SCHEMAS)
    schemas.update(zone_schemas())
    components["responses"] = error_responses()
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, method, handler in operations:
        operation = document["paths"][path][method.lower()]
        responses = operation.setdefault("responses", {})
        responses.pop("400", None)  # Litestar's ValidationException shape; ours is added below
        if path == "/auth/login" and method == "POST":
            _describe_login(operation)
        _describe_unstructured_body(method, path, operation)
        if _returns_event_stream(handler) and "200" in responses:
            responses["200"]["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
        data = handler.parsed_data_field
        if data is not None and "requestBody" in operation:
            # `data: ActionIn | None = None`: the body may be left out.
            operation["requestBody"]["required"] = not (data.is_optional or data.has_default)
        for status in sorted(error_statuses(method, path, operation, handler, public_paths)):
            responses.setdefault(str(status), _response_ref(status))
        operation["responses"] = dict(sorted(responses.items()))
        _query_parameters_without_null(operation)
        _exact_parameter_bounds(operation, handler)
        _describe_access(operation, _who_may_call(handler, path, public_paths))
    missing = sorted({ref for ref in _refs(document) if not _resolves(document, ref)})
    if missing:
        raise RuntimeError(f"the OpenAPI document refers to what it does not define: {missing}")
    return document


def _resolves(document: dict[str, Any], ref: str) -> bool:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# -- serving ---------------------------------------------------------------------------------------------


class TruthfulJson(JsonRenderPlugin):
    """/schema/openapi.json: the corrected document, built on first request and kept."""

    def __init__(self, public_paths: Sequence[str]) -> None:
        super().__init__()
        self.public_paths = list(public_paths)
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            document = truthful_document(request.app, openapi_schema, self.public_paths)
            self._rendered = self.render_json(request, document)
        return self._rendered


class DocsPage(OpenAPIRenderPlugin):
    """/schema: Swagger UI from the vendored files, started by a static script (no inline script or
    style: the page runs under `script-src 'self'`). It reads the document's URL from a data attribute."""

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        url = html.escape(self.get_openapi_json_route(request))
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{DOCS_UI}/swagger-ui.css">
<script src="{DOCS_UI}/swagger-ui-bundle.js" defer></script>
<script src="{DOCS_INIT}" defer></script>
</head>
<body>
<div id="swagger-ui" data-openapi-url="{url}"></div>
</body>
</html>
""".encode()


def openapi_config(public_paths: Sequence[str]) -> OpenAPIConfig:
    """The document at /schema/openapi.json and the docs page at /schema (no YAML, no other viewers)."""
    return OpenAPIConfig(
        title="Lanshou API",
        version="1",
        description=(
            "Doorstep parcel pickup dispatch. Partners use an API key (`Authorization: Bearer lsk_…`); "
            "couriers, dispatchers and admins sign in (`POST /auth/login`) and send the session cookie. "
            "Every error has the shape of `Error`."
        ),
        path="/schema",
        render_plugins=[DocsPage(), TruthfulJson(public_paths)],
    )
