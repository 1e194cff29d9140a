"""The analysts' side of the service: bot client, notifier, commands and scheduled digests.

Built and started by the App when a bot token (or a bot session) is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger
from telethon import TelegramClient
from telethon.sessions import Session

from bot.alerts import bot_client as tg
from bot.alerts.digest import build_scheduler
from bot.alerts.notifier import (
    DeliveredListener,
    Notifier,
    NotifierOptions,
    Sender,
    SendError,
)
from bot.alerts.ratelimit import Limits, RateLimiter
from bot.commands import Caller, Dispatcher, Reply, Services, bot_commands
from bot.commands.base import ChannelControl
from bot.pipeline import Pipeline
from config.settings import Settings
from storage import subscribers
from storage.db import Database
from storage.models import utcnow
from storage.subscribers import Subscriber

BACKOFF_MAX = 300.0


@dataclass
class BotOptions:
    """How to run the bot side; the defaults are production's."""

    session: Session | None = None  # default: a file next to the user session
    client_options: dict[str, Any] = field(default_factory=dict)
    limits: Limits | None = None
    notifier: NotifierOptions | None = None
    wrap_sender: Callable[[Sender], Sender] | None = None  # tests inject faults here
    scheduler: bool = True
    clock: Callable[[], datetime] = utcnow


class AlertBot:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        pipeline: Pipeline,
        options: BotOptions,
        *,
        channels: ChannelControl | None = None,
        flood_waits: Callable[[datetime], int] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.pipeline = pipeline
        self.options = options
        self.channels = channels
        self._other_flood_waits = flood_waits
        self.client: TelegramClient | None = None
        self.notifier: Notifier | None = None
        self.dispatcher: Dispatcher | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.username = "bot"
        self.listeners: list[DeliveredListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Log in, register commands, start delivering (what is pending goes first)."""
        await subscribers.sync_admins(self.db, self.settings.admin_ids)
        self.client = tg.bot_client(
            self.settings, self.options.session, **self.options.client_options
        )
        me = await tg.log_in(self.client, self.settings.bot_token)
        self.username = me.username or str(me.id)
        sender: Sender = tg.BotSender(self.client)
        if self.options.wrap_sender is not None:
            sender = self.options.wrap_sender(sender)
        self.notifier = Notifier(
            self.db,
            sender,
            RateLimiter(self.options.limits),
            options=self.options.notifier,
            clock=self.options.clock,
            on_blocked=lambda _chat: self.pipeline.audience_changed(),
        )
        self.notifier.listeners.extend(self.listeners)
        self.pipeline.on_alerts(self.notifier.wake)
        services = Services(
            db=self.db,
            settings=self.settings,
            pipeline=self.pipeline,
            bot_username=self.username,
            channels=self.channels,
            status=self,
            clock=self.options.clock,
        )
        self.dispatcher = Dispatcher(services, send=self._reply, edit=self._edit)
        tg.attach(self.client, self.dispatcher.on_message, self.dispatcher.on_callback)
        await tg.set_commands(self.client, bot_commands())
        self._tasks.append(asyncio.create_task(self.notifier.run(), name="notifier"))
        self._tasks.append(asyncio.create_task(self._stay_connected(), name="bot-connection"))
        if self.options.scheduler:
            self.scheduler = build_scheduler(self.db, self.notifier, self.options.clock)
            self.scheduler.start()
        logger.bind(bot=self.username).info("bot @{name} is up", name=self.username)

    def add_listener(self, listener: DeliveredListener) -> None:
        """Called with every delivered alert message (demo, benchmarks, tests)."""
        self.listeners.append(listener)
        if self.notifier is not None:
            self.notifier.listeners.append(listener)

    def flood_waits_since(self, since: datetime) -> int:
        own = self.notifier.flood_waits_since(since) if self.notifier else 0
        other = self._other_flood_waits(since) if self._other_flood_waits else 0
        return own + other

    async def _stay_connected(self) -> None:
        """Telethon reconnects by itself; when it gives up, reconnect with backoff."""
        assert self.client is not None
        delay = 1.0
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):
                await self.client.disconnected
            if self._stopping.is_set():
                return
            logger.warning("bot connection lost; reconnecting in {delay:.0f} s", delay=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            try:
                await self.client.connect()
                delay = 1.0
                if self.notifier is not None:
                    self.notifier.wake()
            except (OSError, ConnectionError, TimeoutError):
                delay = min(delay * 2, BACKOFF_MAX)

    async def _reply(self, to: Subscriber, reply: Reply) -> None:
        assert self.notifier is not None
        try:
            await self.notifier.send(
                to, reply.html, key=f"reply:{uuid.uuid4().hex}", buttons=reply.buttons
            )
        except SendError as exc:
            logger.bind(chat=to.chat_id).warning(
                "could not answer a command: {error}", error=str(exc) or exc.__class__.__name__
            )

    async def _edit(self, to: Subscriber, message_id: int, reply: Reply) -> None:
        assert self.client is not None and self.notifier is not None
        await self.notifier.limiter.acquire(to.chat_id, to.is_group)
        await tg.edit_message(self.client, to, message_id, reply.html, reply.buttons)

    async def stop(self, graceful: bool = True) -> None:
        """Stop; `graceful` lets messages being sent finish and be recorded first."""
        self._stopping.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if graceful and self.notifier is not None:
            await self.notifier.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.disconnect()


__all__ = ["AlertBot", "BotOptions", "Caller"]
