"""What every command handler gets: the services, the caller, the arguments, a way to reply.

Handlers are plain async functions over plain values: no Telethon type reaches
them, so they are tested with a real database and no network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from config.settings import ChannelSpec, Settings
from storage.db import Database
from storage.models import Channel, utcnow
from storage.subscribers import Subscriber

if TYPE_CHECKING:
    from bot.pipeline import Pipeline

Buttons = Sequence[Sequence[tuple[str, bytes]]]


class UsageError(Exception):
    """Bad arguments: the message is the one-line reply (usage or what is wrong)."""


@dataclass(frozen=True, slots=True)
class Reply:
    html: str
    buttons: Buttons | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who wrote, from where."""

    chat_id: int
    user_id: int
    is_group: bool = False
    name: str | None = None
    access_hash: int | None = None  # the sender's, as the bot sees them
    message_id: int = 0
    chat_access_hash: int | None = None  # a supergroup's, for /addgroup


class ChannelControl(Protocol):
    """Watching channels at run time (implemented by the watcher side of the app)."""

    async def watch(self, spec: ChannelSpec) -> Channel:
        """Resolve (once), join if live, catch up; raises ValueError with a reason."""
        ...

    async def unwatch(self, channel_id: int) -> None: ...

    def watched(self) -> list[Channel]: ...

    def unavailable_channels(self) -> dict[str, str]: ...


class Status(Protocol):
    """Live figures for /status."""

    def flood_waits_since(self, since: datetime) -> int: ...


@dataclass
class Services:
    db: Database
    settings: Settings
    pipeline: Pipeline
    bot_username: str = "chanwatch_bot"
    channels: ChannelControl | None = None
    status: Status | None = None
    clock: Callable[[], datetime] = utcnow
    invite_ttl: timedelta = timedelta(hours=24)
    state: dict[str, Any] = field(default_factory=dict)  # per-module memory (search pages)


@dataclass
class Context:
    services: Services
    caller: Caller
    sub: Subscriber | None
    args: str = ""
    replies: list[Reply] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def now(self) -> datetime:
        return self.services.clock()

    @property
    def tz(self) -> str:
        return self.sub.tz if self.sub else "UTC"

    @property
    def is_admin(self) -> bool:
        return self.caller.user_id in self.services.settings.admin_ids

    def reply(self, html: str, buttons: Buttons | None = None) -> None:
        self.replies.append(Reply(html, buttons))


Handler = Callable[[Context], Awaitable[None]]
PageHandler = Callable[[Context, str], Awaitable[Reply | None]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str  # shown by /help and registered with bots.setBotCommands
    usage: str  # the one-line reply to bad arguments
    handler: Handler
    admin: bool = False


REGISTRY: dict[str, Command] = {}
PAGERS: dict[str, PageHandler] = {}  # callback data prefix -> handler of button presses


# How /help and Telegram's command menu list them: an analyst's day first, admins' last.
ORDER = (
    "rule claims search recent incidents incident mute unmute quiet tz digest status start help "
    "watch unwatch channels invite revoke users addgroup"
).split()


def ordered() -> list[Command]:
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(REGISTRY.values(), key=lambda c: rank.get(c.name, len(rank)))


def command(
    name: str, summary: str, usage: str, *, admin: bool = False
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        REGISTRY[name] = Command(name, summary, usage, handler, admin)
        return handler

    return register


def pager(prefix: str) -> Callable[[PageHandler], PageHandler]:
    def register(handler: PageHandler) -> PageHandler:
        PAGERS[prefix] = handler
        return handler

    return register


def need_sub(ctx: Context) -> Subscriber:
    assert ctx.sub is not None  # the boundary lets only subscribers reach handlers
    return ctx.sub
