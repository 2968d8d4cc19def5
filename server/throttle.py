"""Limits on attempts per key (a username, a client address), shared by every server process.

A `Throttle` allows `limit` attempts per key in a window of `window_s` seconds that opens at the key's
first attempt. `acquire` takes one atomically, so a burst of concurrent attempts, in one process or
several, gets exactly `limit` through and no more; an attempt that turns out not to count (a sign-in that
succeeded) is given back with `release`. A caller that is refused must not do its expensive work, and
`retry_after` says how many seconds remain until the window ends; a refused attempt takes nothing, so a
client that keeps knocking does not push its own lock further out. A window that has ended counts as
zero: limits lift by themselves, and expired rows are purged now and then.

Why the database rather than Redis: every deployment has the database, while Redis is optional (push
only); the counters must be shared by every process or N processes would allow N times the limit; and
what is throttled (an argon2 hash, a public form) costs far more than one indexed upsert. A conditional
upsert (`INSERT … ON CONFLICT … DO UPDATE … WHERE`, the same SQL on SQLite and PostgreSQL) takes an
attempt atomically without a transaction, and a refused attempt is found by a read before any write.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from server.tables import ThrottleCount

# Expired rows are deleted at most this often per process, and only when failures are being counted.
_PURGE_EVERY_S = 60.0
_MAX_KEY = 200  # the column's length

# One attempt more for the key, unless its window is open and full: then no row comes back.
_ACQUIRE = (
    'INSERT INTO throttle_counts ("key", hits, window_ends_ms) VALUES ({}, 1, {}) '
    'ON CONFLICT ("key") DO UPDATE SET '
    "hits = CASE WHEN throttle_counts.window_ends_ms > {} THEN throttle_counts.hits + 1 ELSE 1 END, "
    "window_ends_ms = CASE WHEN throttle_counts.window_ends_ms > {} "
    "THEN throttle_counts.window_ends_ms ELSE excluded.window_ends_ms END "
    "WHERE throttle_counts.window_ends_ms <= {} OR throttle_counts.hits < {} "
    "RETURNING hits"
)


def _now_ms() -> int:
    # Wall-clock time: the counters are compared across processes (and machines).
    return int(time.time() * 1000)


def client_key(host: str) -> str:
    """What to count a client address under: an IPv4 address as it is, an IPv6 address by its /64.

    One IPv6 subscriber or server is routinely given a whole /64 (2^64 addresses): counted one address
    at a time, a limit per address would be no limit at all.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]  # not an address (a test client, a Unix socket): as it is, bounded
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Throttle:
    """At most `limit` failures per key within `window_s` seconds, e.g. Throttle("login.user", 10, 900)."""

    def __init__(self, name: str, limit: int, window_s: int) -> None:
        self.name = name
        self.limit = limit
        self.window_s = window_s

    def key(self, value: str) -> str:
        key = f"{self.name}:{value}"
        if len(key) > _MAX_KEY:
            # Callers bound their keys; a long one is still counted, under its digest.
            key = f"{self.name}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"
        return key

    async def acquire(self, value: str) -> bool:
        """Take one attempt for `value`: True if it may go ahead, False if its limit is used up."""
        now = _now_ms()
        rows = await ThrottleCount.raw(
            _ACQUIRE, self.key(value), now + self.window_s * 1000, now, now, now, self.limit
        )
        await _purge_now_and_then(now)
        return bool(rows)

    async def release(self, value: str) -> None:
        """Give back an attempt taken by `acquire` that should not count (it succeeded)."""
        await ThrottleCount.update({ThrottleCount.hits: ThrottleCount.hits - 1}).where(
            (ThrottleCount.key == self.key(value))
            & (ThrottleCount.hits > 0)
            & (ThrottleCount.window_ends_ms > _now_ms())
        )

    async def clear(self, value: str) -> None:
        """Forget every attempt of `value` (e.g. a username's failures after it signed in)."""
        await ThrottleCount.delete().where(ThrottleCount.key == self.key(value))


async def retry_after(*checks: tuple[Throttle, str]) -> int:
    """Seconds until every (throttle, value) allows another attempt, in one read; 0 = go ahead."""
    limits = {throttle.key(value): throttle.limit for throttle, value in checks}
    now = _now_ms()
    rows = await ThrottleCount.select(
        ThrottleCount.key, ThrottleCount.hits, ThrottleCount.window_ends_ms
    ).where(ThrottleCount.key.is_in(list(limits)) & (ThrottleCount.window_ends_ms > now))
    wait_ms = max(
        (r["window_ends_ms"] - now for r in rows if r["hits"] >= limits[r["key"]]),
        default=0,
    )
    return math.ceil(wait_ms / 1000)


_last_purge = 0.0


async def _purge_now_and_then(now_ms: int) -> None:
    global _last_purge
    if time.monotonic() - _last_purge > _PURGE_EVERY_S:
        _last_purge = time.monotonic()
        await ThrottleCount.delete().where(ThrottleCount.window_ends_ms <= now_ms)
