"""The one door into the commands: who may use them, parsing, and the error boundary.

Admins (CHANWATCH_ADMINS) and invited analysts may use the bot; `/start <code>`
redeems an invitation; anyone else gets one polite refusal and a log line. A
bad argument gets a one-line reply; a bug gets a short apology and a logged
traceback, never a stack trace in the chat.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

from loguru import logger

# importing the topic modules registers their commands
from bot.commands import (  # noqa: F401
    access,
    archive,
    channels,
    incidents,
    prefs,
    rules,
    status,
)
from bot.commands.base import (
    PAGERS,
    REGISTRY,
    Caller,
    Context,
    Reply,
    Services,
    UsageError,
    ordered,
)
from storage import subscribers
from storage.subscribers import Subscriber

REFUSAL = "Sorry, this is a private bot. Ask an admin of this chanwatch instance for an invitation."
NOT_A_COMMAND = "I only understand commands; /help lists them."
FAILED = "Sorry, /{name} failed on our side; the error was logged."

SendReply = Callable[[Subscriber, Reply], Awaitable[None]]
EditReply = Callable[[Subscriber, int, Reply], Awaitable[None]]


def bot_commands() -> list[tuple[str, str]]:
    """(command, description) for bots.setBotCommands."""
    return [(c.name, c.summary) for c in ordered()]


def split_command(text: str, bot_username: str) -> tuple[str, str] | None:
    """`/rule@mybot add x` -> ("rule", "add x"); None for other bots' commands or plain text."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    head, _, rest = stripped.partition(" ")
    if "\n" in head:
        head, _, more = head.partition("\n")
        rest = more + " " + rest
    name, _, target = head[1:].partition("@")
    if target and target.lower() != bot_username.lower():
        return None
    return name.lower(), rest.strip()


class Dispatcher:
    def __init__(self, services: Services, send: SendReply, edit: EditReply) -> None:
        self.services = services
        self.send = send
        self.edit = edit

    @property
    def db(self):  # noqa: ANN201 - shorthand
        return self.services.db

    async def on_message(self, caller: Caller, text: str) -> None:
        parsed = split_command(text, self.services.bot_username)
        sub = await self._authorize(caller, parsed)
        if sub is None:
            return
        ctx = Context(self.services, caller, sub)
        if parsed is None:
            ctx.reply(NOT_A_COMMAND)
        else:
            await self._run(ctx, *parsed)
        await self._flush(ctx, sub)

    async def _authorize(self, caller: Caller, parsed: tuple[str, str] | None) -> Subscriber | None:
        settings = self.services.settings
        log = logger.bind(user=caller.user_id, chat=caller.chat_id)
        if caller.is_group:
            return await self._authorize_group(caller, parsed)
        sub = await subscribers.get(self.db, caller.user_id)
        if sub is None and caller.user_id in settings.admin_ids:
            sub = await subscribers.upsert(self.db, caller.user_id, "admin")
        if sub is not None and not sub.active and sub.inactive_reason == "blocked the bot":
            await subscribers.reactivate(self.db, caller.user_id)  # they unblocked and wrote
            self.services.pipeline.audience_changed()
            sub = await subscribers.get(self.db, caller.user_id)
        if sub is not None and sub.active:
            if caller.name != sub.name or caller.access_hash != sub.access_hash:
                await subscribers.seen(
                    self.db, sub.chat_id, name=caller.name, access_hash=caller.access_hash
                )
            return sub
        guest = Subscriber(
            chat_id=caller.user_id,
            role="analyst",
            name=caller.name,
            access_hash=caller.access_hash,
        )
        if parsed is not None and parsed[0] == "start" and parsed[1]:
            ctx = Context(self.services, caller, None)
            await access.redeem(ctx, parsed[1].split()[0])
            await self._flush(ctx, guest)
            return None
        seen = await subscribers.note_stranger(self.db, caller.user_id, caller.name)
        if seen.first:
            log.warning(
                "refused {name} (id {id}): not invited", name=caller.name, id=caller.user_id
            )
            await self.send(guest, Reply(REFUSAL))
        elif seen.notify:  # one line per stranger per quiet period; the count is in strangers
            log.info(
                "uninvited {id} keeps writing: {messages} messages, {bad} wrong codes so far",
                id=caller.user_id,
                messages=seen.messages,
                bad=seen.bad_codes,
            )
        return None

    async def _authorize_group(
        self, caller: Caller, parsed: tuple[str, str] | None
    ) -> Subscriber | None:
        if parsed is None or caller.user_id not in self.services.settings.admin_ids:
            return None  # groups are quiet: only admins' commands get an answer
        group = await subscribers.get(self.db, caller.chat_id)
        if group is not None and group.active:
            return group
        if parsed[0] == "addgroup":
            return Subscriber(chat_id=caller.chat_id, role="group", kind="group")
        logger.bind(chat=caller.chat_id).info("ignored a command in an unregistered group")
        return None

    async def _run(self, ctx: Context, name: str, args: str) -> None:
        cmd = REGISTRY.get(name)
        if cmd is None:
            ctx.reply(f"Unknown command /{name}. /help lists the commands.")
            return
        if cmd.admin and not ctx.is_admin:
            ctx.reply(f"Only admins can use /{name}.")
            return
        ctx.args = args
        log = logger.bind(chat=ctx.caller.chat_id, command=name)
        try:
            await cmd.handler(ctx)
        except UsageError as exc:
            # Usage lines hold <placeholders> and errors echo what was typed: plain
            # text, escaped for the HTML replies are sent as.
            ctx.replies.clear()
            ctx.reply(html.escape(str(exc) or cmd.usage, quote=False))
        except Exception:
            log.exception("command /{name} failed", name=name)
            ctx.replies.clear()
            ctx.reply(FAILED.format(name=name))

    async def _flush(self, ctx: Context, to: Subscriber) -> None:
        for reply in ctx.replies:
            await self.send(to, reply)
        ctx.replies.clear()

    async def on_callback(self, caller: Caller, data: bytes) -> str | None:
        """A button press: the pager named by the data's prefix answers by editing the
        message; returns the short notice Telegram shows (or None)."""
        sub = await subscribers.get(self.db, caller.chat_id)
        if sub is None or not sub.active:
            return "Not available."
        prefix, _, rest = data.decode("utf-8", "replace").partition(":")
        handler = PAGERS.get(prefix)
        if handler is None:
            return "This button no longer works."
        ctx = Context(self.services, caller, sub)
        try:
            reply = await handler(ctx, rest)
        except UsageError as exc:
            return str(exc)[:190]
        except Exception:
            logger.bind(chat=caller.chat_id).exception("button press failed")
            return "Sorry, that failed; the error was logged."
        if reply is None:
            return "This search has expired; run it again."
        await self.edit(sub, caller.message_id, reply)
        return None
