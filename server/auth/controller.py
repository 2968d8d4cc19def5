"""Sign in and out (JSON for apps, a form for browsers), and who am I."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.exceptions import NotAuthorizedException
from litestar.response import Redirect, Template

from server.auth.principal import SESSION_USER_KEY, Principal, principal_for_user
from server.auth.service import authenticate
from server.auth.session_store import start_session
from server.errors import malformed_body, msgspec_field_errors
from server.i18n import pick_language, translate

HOME_BY_ROLE = {"courier": "/api/v1/courier/pickups", "dispatcher": "/console", "admin": "/console"}


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str


def _safe_next(value: str | None) -> str | None:
    # Only same-site paths: an open redirect after login is a phishing tool.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return None


def _lang(request: Request[Any, Any, Any]) -> str:
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


def _login_page(request: Request[Any, Any, Any], status: int = 200, **context: Any) -> Template:
    lang = _lang(request)
    return Template(
        template_name="login.html",
        context={"lang": lang, "t": lambda key, **kw: translate(key, lang, **kw), **context},
        status_code=status,
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @get("/login", include_in_schema=False)
    async def login_page(self, request: Request[Any, Any, Any], next: str | None = None) -> Template:
        return _login_page(request, next=_safe_next(next))

    @post(
        "/login",
        status_code=200,
        summary="Sign in (JSON or form: username, password); sets the session cookie",
    )
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            username, password = str(form.get("username") or ""), str(form.get("password") or "")
            lang = _lang(request)
            if not username or not password:
                return _login_page(request, 400, error=translate("login.missing", lang), username=username)
            principal = await authenticate(username, password)
            if principal is None:
                return _login_page(request, 401, error=translate("login.failed", lang), username=username)
            start_session(request, {SESSION_USER_KEY: principal.id})
            target = _safe_next(str(form.get("next") or "")) or HOME_BY_ROLE.get(principal.role, "/")
            return Redirect(path=target, status_code=303)
        try:
            body = msgspec.json.decode(await request.body(), type=LoginIn)
        except msgspec.ValidationError as exc:
            raise msgspec_field_errors(exc) from None
        except msgspec.DecodeError as exc:
            raise malformed_body(f"{exc}; send JSON {{username, password}} or a form") from None
        principal = await authenticate(body.username, body.password)
        if principal is None:
            raise NotAuthorizedException("wrong username or password")
        start_session(request, {SESSION_USER_KEY: principal.id})
        return Response(content=msgspec.to_builtins(principal), media_type=MediaType.JSON)

    @post("/logout", status_code=200, summary="Sign out")
    async def logout(self, request: Request[Any, Any, Any]) -> dict[str, bool]:
        request.clear_session()
        return {"signed_out": True}


@get("/api/v1/me", tags=["auth"], summary="Who the session or API key belongs to")
async def me(request: Request[Principal, Any, Any]) -> Principal:
    refreshed = await principal_for_user(request.user.id) if request.user.kind == "user" else request.user
    return refreshed or request.user
