"""What the OpenAPI document says that Litestar cannot generate: the error shape and one response per
error status, the security schemes, sign-in's JSON and form bodies, and the zone file (GeoJSON checked by
its own code rather than a struct), with the bounds of the checks that enforce them."""

from __future__ import annotations

from typing import Any

from server.domain.geo import MAX_CODE_LENGTH, MAX_NAME_LENGTH, MAX_PRIORITY
from server.domain.text import LINE_PATTERN, OPTIONAL_LINE_PATTERN
from server.zones.service import OFFER_TTL_S, SLA_MINUTES

SCHEMAS = "#/components/schemas/"
RESPONSES = "#/components/responses/"

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
        "Too many failed attempts, or a partner's API key past its rate limit (`rate_limited`); "
        "`Retry-After` says in how many seconds to try again.",
    ),
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

_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 0}}
}


def response_ref(status: int) -> dict[str, str]:
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


def describe_login(operation: dict[str, Any]) -> None:
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


def describe_unstructured_body(method: str, path: str, operation: dict[str, Any]) -> None:
    request, response = UNSTRUCTURED_BODIES.get((method, path), (None, None))
    if request is not None and "requestBody" in operation:
        operation["requestBody"]["content"]["application/json"]["schema"] = request
    if response is not None:
        operation["responses"]["200"]["content"]["application/json"]["schema"] = response


# Photos travel as images, not JSON: the upload's raw body and the read's answer.
_IMAGE = {"schema": {"type": "string", "format": "binary", "maxLength": 1_048_576}}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


def describe_photo_bodies(method: str, path: str, operation: dict[str, Any]) -> None:
    if (method, path) == ("POST", "/api/v1/courier/pickups/{pickup_id}/photos"):
        operation["requestBody"] = {
            "required": True,
            "description": "One image, at most 1 MiB; its type is read from its bytes.",
            "content": {media: _IMAGE for media in _IMAGE_TYPES},
        }
    elif (method, path) == ("GET", "/api/v1/pickups/{pickup_id}/photos/{photo_id}"):
        operation["responses"]["200"] = {
            "description": "The image, as stored",
            "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in _IMAGE_TYPES},
        }


# Every partner POST under /api/v1 takes an Idempotency-Key (server/partnerapi/idempotency.py).
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry safe: the same key with the same request answers as the first did (marked "
        "`Idempotent-Replayed: true`) without acting again; with another request it is a 422 "
        "`idempotency_key_reused`; while the first is still running a copy waits for it, then 409 "
        "`idempotency_key_in_use`. Kept 24 hours per partner. 1 to 255 printable ASCII characters, no spaces."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
}
BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 500,
                        "items": {"$ref": SCHEMAS + "PickupCreate"},
                    }
                },
                "required": ["items"],
                "additionalProperties": False,
            }
        }
    },
}


def describe_partner_api(method: str, path: str, operation: dict[str, Any], roles: list[str]) -> set[int]:
    """The Idempotency-Key header and the batch body; returns the statuses the partner middleware adds."""
    if "partner" not in roles:
        return set()
    statuses = {429}  # every call with an API key counts against its rate limit
    if method == "POST" and path.startswith("/api/v1/"):
        operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
        statuses |= {400, 409, 422}  # a malformed key, a key still in use, a key reused
    if (method, path) == ("POST", "/api/v1/pickups/batch"):
        operation["requestBody"] = BATCH_BODY
        statuses |= {400, 413, 422}
    return statuses
