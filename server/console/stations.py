"""The console's stations page (/console/stations): today's figures per station, rolled up province →
city → district → station (server/dispatch/rollup.py computes them).

The page refreshes its figures table (the `rollup` block) as the console stream says pickups change.
"""

from __future__ import annotations

from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Controller, Request, get
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response import Template

from server.auth.principal import Principal, dispatcher_only
from server.console.controller import JS_STRINGS, _base_context, _forbidden, _to_login
from server.dispatch.rollup import StationNode, start_of_day, station_rollup
from server.dispatch.scope import scope_of
from server.i18n import translate
from server.pages import DEFAULT_TIMEZONE, is_htmx, request_language
from server.push.log import latest_event_id, utcnow

TEMPLATE = "console_stations.html"


def _rows(nodes: list[StationNode], depth: int = 0, parent: str = "") -> list[dict[str, Any]]:
    """The tree as table rows, depth first (a parent before its children)."""
    out: list[dict[str, Any]] = []
    for node in nodes:
        out.append({"node": node, "depth": depth, "parent": parent, "has_children": bool(node.children)})
        out.extend(_rows(node.children, depth + 1, node.code))
    return out


class StationsPageController(Controller):
    path = "/console/stations"
    guards = [dispatcher_only]
    include_in_schema = False
    exception_handlers = {NotAuthorizedException: _to_login, PermissionDeniedException: _forbidden}

    @get("/")
    async def page(self, request: Request[Principal, Any, Any]) -> Template:
        lang = request_language(request)
        now = utcnow()
        scope = await scope_of(request.user)
        context = _base_context(request, lang)
        if not is_htmx(request):
            # Read before the figures: console.js resumes the stream from here.
            context["last_event_id"] = await latest_event_id()
        tree = await station_rollup(scope, now)
        timezones = sorted({row["node"].timezone for row in _rows(tree)}) or [DEFAULT_TIMEZONE]
        context.update(
            rows=_rows(tree),
            since=start_of_day(now, timezones[0]),
            timezone=timezones[0] if len(timezones) == 1 else None,
            scoped=not scope.everything,
            js_strings={key: translate(key, lang) for key in JS_STRINGS},
        )
        if is_htmx(request):
            return HTMXBlockTemplate(template_name=TEMPLATE, block_name="rollup", context=context)
        return Template(template_name=TEMPLATE, context=context)
