"""Requests per partner API key in fixed windows, counted where every server process can see them.

Each window is `window_s` seconds aligned to the epoch (the same boundaries in every process), and each
request takes one from its key's count. The counter lives:
- in Redis when LANSHOU_CHANNELS_URL is redis://… (one pipelined INCR + EXPIRE: a fraction of a
  millisecond, and the fastest shared store a deployment may have);
- in the database when it is PostgreSQL (one upsert on throttle_counts, the same statement as
  server/throttle.py's, returning the new count);
- in this process's memory on the embedded SQLite default (one process serves it; a dict lookup).
Refused requests count too (they cost us a request as well); the count starts again with each window.

A Redis that cannot be reached does not take the API down with it: the request goes through
uncounted (logged), as the limit is a guard against floods, not a part of any answer.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from server.settings import Settings
from server.tables import ThrottleCount

log = logging.getLogger("lanshou")

_UPSERT = (
    'INSERT INTO throttle_counts ("key", hits, window_ends_ms) VALUES ({}, 1, {}) '
    'ON CONFLICT ("key") DO UPDATE SET '
    "hits = CASE WHEN throttle_counts.window_ends_ms = excluded.window_ends_ms "
    "THEN throttle_counts.hits + 1 ELSE 1 END, window_ends_ms = excluded.window_ends_ms "
    "RETURNING hits"
)


class Counter(Protocol):
    async def hit(self, partner_id: int, window: int) -> int:
        """Count one request of the partner in window number `window`; the count so far."""
        ...


class MemoryCounter:
    def __init__(self) -> None:
        self.counts: dict[int, tuple[int, int]] = {}

    async def hit(self, partner_id: int, window: int) -> int:
        seen, count = self.counts.get(partner_id, (window, 0))
        count = count + 1 if seen == window else 1
        self.counts[partner_id] = (window, count)
        return count


class DatabaseCounter:
    def __init__(self, window_s: int) -> None:
        self.window_ms = window_s * 1000

    async def hit(self, partner_id: int, window: int) -> int:
        ends_ms = (window + 1) * self.window_ms
        rows = await ThrottleCount.raw(_UPSERT, f"api-rate:{partner_id}", ends_ms)
        return int(rows[0]["hits"])


class RedisCounter:
    def __init__(self, url: str, prefix: str, window_s: int) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.prefix = f"{prefix}:api-rate:"
        self.window_s = window_s

    async def hit(self, partner_id: int, window: int) -> int:
        key = f"{self.prefix}{partner_id}:{window}"
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.window_s + 5)
                count, _ = await pipe.execute()
        except Exception as exc:  # a guard, not a dependency of the answer
            log.warning("rate limit: Redis unreachable, request not counted: %s", exc)
            return 0
        return int(count)


class RateLimit:
    """`limit` requests per partner per `window_s` (0 = no limit); see the module docstring."""

    def __init__(self, limit: int, window_s: int, counter: Counter) -> None:
        self.limit = limit
        self.window_s = window_s
        self.counter = counter

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimit:
        counter: Counter
        if settings.channels_url.startswith(("redis://", "rediss://")):
            counter = RedisCounter(
                settings.channels_url, settings.channels_prefix, settings.api_rate_window_s
            )
        elif not settings.is_sqlite:
            counter = DatabaseCounter(settings.api_rate_window_s)
        else:
            counter = MemoryCounter()
        return cls(settings.api_rate_limit, settings.api_rate_window_s, counter)

    async def check(self, partner_id: int) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """Count one request: whether it may go ahead, and the headers that say where the key stands
        (RateLimit-Limit, -Remaining, -Reset in seconds; Retry-After as well when refused)."""
        now = time.time()
        window = int(now // self.window_s)
        count = await self.counter.hit(partner_id, window)
        reset = max(1, int((window + 1) * self.window_s - now + 0.999))
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(max(0, self.limit - count)).encode()),
            (b"ratelimit-reset", str(reset).encode()),
        ]
        if count > self.limit:
            headers.append((b"retry-after", str(reset).encode()))
            return False, headers
        return True, headers
