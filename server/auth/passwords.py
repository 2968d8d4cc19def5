"""Password hashing with argon2id (argon2-cffi), always off the event loop: a hash costs tens of ms.

At most HASH_SLOTS hashes run at once per process. Without a bound, a login flood would take every
worker thread (anyio's pool is 40, shared with everything else sent to threads) and 64 MiB of memory per
hash; with it, extra attempts wait their turn and the rest of the server keeps its threads. More slots
than CPUs would not hash any faster.
"""

from __future__ import annotations

import os

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (a container's share)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


HASH_SLOTS = max(1, min(4, _cpus()))
_slots = anyio.CapacityLimiter(HASH_SLOTS)

_hasher = PasswordHasher()
# A real hash, so that a login for an unknown user costs the same time as for a known one.
_DUMMY_HASH = _hasher.hash("lanshou-timing-equaliser")


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password, limiter=_slots)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        await anyio.to_thread.run_sync(_verify, _DUMMY_HASH, password, limiter=_slots)
        return False
    return await anyio.to_thread.run_sync(_verify, password_hash, password, limiter=_slots)
