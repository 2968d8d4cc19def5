"""The loop behind every background worker (timers, webhooks): one pass, then a pause unless the pass
was a full batch, and a failed pass is logged and retried rather than ending the worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def repeat(
    one_pass: Callable[[], Awaitable[int]], *, interval_s: float, batch: int, log: logging.Logger
) -> None:
    while True:
        try:
            done = await one_pass()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background pass failed")
            done = 0
        # A full batch means more may be waiting: go again at once.
        if done < batch:
            await asyncio.sleep(interval_s)
