"""Who is calling: a signed-in user (courier, dispatcher, admin) or a partner with an API key."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from server.db.script import Sql, fetch
from server.tables import Partner, User

Role = Literal["courier", "dispatcher", "admin", "partner"]
USER_ROLES = ("courier", "dispatcher", "admin")
SESSION_USER_KEY = "uid"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["user", "partner"]
    id: int
    name: str
    role: Role
    courier_id: int | None = None
    station_id: int | None = None


def hash_api_key(key: str) -> str:
    # API keys are 256-bit random: a fast hash is enough and lets us look the key up by its hash.
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "lsk_" + secrets.token_urlsafe(32)


_PARTNER_BY_KEY = Sql("SELECT id, name FROM partners WHERE api_key_hash = {} AND active = {}")
_USER_WITH_COURIER = Sql(
    "SELECT u.id AS id, u.display_name AS display_name, u.role AS role, u.station AS station, "
    'c.id AS courier_id FROM users u LEFT JOIN couriers c ON c."user" = u.id '
    "WHERE u.id = {} AND u.active = {}"
)


async def partner_for_key(key: str) -> Principal | None:
    """The partner holding this key, read from the database on every request.

    No cache: a rotated or revoked key must stop working at once in every process, and the look-up is
    one read through a unique index (raw SQL: on every partner call, a query object cost more than it).
    """
    rows = await fetch(Partner._meta.db, _PARTNER_BY_KEY, hash_api_key(key), True)
    return Principal(kind="partner", id=rows[0]["id"], name=rows[0]["name"], role="partner") if rows else None


async def principal_for_user(user_id: int) -> Principal | None:
    """The active user with this id, with their courier id when they are a courier (one read)."""
    rows = await fetch(User._meta.db, _USER_WITH_COURIER, user_id, True)
    if not rows:
        return None
    row = rows[0]
    return Principal(
        kind="user",
        id=row["id"],
        name=row["display_name"],
        role=row["role"],
        courier_id=row["courier_id"] if row["role"] == "courier" else None,
        station_id=row["station"],
    )


async def principal_from_session(scope: Any) -> Principal | None:
    """The signed-in user of this connection's session, if any (and still active)."""
    session = scope.get("session")
    user_id = session.get(SESSION_USER_KEY) if isinstance(session, dict) else None
    return await principal_for_user(user_id) if isinstance(user_id, int) else None


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Bearer API key → partner; otherwise the session cookie → user; otherwise 401.

    Every method is authenticated, OPTIONS included (create_app passes `exclude_http_methods=[]`).
    Litestar skips OPTIONS by default (for CORS preflights, which Lanshou does not serve) but still runs
    the route's guards on its automatic OPTIONS handler, and those guards then found no user: a 500 for
    anyone, signed in or not.
    """

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            partner = await partner_for_key(header[7:].strip())
            if partner is None:
                raise NotAuthorizedException("the API key is not valid or has been revoked")
            return AuthenticationResult(user=partner, auth="api_key")
        principal = await principal_from_session(connection.scope)
        if principal is None:
            raise NotAuthorizedException("sign in first (POST /auth/login) or send an API key")
        if (
            connection.scope.get("method") in _UNSAFE
            and connection.scope["path"].startswith("/api/")
            and connection.headers.get("content-type", "").split(";")[0].strip() in _FORM_TYPES
        ):
            # The JSON API takes cookies only with JSON bodies: a cross-site form cannot send those.
            raise PermissionDeniedException("cookie-authenticated API calls must send JSON")
        return AuthenticationResult(user=principal, auth="session")


def require_roles(*roles: Role):  # type: ignore[no-untyped-def]
    """A guard letting through only the given roles (admins also pass where dispatchers may)."""

    admitted = (*roles, "admin") if "dispatcher" in roles and "admin" not in roles else roles

    # A coroutine function: Litestar runs a plain function guard in a worker thread, a thread-pool hop
    # per request (7.8 % of the event loop's busy time at 450 creates/s, py-spy) for a dict lookup.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        # Read from the scope: `connection.user` raises (a 500) when authentication was skipped.
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise NotAuthorizedException("sign in first")
        if principal.role in admitted:
            return
        raise PermissionDeniedException(f"this needs the role {' or '.join(roles)}")

    # Who passes, for readers such as the OpenAPI document (server/openapi: x-roles).
    guard.roles = admitted  # type: ignore[attr-defined]
    return guard


partner_only = require_roles("partner")
courier_only = require_roles("courier")
dispatcher_only = require_roles("dispatcher")
admin_only = require_roles("admin")
