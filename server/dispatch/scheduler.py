"""The scheduler loop each server process runs: claim due timers atomically and act on them.

A timer is claimed and deleted in the same transaction that acts on it. On PostgreSQL the claim is
`SELECT … FOR UPDATE SKIP LOCKED`, so two processes never take the same row; on SQLite every write
transaction is IMMEDIATE, so only one process at a time can be inside one, and the second finds the
row gone. A crash before commit leaves the timer in place for the next process to pick up.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from server.db.engine import is_postgres
from server.dispatch.rules import epoch_ms
from server.dispatch.service import TIMER_HANDLERS
from server.periodic import repeat
from server.push.log import unit_of_work
from server.tables import Timer

log = logging.getLogger("lanshou.scheduler")

BATCH = 100
MAX_ATTEMPTS = 5


async def claim(timer_id: int, now_ms: int) -> dict | None:  # type: ignore[type-arg]
    query = Timer.select().where((Timer.id == timer_id) & (Timer.due_ms <= now_ms))
    if is_postgres(Timer._meta.db):
        query = query.lock_rows("UPDATE", skip_locked=True)
    return await query.first()


async def fire(timer_id: int, now_ms: int) -> bool:
    """Act on one due timer; False if another process took it first."""
    try:
        async with unit_of_work() as uow:
            timer = await claim(timer_id, now_ms)
            if timer is None:
                return False
            await Timer.delete().where(Timer.id == timer_id)
            handler = TIMER_HANDLERS.get(timer["kind"])
            if handler is not None:
                await handler(uow, timer)
        return True
    except Exception:
        log.exception("timer %s failed; retrying later", timer_id)
        await _retry_later(timer_id, now_ms)
        return False


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
        await repeat(run_due, interval_s=self.interval_s, batch=BATCH, log=log)
