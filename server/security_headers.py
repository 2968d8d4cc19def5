"""Security headers on every response: a Content-Security-Policy without inline script, no sniffing,
no framing, a referrer policy.

Everything a user typed reaches pages as text (Jinja2 autoescape, `textContent` in console.js); the
policy is there so that the next slip is harmless: with `script-src 'self'` and no 'unsafe-inline', a
zone name like `<img src=x onerror=…>` that ends up parsed as HTML still cannot run. Pages therefore
carry no inline script or style: the console's code and styles are files under /static, its data
blocks are `<script type="application/json">` (never executed), and htmx is told not to inject its
indicator `<style>` (`includeIndicatorStyles: false` in the htmx-config meta). Leaflet positions
elements through `element.style`, which CSP does not govern.

The same headers go on every response (JSON, SSE, static files, errors): whatever a browser might
render is covered, including pages added later, and for non-HTML responses they cost nothing.
A response that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from server.settings import Settings

# A host as CSP accepts it: DNS labels or an IPv4 address, optionally behind a leading "*." wildcard.
_CSP_HOST = re.compile(r"^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def tile_source(tile_url: str) -> str | None:
    """The CSP source expression for the map's tile server, or None when it is this server itself.

    Tile URLs are templates: a host with a placeholder (`{s}.tile.openstreetmap.org`, Amap's
    `webrd0{s}.is.autonavi.com`) becomes a wildcard for its labels left of the placeholder. Anything
    that is not a plain http(s) host (a relative URL, another scheme, characters that could end the
    directive) adds nothing: the tiles then do not load, but the policy stays intact.
    """
    parts = urlsplit(tile_url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        return None
    netloc = parts.netloc.rsplit("@", 1)[-1].lower()
    host, _, port = netloc.partition(":") if not netloc.startswith("[") else (netloc, "", "")
    labels = host.split(".")
    templated = [i for i, label in enumerate(labels) if _PLACEHOLDER.search(label)]
    if templated:
        labels = ["*", *labels[templated[-1] + 1 :]]
        if len(labels) < 3:  # "*.com" would allow a whole top-level domain
            return None
        host = ".".join(labels)
    if not _CSP_HOST.match(host) or (port and not port.isdigit()):
        return None
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")


def content_security_policy(tile_url: str) -> str:
    """The one policy for every page: scripts, styles, fetches and frames from this origin only."""
    tiles = tile_source(tile_url)
    img = ["'self'", "data:"] + ([tiles] if tiles else [])
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": img,
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", content_security_policy(settings.map_tile_url).encode("latin-1")),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        # Not "same-origin": tile servers (OpenStreetMap's usage policy) refuse requests without a
        # Referer; the origin alone is what they need, and paths never leave the site.
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
    ]


def add_security_headers(settings: Settings) -> BeforeMessageSendHookHandler:
    """A `before_send` hook: runs for every response the app sends, routed or not (404, 405, 413)."""
    headers = security_headers(settings)

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        present = {name.lower() for name, _ in message.get("headers", [])}
        message["headers"] = [
            *message.get("headers", []),
            *((name, value) for name, value in headers if name not in present),
        ]

    return hook
