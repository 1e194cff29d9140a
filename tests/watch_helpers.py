"""Running the real service against the simulator, and waiting on the archive without sleeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.service.app import App
from bot.simulator import Simulator
from config.settings import Backfill, ChannelSpec, Settings

TIMEOUT = 15


def settings_for(tmp_path: Path, *channels: str | ChannelSpec, **kw: Any) -> Settings:
    specs = tuple(c if isinstance(c, ChannelSpec) else ChannelSpec(c) for c in channels)
    options: dict[str, Any] = {
        "api_id": 1,
        "api_hash": "0" * 32,
        "db_path": tmp_path / "archive.db",
        "channels": specs,
        "backfill": Backfill(posts=1000),
    }
    options.update(kw)
    return Settings(**options)


@contextlib.asynccontextmanager
async def running(
    sim: Simulator, user: Any, settings: Settings, **client_options: Any
) -> AsyncIterator[App]:
    """Start the App against the simulator; stop it cleanly on exit."""
    options = {"flood_sleep_threshold": 0, "retry_delay": 0.1, "connection_retries": 5}
    options.update(client_options)
    app = App(settings, session=sim.session_for(user), client_options=options, page_wait=0)
    task = asyncio.create_task(app.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            ready = asyncio.ensure_future(app.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()
        yield app
    finally:
        app.stop()
        async with asyncio.timeout(TIMEOUT):
            await task


async def eventually(app: App, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `check()` holds, re-checking after each committed archive write."""
    assert app.pipeline is not None
    async with asyncio.timeout(TIMEOUT):
        await app.pipeline.wait_until(check)
