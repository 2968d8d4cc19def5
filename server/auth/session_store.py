"""Login sessions: a Litestar session Store kept in the database, so every server process sees the same
logins, and a session backend that stores only sessions someone signed in to, under an id made at sign-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from litestar.connection import ASGIConnection, Request
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.stores.base import Store
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

from server.db.script import Sql, fetch
from server.tables import Session

# Scope keys: set by start_session() for the backend to see when the response goes out.
_ROTATE = "lanshou.new_session"
_NEW_ID = "lanshou.new_session_id"
_LOADED = "lanshou.session_as_loaded"  # a copy of the session as read from the store, to see changes


def start_session(request: Request[Any, Any, Any], data: dict[str, Any]) -> None:
    """Sign in: the session gets a new id. Keeping the id the browser came with would let someone who
    planted that cookie beforehand (session fixation) share the signed-in session."""
    request.set_session(data)
    cast("dict[str, Any]", request.scope)[_ROTATE] = True


class SessionBackend(ServerSideSessionBackend):
    """Litestar's server-side backend, changed in two ways:

    * an empty session is neither stored nor sent: without this every request without a cookie (partner
      API calls, health checks, failed sign-ins) wrote a session row and got a cookie back;
    * after start_session() the data goes under a fresh id and the one the browser sent is deleted;
    * a session the request did not change is not written back: Litestar rewrote the row on every
      response, a write per courier action and per stream (re)opened, 5,000 of them in a burst when the
      apps reconnect after a restart. Reading it renews its expiry (at most once a minute, see
      DatabaseSessionStore.get); the cookie still goes out as before.
    """

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        cast("dict[str, Any]", connection.scope)[_LOADED] = dict(data)  # handlers change `data` in place
        return data

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        scope = cast("dict[str, Any]", connection.scope)
        if scope.get(_ROTATE):
            if _NEW_ID not in scope:
                scope[_NEW_ID] = self.generate_session_id()
            return str(scope[_NEW_ID])
        return super().get_session_id(connection)

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        if scope_session is not Empty and not scope_session:
            return
        scope = cast("dict[str, Any]", connection.scope)
        if scope_session is not Empty and not scope.get(_ROTATE) and scope.get(_LOADED) == scope_session:
            session_id = connection.cookies.get(self.config.key)
            if session_id:
                # The cookie Litestar would send (same parameters, same code), without the write.
                params = dict(
                    extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
                )
                cookie = Cookie(value=session_id, key=self.config.key, **params)
                MutableScopeHeaders.from_message(message).add("Set-Cookie", cookie.to_header(header=""))
                return
        old_id = connection.cookies.get(self.config.key)
        if cast("dict[str, Any]", connection.scope).get(_ROTATE) and old_id:
            await self.delete(old_id, store=self.config.get_store_from_app(connection.scope["app"]))
        await super().store_in_message(scope_session, message, connection)


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = SessionBackend


# Session ids are generated hex strings; anything else in the cookie is not one of ours.
_SESSION_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def _plausible(key: str) -> bool:
    return _SESSION_ID.fullmatch(key) is not None


def _expiry(expires_in: int | timedelta | None) -> datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return datetime.now(UTC) + timedelta(seconds=seconds)


_GET = Sql('SELECT data, expires_at FROM sessions WHERE "key" = {}')
_UPDATE = Sql('UPDATE sessions SET data = {}, expires_at = {} WHERE "key" = {} RETURNING id')
_INSERT = Sql('INSERT INTO sessions ("key", data, expires_at) VALUES ({}, {}, {})')
_RENEW = Sql('UPDATE sessions SET expires_at = {} WHERE "key" = {}')
# Renew a session's expiry at most this often: a courier's app calls often and each renewal is a write.
_RENEW_EVERY = timedelta(minutes=1)


class DatabaseSessionStore(Store):
    """Sessions in the `sessions` table, read and written with raw SQL (every signed-in request reads
    its session, so a query object each time cost more than the read). A session the request left as
    it was is not written back at all (SessionBackend.store_in_message); get() renews its expiry."""

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.decode() if isinstance(value, bytes) else value
        expires_at = _expiry(expires_in)
        db = Session._meta.db
        if not await fetch(db, _UPDATE, data, expires_at, key):
            await fetch(db, _INSERT, key, data, expires_at)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        if not _plausible(key):
            return None  # a forged cookie (NUL, a megabyte) never reaches the database
        db = Session._meta.db
        rows = await fetch(db, _GET, key)
        if not rows:
            return None
        data, expires_at = str(rows[0]["data"]), rows[0]["expires_at"]
        if expires_at is not None and expires_at <= datetime.now(UTC):
            await self.delete(key)
            return None
        if renew_for is not None and expires_at is not None:
            new_expiry = _expiry(renew_for)
            if new_expiry and new_expiry - expires_at > _RENEW_EVERY:
                await fetch(db, _RENEW, new_expiry, key)
        return data.encode()

    async def delete(self, key: str) -> None:
        if not _plausible(key):
            return
        await Session.delete().where(Session.key == key)

    async def delete_all(self) -> None:
        await Session.delete(force=True)

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        if not _plausible(key):
            return None
        row = await Session.select(Session.expires_at).where(Session.key == key).first()
        if row is None or row["expires_at"] is None:
            return None
        return int((row["expires_at"] - datetime.now(UTC)).total_seconds())

    async def delete_expired(self) -> None:
        await Session.delete().where(Session.expires_at < datetime.now(UTC))
