"""Who is calling: a signed-in user (courier, dispatcher, admin) or a partner with an API key."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, Literal

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from server.tables import Courier, Partner, User

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


# A short cache: a partner sending 100 pickups/s should not cost 100 key look-ups/s.
_PARTNER_CACHE: dict[str, tuple[float, Principal | None]] = {}
_PARTNER_CACHE_SECONDS = 10.0


async def partner_for_key(key: str) -> Principal | None:
    digest = hash_api_key(key)
    hit = _PARTNER_CACHE.get(digest)
    now = time.monotonic()
    if hit and now - hit[0] < _PARTNER_CACHE_SECONDS:
        return hit[1]
    row = (
        await Partner.select(Partner.id, Partner.name)
        .where((Partner.api_key_hash == digest) & (Partner.active == True))  # noqa: E712
        .first()
    )
    principal = Principal(kind="partner", id=row["id"], name=row["name"], role="partner") if row else None
    if len(_PARTNER_CACHE) > 10_000:
        _PARTNER_CACHE.clear()
    _PARTNER_CACHE[digest] = (now, principal)
    return principal


async def principal_for_user(user_id: int) -> Principal | None:
    row = (
        await User.select(User.id, User.display_name, User.role, User.station)
        .where((User.id == user_id) & (User.active == True))  # noqa: E712
        .first()
    )
    if row is None:
        return None
    courier_id = None
    if row["role"] == "courier":
        courier = await Courier.select(Courier.id).where(Courier.user == user_id).first()
        courier_id = courier["id"] if courier else None
    return Principal(
        kind="user",
        id=row["id"],
        name=row["display_name"],
        role=row["role"],
        courier_id=courier_id,
        station_id=row["station"],
    )


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Bearer API key → partner; otherwise the session cookie → user; otherwise 401."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            partner = await partner_for_key(header[7:].strip())
            if partner is None:
                raise NotAuthorizedException("the API key is not valid or has been revoked")
            return AuthenticationResult(user=partner, auth="api_key")
        session = connection.scope.get("session")
        user_id = session.get(SESSION_USER_KEY) if isinstance(session, dict) else None
        principal = await principal_for_user(int(user_id)) if user_id else None
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

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal):
            raise NotAuthorizedException("sign in first")
        if principal.role in roles or (principal.role == "admin" and "dispatcher" in roles):
            return
        raise PermissionDeniedException(f"this needs the role {' or '.join(roles)}")

    return guard


partner_only = require_roles("partner")
courier_only = require_roles("courier")
dispatcher_only = require_roles("dispatcher")
admin_only = require_roles("admin")
