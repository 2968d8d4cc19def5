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

document.py makes the corrections; schemas.py holds what is written by hand (errors, security schemes,
sign-in, zone files); this module serves the document and the docs page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin

from server.openapi.document import truthful_document

DOCS_UI = "/static/vendor/swagger-ui"
DOCS_INIT = "/static/schema-docs.js"


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
