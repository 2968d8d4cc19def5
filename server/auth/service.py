"""Users and partners: sign-in checks and creation."""

from __future__ import annotations

from server.auth.passwords import hash_password, verify_password
from server.auth.principal import USER_ROLES, Principal, hash_api_key, new_api_key, principal_for_user
from server.errors import ApiError, field_errors
from server.push.log import utcnow
from server.tables import Courier, Partner, Station, User


async def authenticate(username: str, password: str) -> Principal | None:
    row = (
        await User.select(User.id, User.password_hash)
        .where((User.username == username.strip()) & (User.active == True))  # noqa: E712
        .first()
    )
    if not await verify_password(row["password_hash"] if row else None, password):
        return None
    return await principal_for_user(row["id"]) if row else None


async def create_user(
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    phone: str | None = None,
    station_code: str | None = None,
    capacity: int = 8,
) -> int:
    """Create a user (and their courier record for couriers); returns the user id."""
    errors = []
    if role not in USER_ROLES:
        errors.append({"field": "role", "message": f"one of {', '.join(USER_ROLES)}"})
    if not username.strip() or len(username) > 64:
        errors.append({"field": "username", "message": "1 to 64 characters"})
    if len(password) < 4:
        errors.append({"field": "password", "message": "at least 4 characters"})
    if errors:
        raise field_errors(errors)
    station_id = None
    if station_code:
        station = await Station.select(Station.id).where(Station.code == station_code).first()
        if station is None:
            raise ApiError(422, "unknown_station", f"no station {station_code!r}", field="station")
        station_id = station["id"]
    password_hash = await hash_password(password)
    async with User._meta.db.transaction():
        if await User.exists().where(User.username == username.strip()):
            raise ApiError(409, "username_taken", f"the username {username!r} is taken", field="username")
        rows = await User.insert(
            User(
                username=username.strip(),
                display_name=(display_name or username).strip(),
                phone=phone,
                role=role,
                password_hash=password_hash,
                station=station_id,
                created_at=utcnow(),
            )
        ).returning(User.id)
        user_id = rows[0]["id"]
        if role == "courier":
            await Courier.insert(Courier(user=user_id, capacity=capacity))
    return int(user_id)


async def create_partner(code: str, name: str) -> str:
    """Create a partner, or give an existing one a new key; returns the key (shown once, kept hashed)."""
    key = new_api_key()
    async with Partner._meta.db.transaction():
        existing = await Partner.select(Partner.id).where(Partner.code == code).first()
        if existing:
            await Partner.update(
                {Partner.api_key_hash: hash_api_key(key), Partner.api_key_prefix: key[:10]}
            ).where(Partner.id == existing["id"])
        else:
            await Partner.insert(
                Partner(
                    code=code,
                    name=name,
                    api_key_hash=hash_api_key(key),
                    api_key_prefix=key[:10],
                    created_at=utcnow(),
                )
            )
    return key
