"""Litestar's generated OpenAPI document, corrected (see the package docstring): struct schemas from
msgspec, our errors per operation derived from its route handler, who may call it."""

from __future__ import annotations

import copy
import inspect
import re
import typing
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from server.auth.controller import LoginIn
from server.auth.principal import Principal
from server.openapi.schemas import (
    ERROR_SCHEMAS,
    SCHEMAS,
    SECURITY_SCHEMES,
    describe_login,
    describe_photo_bodies,
    describe_unstructured_body,
    error_responses,
    response_ref,
    zone_schemas,
)

_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
_WITH_BODY = ("POST", "PUT", "PATCH")

# What services answer beyond what `error_statuses` derives from an operation's shape: looked up in the
# services (ApiError, not_found, field_errors). The Schemathesis test fails on any status the server
# sends that the document does not list, so a new one shows up there.
SERVICE_ERRORS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/users"): {409},  # username taken
    ("POST", "/api/v1/stations"): {409},  # station code taken
    ("POST", "/api/v1/pickups"): {409},  # partner_order_no used before
    ("POST", "/api/v1/pickups/{pickup_id}/chase"): {409},
    ("POST", "/api/v1/pickups/{pickup_id}/cancel"): {409},
    ("POST", "/api/v1/pickups/{pickup_id}/reschedule"): {409},  # not open (current_status says why)
    ("POST", "/api/v1/pickups/{pickup_id}/address"): {409},
    ("POST", "/api/v1/pickups/{pickup_id}/rating"): {409},  # not collected, or rated already
    ("POST", "/api/v1/pickups/{pickup_id}/complaint"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/accept"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/decline"): {409},  # no open offer
    ("POST", "/api/v1/courier/pickups/{pickup_id}/seen"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/arrived"): {409},  # not held
    ("POST", "/api/v1/courier/pickups/{pickup_id}/contacted"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/collect"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/fail"): {409},
    ("POST", "/api/v1/courier/pickups/{pickup_id}/photos"): {409},  # the pickup is no longer held
    ("POST", "/api/v1/dispatch/assign"): {404, 409},  # unknown pickups or courier; a pickup's state
    ("POST", "/api/v1/dispatch/unassign"): {404, 409},
    ("POST", "/auth/login"): {429},  # the sign-in throttle
    ("DELETE", "/api/v1/courier/push-subscriptions"): {422},  # no endpoint named
}

ALL_ROLES = ["partner", "courier", "dispatcher", "admin"]


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
    roles = [role for guard in guards for role in getattr(guard, "roles", ())]
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
            describe_login(operation)
        describe_unstructured_body(method, path, operation)
        describe_photo_bodies(method, path, operation)
        if _returns_event_stream(handler) and "200" in responses:
            responses["200"]["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
        data = handler.parsed_data_field
        if data is not None and "requestBody" in operation:
            # `data: ActionIn | None = None`: the body may be left out.
            operation["requestBody"]["required"] = not (data.is_optional or data.has_default)
        for status in sorted(error_statuses(method, path, operation, handler, public_paths)):
            responses.setdefault(str(status), response_ref(status))
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
