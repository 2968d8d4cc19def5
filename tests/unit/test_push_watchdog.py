"""The push watchdog: a process whose own pings stop coming back through the backend says so."""

from __future__ import annotations

import asyncio

from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend

from server.push.hub import PushHub, stop_task


async def test_it_reports_a_stalled_backend_ends_streams_and_recovers() -> None:
    async with ChannelsPlugin(backend=MemoryChannelsBackend(), channels=["lanshou"]) as channels:
        hub = PushHub()
        runner = asyncio.create_task(hub.run(channels))
        await asyncio.wait_for(hub.ready.wait(), 5)
        watcher = asyncio.create_task(hub.watch(interval_s=0.05, deadline_s=0.3))
        try:
            await asyncio.sleep(0.5)
            assert hub.healthy

            stream = hub.attach_courier(7)
            real_publish = channels.publish
            channels.publish = lambda data, chans: None  # type: ignore[method-assign]  # the backend goes deaf
            await asyncio.sleep(0.6)
            assert hub.stalled and not hub.healthy
            assert None in await asyncio.wait_for(stream.take(), 1)  # the open stream was told to end

            channels.publish = real_publish  # type: ignore[method-assign]
            await asyncio.sleep(0.3)
            assert hub.healthy
        finally:
            await stop_task(watcher)
            await stop_task(runner)
