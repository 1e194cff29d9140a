"""Running the whole service (watcher + analysts' bot) against the simulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from telethon.helpers import add_surrogate, del_surrogate
from telethon.tl import types

from bot.alerts.alertbot import BotOptions
from bot.alerts.notifier import NotifierOptions
from bot.alerts.ratelimit import Limits
from bot.service.app import App
from bot.simulator import SimMessage, Simulator, SimUser
from config.settings import Settings
from storage import subscribers
from tests.watch_helpers import TIMEOUT, settings_for

FAST = Limits(overall_per_second=1000, chat_interval=0.0, group_interval=0.0)


def bot_settings(tmp_path: Path, bot: SimUser, admins: list[SimUser], *channels: str, **kw: Any):
    return settings_for(
        tmp_path,
        *channels,
        bot_token=bot.token,
        admin_ids=frozenset(a.id for a in admins),
        **kw,
    )


@contextlib.asynccontextmanager
async def service(
    sim: Simulator,
    monitor: SimUser,
    bot: SimUser,
    settings: Settings,
    *,
    limits: Limits | None = FAST,
    notifier: NotifierOptions | None = None,
    wrap_sender: Callable[..., Any] | None = None,
    clock: Callable[..., Any] | None = None,
    bot_client: dict[str, Any] | None = None,
) -> AsyncIterator[App]:
    """Start the App with the bot; stop it cleanly on exit."""
    fast = {"flood_sleep_threshold": 0, "retry_delay": 0.1, "connection_retries": 5}
    options = BotOptions(
        session=sim.session_for(bot),
        client_options=dict(fast) | (bot_client or {}),
        limits=limits,
        notifier=notifier or NotifierOptions(),
        wrap_sender=wrap_sender,
        scheduler=False,
    )
    if clock is not None:
        options.clock = clock
    app = App(
        settings, session=sim.session_for(monitor), client_options=fast, page_wait=0, bot=options
    )
    task = asyncio.create_task(app.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            ready = asyncio.ensure_future(app.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()
        app.task = task  # type: ignore[attr-defined]
        yield app
    finally:
        if not task.done():
            app.stop()
            async with asyncio.timeout(TIMEOUT):
                await task


async def crash(app: App) -> None:
    """Kill the service where it stands: no clean stop, nothing written afterwards."""
    task: asyncio.Task[None] = app.task  # type: ignore[attr-defined]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(TIMEOUT):
            await task


async def make_analyst(app: App, user: SimUser, name: str = "Analyst") -> None:
    """An analyst known to the database (the invite flow has its own tests)."""
    assert app.db is not None and app.pipeline is not None
    await subscribers.upsert(app.db, user.id, "analyst", name=name, access_hash=None)
    app.pipeline.audience_changed()


async def add_rule(app: App, user: SimUser, text: str) -> None:
    assert app.db is not None and app.pipeline is not None
    await subscribers.add_rule(app.db, user.id, text, None)
    app.pipeline.audience_changed()


async def ask(sim: Simulator, user: SimUser, bot: SimUser, text: str) -> SimMessage:
    """Send a command and wait for the bot's next message."""
    before = len(sim.messages_to(user, from_=bot))
    await sim.user_sends(user, bot, text)
    messages = await sim.wait_for_messages(user, from_=bot, count=before + 1, timeout=TIMEOUT)
    return messages[before]


async def received(
    sim: Simulator, user: SimUser, bot: SimUser, count: int, within: float = TIMEOUT
) -> list[SimMessage]:
    return await sim.wait_for_messages(user, from_=bot, count=count, timeout=within)


def bold_words(message: SimMessage) -> list[str]:
    """The bold parts of a received message (entity offsets are in UTF-16 units)."""
    text = add_surrogate(message.text)
    return [
        del_surrogate(text[e.offset : e.offset + e.length])
        for e in message.entities or []
        if isinstance(e, types.MessageEntityBold)
    ]


async def settled(app: App, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `check()` holds, re-checking after each archive write or outbox change."""
    assert app.pipeline is not None and app.bot is not None and app.bot.notifier is not None
    notifier = app.bot.notifier
    async with asyncio.timeout(TIMEOUT):
        while True:
            archived, handled = app.pipeline.changed, notifier.changed
            if await check():
                return
            waits = {asyncio.ensure_future(archived.wait()), asyncio.ensure_future(handled.wait())}
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()


async def statuses(app: App, user: SimUser) -> list[tuple[str, str]]:
    """(reason, status) of the user's outbox rows, in planning order."""
    assert app.db is not None
    rows = await app.db.fetchall(
        "SELECT reason, status FROM alerts WHERE chat_id = ? ORDER BY id", (user.id,)
    )
    return [(r["reason"], r["status"]) for r in rows]
