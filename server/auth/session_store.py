"""A Litestar session Store kept in the database, so every server process sees the same logins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar.stores.base import Store

from server.tables import Session


def _expiry(expires_in: int | timedelta | None) -> datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return datetime.now(UTC) + timedelta(seconds=seconds)


class DatabaseSessionStore(Store):
    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.decode() if isinstance(value, bytes) else value
        expires_at = _expiry(expires_in)
        updated = (
            await Session.update({Session.data: data, Session.expires_at: expires_at})
            .where(Session.key == key)
            .returning(Session.id)
        )
        if not updated:
            await Session.insert(Session(key=key, data=data, expires_at=expires_at))

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        row = await Session.select(Session.data, Session.expires_at).where(Session.key == key).first()
        if row is None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
            await self.delete(key)
            return None
        if renew_for is not None and row["expires_at"] is not None:
            new_expiry = _expiry(renew_for)
            # Renew at most once a minute: a courier's app polls often and each renewal is a write.
            if new_expiry and new_expiry - row["expires_at"] > timedelta(minutes=1):
                await Session.update({Session.expires_at: new_expiry}).where(Session.key == key)
        return str(row["data"]).encode()

    async def delete(self, key: str) -> None:
        await Session.delete().where(Session.key == key)

    async def delete_all(self) -> None:
        await Session.delete(force=True)

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        row = await Session.select(Session.expires_at).where(Session.key == key).first()
        if row is None or row["expires_at"] is None:
            return None
        return int((row["expires_at"] - datetime.now(UTC)).total_seconds())

    async def delete_expired(self) -> None:
        await Session.delete().where(Session.expires_at < datetime.now(UTC))
