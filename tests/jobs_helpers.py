"""Running the real App against the simulator with its scheduled jobs driven by hand.

The client and MTProto run on real time (the protocol rejects message ids far from
it); only the jobs see the controlled clock, which starts at the real time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from bot.service.app import App
from bot.simulator import Simulator
from config.settings import Settings
from storage.models import utcnow
from tests.watch_helpers import TIMEOUT


class FakeClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@contextlib.asynccontextmanager
async def running_jobs(
    sim: Simulator, user: Any, settings: Settings, clock: FakeClock, *, scheduled: bool = False
) -> AsyncIterator[App]:
    """Start the App; its jobs (`app.jobs`) use `clock` and run only when called,
    unless `scheduled`."""
    options = {"flood_sleep_threshold": 0, "retry_delay": 0.1, "connection_retries": 5}
    app = App(
        settings,
        session=sim.session_for(user),
        client_options=options,
        page_wait=0,
        scheduled_jobs=scheduled,
    )
    task = asyncio.create_task(app.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            ready = asyncio.ensure_future(app.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()
        assert app.jobs is not None
        app.jobs.use_clock(clock)
        yield app
    finally:
        app.stop()
        async with asyncio.timeout(TIMEOUT):
            await task


async def run(coro: Any) -> Any:
    """Await one job call, bounded."""
    async with asyncio.timeout(TIMEOUT):
        return await coro
