"""What every server-rendered page shares: the language it speaks and the page that says "not for you"."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from server.i18n import pick_language, translate


def request_language(request: Request[Any, Any, Any]) -> str:
    """The page's language: ?lang= first, then Accept-Language; zh-CN by default."""
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


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
