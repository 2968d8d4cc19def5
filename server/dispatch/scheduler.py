"""The scheduler loop each server process runs: claim due timers atomically and act on them.

A timer is claimed and deleted in the same transaction that acts on it. On PostgreSQL the claim is
`SELECT … FOR UPDATE SKIP LOCKED`, so two processes never take the same row; on SQLite every write
transaction is IMMEDIATE, so only one process at a time can be inside one, and the second finds the
row gone. A crash before commit leaves the timer in place for the next process to pick up.

A handler may return a follow-up (a coroutine function) for what must not happen inside the claim, such
as a request to an SMS gateway: it runs in a task of its own once the claim has committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from server.db.engine import is_postgres
from server.dispatch.rules import epoch_ms
from server.dispatch.service import TIMER_HANDLERS
from server.ops.metrics import SCHEDULER_LAG
from server.periodic import repeat
from server.push.log import unit_of_work
from server.tables import Timer

log = logging.getLogger("lanshou.scheduler")

BATCH = 100
MAX_ATTEMPTS = 5
# Seconds a stopping process gives follow-ups still running before it cancels them.
FOLLOW_UP_GRACE_S = 5.0
_follow_ups: set[asyncio.Task[None]] = set()


async def claim(timer_id: int, now_ms: int) -> dict | None:  # type: ignore[type-arg]
    query = Timer.select().where((Timer.id == timer_id) & (Timer.due_ms <= now_ms))
    if is_postgres(Timer._meta.db):
        query = query.lock_rows("UPDATE", skip_locked=True)
    return await query.first()


async def fire(timer_id: int, now_ms: int) -> bool:
    """Act on one due timer; False if another process took it first."""
    follow_up: Callable[[], Awaitable[None]] | None = None
    try:
        async with unit_of_work() as uow:
            timer = await claim(timer_id, now_ms)
            if timer is None:
                return False
            await Timer.delete().where(Timer.id == timer_id)
            # Seconds past its due time, by the wall clock now (the pass may have started a while ago).
            lag_s = max(0.0, time.time() - timer["due_ms"] / 1000)
            handler = TIMER_HANDLERS.get(timer["kind"])
            if handler is not None:
                follow_up = await handler(uow, timer)
    except Exception:
        log.exception("timer %s failed; retrying later", timer_id)
        await _retry_later(timer_id, now_ms)
        return False
    SCHEDULER_LAG.observe(lag_s)  # once committed: a failed attempt is retried, and counted then
    if follow_up is not None:
        _start_follow_up(timer_id, follow_up)
    return True


def _start_follow_up(timer_id: int, follow_up: Callable[[], Awaitable[None]]) -> None:
    async def run() -> None:
        try:
            await follow_up()
        except Exception:
            log.exception("the follow-up of timer %s failed", timer_id)

    task = asyncio.create_task(run(), name=f"lanshou-timer-{timer_id}")
    _follow_ups.add(task)
    task.add_done_callback(_follow_ups.discard)


async def stop_follow_ups() -> None:
    """Let follow-ups still running finish (a few seconds at most), then cancel the rest."""
    if not _follow_ups:
        return
    _done, pending = await asyncio.wait(list(_follow_ups), timeout=FOLLOW_UP_GRACE_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _retry_later(timer_id: int, now_ms: int) -> None:
    row = await Timer.select(Timer.attempts).where(Timer.id == timer_id).first()
    if row is None:
        return
    if row["attempts"] + 1 >= MAX_ATTEMPTS:
        log.error("timer %s failed %s times; dropped", timer_id, MAX_ATTEMPTS)
        await Timer.delete().where(Timer.id == timer_id)
        return
    backoff_ms = 1000 * 2 ** row["attempts"]
    await Timer.update({Timer.attempts: row["attempts"] + 1, Timer.due_ms: now_ms + backoff_ms}).where(
        Timer.id == timer_id
    )


async def run_due(now: datetime | None = None) -> int:
    """Fire every timer due by `now`; returns how many this process acted on."""
    now_ms = epoch_ms(now or datetime.now(UTC))
    due = await Timer.select(Timer.id).where(Timer.due_ms <= now_ms).order_by(Timer.due_ms).limit(BATCH)
    fired = 0
    for row in due:
        fired += await fire(row["id"], now_ms)
    return fired


class Scheduler:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s

    async def run(self) -> None:
        try:
            await repeat(run_due, interval_s=self.interval_s, batch=BATCH, log=log)
        finally:
            await stop_follow_ups()
