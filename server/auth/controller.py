"""Sign in and out (JSON for apps, a form for browsers), and who am I."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.exceptions import NotAuthorizedException
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from server.auth.principal import SESSION_USER_KEY, Principal, principal_for_user, principal_from_session
from server.auth.service import LoginThrottle, SignInThrottled, credential_errors, sign_in
from server.auth.session_store import start_session
from server.errors import ApiError, field_errors, malformed_body, msgspec_field_errors
from server.i18n import translate
from server.pages import request_language
from server.throttle import client_key

HOME_BY_ROLE = {"courier": "/app", "dispatcher": "/console", "admin": "/console"}


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str


def _safe_next(value: str | None) -> str | None:
    # Only same-site paths: an open redirect after login is a phishing tool.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return None


def _login_page(
    request: Request[Any, Any, Any], status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> Template:
    lang = request_language(request)
    return Template(
        template_name="login.html",
        context={"lang": lang, "t": lambda key, **kw: translate(key, lang, **kw), **context},
        status_code=status,
        headers=headers,
    )


def _client_address(request: Request[Any, Any, Any]) -> str:
    # uvicorn runs with proxy_headers: behind a proxy on 127.0.0.1 this is X-Forwarded-For's client.
    return client_key(request.client.host if request.client else "unknown")


def _throttled(exc: SignInThrottled) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"too many failed sign-ins for this username or from this address; try again in {exc.retry_after} s",
        headers={"Retry-After": str(exc.retry_after)},
        retry_after=exc.retry_after,
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @get("/login", include_in_schema=False)
    async def login_page(
        self, request: Request[Any, Any, Any], next: FromQuery[str | None] = None
    ) -> Template:
        return _login_page(request, next=_safe_next(next))

    @post(
        "/login",
        status_code=200,
        summary="Sign in (JSON or form: username, password); sets the session cookie",
        description=(
            "Failed sign-ins are limited per username and per client address: past the limit the answer "
            "is 429 with Retry-After (seconds) until the window ends, and the password is not checked."
        ),
    )
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        limits = LoginThrottle(request.app.state.settings)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return await self._form_login(request, limits)
        try:
            body = msgspec.json.decode(await request.body(), type=LoginIn)
        except msgspec.ValidationError as exc:
            raise msgspec_field_errors(exc) from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise malformed_body(f"{exc}; send JSON {{username, password}} or a form") from None
        errors = credential_errors(body.username, body.password)
        if errors:
            raise field_errors(errors)
        try:
            principal = await sign_in(body.username, body.password, _client_address(request), limits)
        except SignInThrottled as exc:
            raise _throttled(exc) from None
        if principal is None:
            raise NotAuthorizedException("wrong username or password")
        start_session(request, {SESSION_USER_KEY: principal.id})
        return Response(content=msgspec.to_builtins(principal), media_type=MediaType.JSON)

    async def _form_login(self, request: Request[Any, Any, Any], limits: LoginThrottle) -> Response[Any]:
        form = await request.form()
        username, password = form.get("username") or "", form.get("password") or ""
        lang = request_language(request)
        if not isinstance(username, str) or not isinstance(password, str):  # a file, not a field
            return _login_page(request, 400, error=translate("login.invalid", lang))
        if not username or not password:
            return _login_page(request, 400, error=translate("login.missing", lang), username=username)
        if credential_errors(username, password):
            return _login_page(request, 400, error=translate("login.invalid", lang))
        try:
            principal = await sign_in(username, password, _client_address(request), limits)
        except SignInThrottled as exc:
            message = translate("login.throttled", lang, minutes=math.ceil(exc.retry_after / 60))
            return _login_page(
                request, 429, {"Retry-After": str(exc.retry_after)}, error=message, username=username
            )
        if principal is None:
            return _login_page(request, 401, error=translate("login.failed", lang), username=username)
        start_session(request, {SESSION_USER_KEY: principal.id})
        next_page = form.get("next")
        target = (_safe_next(next_page) if isinstance(next_page, str) else None) or HOME_BY_ROLE.get(
            principal.role, "/"
        )
        return Redirect(path=target, status_code=303)

    @post("/logout", status_code=200, summary="Sign out")
    async def logout(self, request: Request[Any, Any, Any]) -> dict[str, bool]:
        request.clear_session()
        return {"signed_out": True}


async def home_for_session(request: Request[Any, Any, Any]) -> str:
    """Where `/` sends this browser: the signed-in person's home (a courier's is the app), else sign-in."""
    principal = await principal_from_session(request.scope)
    return HOME_BY_ROLE.get(principal.role, "/auth/login") if principal else "/auth/login"


@get("/api/v1/me", tags=["auth"], summary="Who the session or API key belongs to")
async def me(request: Request[Principal, Any, Any]) -> Principal:
    refreshed = await principal_for_user(request.user.id) if request.user.kind == "user" else request.user
    return refreshed or request.user
