"""The published OpenAPI document (/schema/openapi.json) says what the server does, and the docs page
(/schema) needs nothing from another host."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import msgspec
import pytest

from tests.conftest import Personas, ServerProcess

METHODS = ("get", "put", "post", "delete", "patch")
JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict[str, Any]:
    r = httpx.get(server.url + "/schema/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = _at(document, node["$ref"])
    return node


def _at(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return typing.cast(dict[str, Any], node)


def validator(document: dict[str, Any], ref: str) -> Any:
    """A JSON Schema validator for one of the document's schemas, its references resolved in place."""
    return jsonschema_rs.validator_for({"$ref": ref, "components": document["components"]})


def walk(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


# -- errors -------------------------------------------------------------------------------------------------


def test_errors_are_described_in_our_shape_and_not_litestars(document: dict[str, Any]) -> None:
    for node in walk(document):
        properties = node.get("properties", {})
        assert not ({"status_code", "detail"} <= set(properties)), f"Litestar's error shape: {node}"
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message", "errors"}
    field_error = _at(document, error["properties"]["errors"]["items"]["$ref"])
    assert set(field_error["required"]) == {"field", "message"}
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith("4"):
                continue
            content = resolve(document, response)["content"]
            assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                f"{method} {path} {status}"
            )


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/api/v1/pickups", {400, 401, 403, 409, 413, 415, 422}),
        ("GET", "/api/v1/pickups", {400, 401, 403}),
        ("GET", "/api/v1/pickups/{pickup_id}", {401, 403, 404}),
        ("POST", "/api/v1/courier/pickups/{pickup_id}/accept", {401, 403, 404, 409, 415, 422}),
        ("POST", "/api/v1/courier/pickups/{pickup_id}/decline", {401, 403, 404, 409, 415, 422}),
        ("POST", "/api/v1/courier/pickups/{pickup_id}/seen", {401, 403, 404, 409, 415, 422}),
        ("POST", "/api/v1/courier/pickups/{pickup_id}/arrived", {401, 403, 404, 409, 415, 422}),
        ("POST", "/api/v1/dispatch/assign", {401, 403, 404, 409, 415, 422}),
        ("POST", "/api/v1/users", {401, 403, 409, 415, 422}),
        ("GET", "/api/v1/me", {401}),
        ("POST", "/auth/login", {400, 401, 422, 429}),
    ],
)
def test_each_operation_lists_the_errors_it_can_answer(
    document: dict[str, Any], method: str, path: str, statuses: set[int]
) -> None:
    listed = {int(s) for s in document["paths"][path][method.lower()]["responses"]}
    assert statuses <= listed, f"{method} {path} does not list {statuses - listed}"


def test_an_operation_does_not_list_errors_it_cannot_answer(document: dict[str, Any]) -> None:
    # No guard and no write: only the missing sign-in can fail it.
    assert 403 not in {int(s) for s in document["paths"]["/api/v1/me"]["get"]["responses"]}
    # Public: no sign-in needed.
    assert not {"401", "403"} & set(document["paths"]["/auth/logout"]["post"]["responses"])


async def test_the_errors_the_server_sends_match_the_documented_ones(
    document: dict[str, Any], people: Personas
) -> None:
    partner, anonymous, courier = people.partner(), people.anonymous(), await people.user("courier01")
    sent = [
        ("GET", "/api/v1/pickups", await anonymous.get("/api/v1/pickups")),
        ("GET", "/api/v1/pickups", await courier.get("/api/v1/pickups")),
        ("GET", "/api/v1/pickups/{pickup_id}", await partner.get("/api/v1/pickups/999999999")),
        ("POST", "/api/v1/pickups", await partner.post("/api/v1/pickups", json={"sender": {}, "x": 1})),
        ("POST", "/api/v1/pickups", await partner.post("/api/v1/pickups", content=b"{", headers=JSON)),
        ("POST", "/api/v1/pickups", await partner.post("/api/v1/pickups", content=b"{}", headers=TEXT)),
        ("GET", "/api/v1/pickups", await partner.get("/api/v1/pickups", params={"cursor": "nonsense"})),
        ("POST", "/auth/login", await anonymous.post("/auth/login", json={"username": "x"})),
    ]
    check = validator(document, "#/components/schemas/Error")
    for method, path, response in sent:
        documented = document["paths"][path][method.lower()]["responses"]
        assert str(response.status_code) in documented, (
            f"{method} {path}: {response.status_code} undocumented"
        )
        assert response.status_code >= 400
        errors = [e.message for e in check.iter_errors(response.json())]
        assert errors == [], f"{method} {path} {response.status_code}: {response.text} {errors}"
    assert sorted({r.status_code for _, _, r in sent}) == [400, 401, 403, 404, 415, 422]


# -- bodies -----------------------------------------------------------------------------------------------


def _server_structs() -> dict[str, type[msgspec.Struct]]:
    import server.app  # noqa: F401  (imports every module that defines a struct the API uses)

    found: dict[str, type[msgspec.Struct]] = {}
    stack: list[type[msgspec.Struct]] = [msgspec.Struct]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("server."):
                found.setdefault(sub.__name__, sub)
    return found


_CONSTRAINTS = {
    "pattern": "pattern",
    "min_length": "minLength",
    "max_length": "maxLength",
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
}

_ARRAY_CONSTRAINTS = {"min_length": "minItems", "max_length": "maxItems"}
_ARRAYS = (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.VarTupleType)


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """A property's schemas for its non-null values (`X | None` is anyOf [X, null])."""
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [option for option in options if option.get("type") != "null"]


def test_bodies_say_what_msgspec_enforces(document: dict[str, Any]) -> None:
    """Every struct in the document: unknown fields refused where the struct refuses them, and every
    bound, length and pattern its fields declare, so that a generated client can make a valid request."""
    structs = _server_structs()
    schemas = document["components"]["schemas"]
    checked = 0
    for name, schema in schemas.items():
        cls = structs.get(name)
        if cls is None:
            continue
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        if info.forbid_unknown_fields:
            assert schema.get("additionalProperties") is False, f"{name} accepts unknown fields?"
        for field in info.fields:
            types = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
            for ftype in types:
                names = _ARRAY_CONSTRAINTS if isinstance(ftype, _ARRAYS) else _CONSTRAINTS
                declared = {
                    key: getattr(ftype, attr)
                    for attr, key in names.items()
                    if getattr(ftype, attr, None) is not None
                }
                if not declared:
                    continue
                variants = _variants(schema["properties"][field.encode_name])
                assert any(declared.items() <= v.items() for v in variants), (
                    f"{name}.{field.name}: {declared} not in {variants}"
                )
                checked += 1
    assert checked >= 20  # the request structs are in the document, with their bounds


def test_a_pickup_made_from_the_schema_alone_is_accepted(document: dict[str, Any]) -> None:
    """The phone pattern, the enums and the required fields are there: a client reading only the
    document can tell this body is valid, and that one is not."""
    check = validator(document, "#/components/schemas/PickupCreate")
    good = {
        "sender": {"name": "李四", "phone": "13912345678"},
        "address": {"province": "湖南省", "city": "长沙市", "district": "岳麓区", "detail": "1号楼"},
    }
    assert check.is_valid(good)
    assert not check.is_valid({**good, "sender": {"name": "李四", "phone": "12345"}})
    assert not check.is_valid({**good, "colour": "blue"})
    assert not check.is_valid({**good, "address": {**good["address"], "datum": "mercator"}})
    assert not check.is_valid({**good, "weight_kg": 0})
    status = _at(document, "#/components/schemas/PickupOut")["properties"]["status"]
    assert "enum" in resolve(document, status)


async def test_the_zone_file_is_described_and_an_export_fits_it(
    document: dict[str, Any], people: Personas
) -> None:
    put = document["paths"]["/api/v1/zones"]["put"]["requestBody"]["content"]["application/json"]
    assert put["schema"] == {"$ref": "#/components/schemas/ZoneCollection"}
    dispatcher = await people.user("dispatch")
    exported = (await dispatcher.get("/api/v1/zones")).json()
    assert exported["features"]
    check = validator(document, "#/components/schemas/ZoneCollection")
    assert [e.message for e in check.iter_errors(exported)] == []
    feature = exported["features"][0]
    assert not check.is_valid({**exported, "features": [{**feature, "properties": {"name": "no code"}}]})
    assert not check.is_valid(
        {**exported, "features": [{**feature, "properties": {**feature["properties"], "offer_ttl_s": 0}}]}
    )


def test_optional_bodies_may_be_left_out_and_streams_are_event_streams(document: dict[str, Any]) -> None:
    accept = document["paths"]["/api/v1/courier/pickups/{pickup_id}/accept"]["post"]
    assert accept["requestBody"]["required"] is False
    assert document["paths"]["/api/v1/pickups"]["post"]["requestBody"]["required"] is True
    events = document["paths"]["/api/v1/courier/events"]["get"]["responses"]["200"]
    assert list(events["content"]) == ["text/event-stream"]


def test_a_decline_names_its_reasons_and_seen_and_arrived_take_an_optional_action_body(
    document: dict[str, Any],
) -> None:
    decline = document["paths"]["/api/v1/courier/pickups/{pickup_id}/decline"]["post"]
    assert decline["requestBody"]["required"] is True
    schema = resolve(document, decline["requestBody"]["content"]["application/json"]["schema"])
    assert "reason" in schema["required"]
    assert sorted(resolve(document, schema["properties"]["reason"])["enum"]) == [
        "busy",
        "other",
        "too_far",
        "vehicle_full",
        "wrong_zone",
    ]
    for action in ("seen", "arrived"):
        operation = document["paths"][f"/api/v1/courier/pickups/{{pickup_id}}/{action}"]["post"]
        assert operation["requestBody"]["required"] is False
        assert operation["x-roles"] == ["courier"]


def test_sign_in_describes_its_json_and_form_bodies(document: dict[str, Any]) -> None:
    login = document["paths"]["/auth/login"]["post"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(login["requestBody"]["content"])
    ok = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Principal"}
    assert "Retry-After" in login["responses"]["429"]["headers"]


def test_who_may_call_each_operation_is_stated(document: dict[str, Any]) -> None:
    assert set(document["components"]["securitySchemes"]) == {"partnerKey", "session"}
    roles = {(m, p): op["x-roles"] for m, p, op in operations(document)}
    assert roles[("POST", "/api/v1/pickups")] == ["partner"]
    assert roles[("POST", "/api/v1/courier/duty")] == ["courier"]
    assert roles[("POST", "/api/v1/dispatch/assign")] == ["dispatcher", "admin"]
    assert roles[("POST", "/api/v1/users")] == ["admin"]
    assert roles[("POST", "/auth/login")] == []
    assert document["paths"]["/api/v1/pickups"]["post"]["security"] == [{"partnerKey": []}]


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    refs = {node["$ref"] for node in walk(document) if isinstance(node.get("$ref"), str)}
    assert refs
    for ref in refs:
        _at(document, ref)


# -- the docs page -----------------------------------------------------------------------------------------


def test_the_docs_page_loads_nothing_from_another_host(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/schema", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    here = urlsplit(server.url).netloc
    elsewhere = [u for u in re.findall(r"https?://[^\s\"'<>)]+", page) if urlsplit(u).netloc != here]
    assert elsewhere == []
    # No inline script: every <script> names a file and has no body (the pages' CSP has no 'unsafe-inline').
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, flags=re.S)
    assert scripts and all('src="' in attrs and body.strip() == "" for attrs, body in scripts)
    assert "<style" not in page and "style=" not in page
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page)
    assert len(assets) >= 3
    for asset in assets:
        assert httpx.get(server.url + asset, timeout=30).status_code == 200, asset
    assert 'data-openapi-url="/schema/openapi.json"' in page
