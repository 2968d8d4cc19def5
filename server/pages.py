"""What every server-rendered page shares: the language it speaks and the page that says "not for you"."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request
from litestar.response import Template

from server.i18n import pick_language, translate


def request_language(request: Request[Any, Any, Any]) -> str:
    """The page's language: ?lang= first, then Accept-Language; zh-CN by default."""
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


# Where a station's own timezone is missing or unknown: the demo city's, and mainland China's.
DEFAULT_TIMEZONE = "Asia/Shanghai"


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """Whether htmx made the request (it then wants a block of the page, not the whole page)."""
    return request.headers.get("hx-request") == "true"


@lru_cache(maxsize=32)
def station_timezone(name: str) -> ZoneInfo:
    """A station's timezone for showing times, DEFAULT_TIMEZONE when the name is not one."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def forbidden_page(request: Request[Any, Any, Any], message_key: str, login_url: str) -> Template:
    """403 as a page in the request's language, with a way to sign in as someone else."""
    lang = request_language(request)
    context = {
        "lang": lang,
        "t": lambda key, **kw: translate(key, lang, **kw),
        "message": translate(message_key, lang),
        "login_url": login_url,
    }
    return Template(template_name="forbidden.html", context=context, status_code=403)
