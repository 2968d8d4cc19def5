"""Users and partners: sign-in checks (throttled) and creation, partner keys and their revocation."""

from __future__ import annotations

import unicodedata

from server import throttle
from server.auth.passwords import hash_password, verify_password
from server.auth.principal import USER_ROLES, Principal, hash_api_key, new_api_key, principal_for_user
from server.domain.text import has_control_characters
from server.errors import ApiError, field_errors
from server.push.log import utcnow
from server.settings import Settings
from server.tables import Courier, Partner, Station, User

MAX_USERNAME = 64
MAX_PASSWORD = 1024


class SignInThrottled(Exception):
    """Too many failed sign-ins for this username or from this address; try again in `retry_after` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


def credential_errors(username: str, password: str) -> list[dict[str, str]]:
    """What makes these credentials impossible before any look-up: every problem, by field.

    No username can be longer than 64 characters or hold control characters (PostgreSQL refuses NUL in
    text outright), so such input is refused here rather than sent to the database.
    """
    errors = []
    name = username.strip()
    if not name or len(name) > MAX_USERNAME:
        errors.append({"field": "username", "message": f"1 to {MAX_USERNAME} characters"})
    elif has_control_characters(name) or any(unicodedata.category(c) == "Cs" for c in name):
        errors.append({"field": "username", "message": "must not contain control characters"})
    if not password or len(password) > MAX_PASSWORD:
        errors.append({"field": "password", "message": f"1 to {MAX_PASSWORD} characters"})
    elif "\x00" in password or any(unicodedata.category(c) == "Cs" for c in password):
        errors.append({"field": "password", "message": "must not contain NUL or lone surrogates"})
    return errors


class LoginThrottle:
    """Failed sign-ins per username and per client address (see server/throttle.py)."""

    def __init__(self, settings: Settings) -> None:
        window = settings.login_window_s
        self.by_user = throttle.Throttle("login.user", settings.login_failures_per_user, window)
        self.by_address = throttle.Throttle("login.address", settings.login_failures_per_address, window)


async def sign_in(username: str, password: str, address: str, limits: LoginThrottle) -> Principal | None:
    """The principal for these credentials, or None; SignInThrottled, before any hashing, when this
    username or this address has used up its attempts.

    Each attempt is counted against both before the password is checked (so a concurrent burst gets no
    more than the limit through, across processes); a success clears the username's failures and gives
    the address its attempt back. The address's other failures stay: otherwise one valid account would
    reset the count for guessing at all the others.
    """
    username = username.strip()
    by_user, by_address = (limits.by_user, username), (limits.by_address, address)
    wait = await throttle.retry_after(by_user, by_address)
    if wait:
        raise SignInThrottled(wait)
    if not await limits.by_user.acquire(username):
        raise SignInThrottled(max(await throttle.retry_after(by_user), 1))
    if not await limits.by_address.acquire(address):
        await limits.by_user.release(username)
        raise SignInThrottled(max(await throttle.retry_after(by_address), 1))
    try:
        principal = await authenticate(username, password)
    except BaseException:
        # Not a failed guess (the database went away, the request was cancelled): it does not count.
        await limits.by_user.release(username)
        await limits.by_address.release(address)
        raise
    if principal is not None:
        await limits.by_user.clear(username)
        await limits.by_address.release(address)
    return principal


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
    if not username.strip() or len(username) > MAX_USERNAME:
        errors.append({"field": "username", "message": f"1 to {MAX_USERNAME} characters"})
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
    """Create a partner, or give an existing one a new key (and make it active again if it was revoked);
    returns the key (shown once, kept hashed). The old key stops working at once in every process: keys
    are looked up in the database on every request, never cached."""
    key = new_api_key()
    async with Partner._meta.db.transaction():
        existing = await Partner.select(Partner.id).where(Partner.code == code).first()
        if existing:
            await Partner.update(
                {
                    Partner.api_key_hash: hash_api_key(key),
                    Partner.api_key_prefix: key[:10],
                    Partner.active: True,
                }
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


async def revoke_partner(code: str) -> bool:
    """Revoke a partner: its key is refused from the next request on, in every process, and its
    webhooks stop. `partner create` with the same code gives it a new key. False if there is no such
    partner."""
    # A fresh hash no one holds the key to: the revoked key is dead even if the partner is made active
    # again by other means.
    unusable = hash_api_key(new_api_key())
    rows = (
        await Partner.update({Partner.active: False, Partner.api_key_hash: unusable})
        .where(Partner.code == code)
        .returning(Partner.id)
    )
    return bool(rows)
