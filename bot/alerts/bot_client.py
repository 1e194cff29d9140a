"""The bot client: log in with the token, send alerts, receive commands and button presses.

The only module of the bot side that touches Telethon: the notifier sees a
`Sender`, the commands see plain text and `Reply` objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loguru import logger
from telethon import Button, TelegramClient, errors, events, functions, types, utils
from telethon.extensions import html as tg_html
from telethon.sessions import Session, SQLiteSession

from bot.alerts.notifier import (
    AlreadySent,
    Blocked,
    Buttons,
    FloodWait,
    Transient,
    Undeliverable,
)
from bot.clients import apply_server, secure_session_file
from bot.commands.base import Caller
from config.settings import Settings
from storage.subscribers import Subscriber

_BLOCKED = (
    errors.UserIsBlockedError,
    errors.UserDeactivatedError,
    errors.InputUserDeactivatedError,
    errors.UserDeactivatedBanError,
)
_UNDELIVERABLE = (
    errors.PeerIdInvalidError,
    errors.UserIdInvalidError,
    errors.ChatWriteForbiddenError,
    errors.ChatIdInvalidError,
    errors.ChannelPrivateError,
    errors.MessageTooLongError,
    errors.MessageEmptyError,
    errors.EntityBoundsInvalidError,
)


def bot_session_path(settings: Settings) -> Path:
    """The bot's session file sits next to the user's: `user.session` -> `user-bot.session`."""
    path = settings.session_path
    stem = path.name.removesuffix(".session")
    return path.with_name(stem + "-bot.session")


def bot_client(
    settings: Settings, session: Session | None = None, **overrides: Any
) -> TelegramClient:
    if session is None:
        session = SQLiteSession(str(secure_session_file(bot_session_path(settings))))
    apply_server(session, settings)
    assert settings.api_id is not None and settings.api_hash is not None
    options: dict[str, Any] = {
        "flood_sleep_threshold": 0,  # FloodWait reaches the notifier, which paces the chat
        "connection_retries": 10,
        "retry_delay": 2,
        "auto_reconnect": True,
        "sequential_updates": False,
        "raise_last_call_error": True,  # the real error, not "Request was unsuccessful"
    }
    options.update(overrides)
    return TelegramClient(session, settings.api_id, settings.api_hash, **options)


class BotLoginError(Exception):
    """The bot could not log in; the message says what to fix (never the token)."""


async def log_in(client: TelegramClient, token: str | None) -> types.User:
    """Connect and, for a new session, log in with the bot token (never logged)."""
    await client.connect()
    if not await client.is_user_authorized():
        if not token:
            raise BotLoginError(
                "the bot session is not logged in and CHANWATCH_BOT_TOKEN is not set"
            )
        try:
            await client.sign_in(bot_token=token)
        except (errors.AccessTokenInvalidError, errors.AccessTokenExpiredError) as exc:
            raise BotLoginError(
                f"Telegram refused the bot token ({exc.__class__.__name__}); "
                "check CHANWATCH_BOT_TOKEN with @BotFather"
            ) from None
    me = await client.get_me()
    if not getattr(me, "bot", False):
        raise BotLoginError("the bot session belongs to a user account, not a bot")
    return me


def input_peer(chat: Subscriber) -> types.TypeInputPeer:
    if chat.kind == "user":
        return types.InputPeerUser(chat.chat_id, chat.access_hash or 0)
    real_id, kind = utils.resolve_id(chat.chat_id)
    if kind is types.PeerChat:
        return types.InputPeerChat(real_id)
    return types.InputPeerChannel(real_id, chat.access_hash or 0)


def reply_markup(buttons: Buttons | None) -> types.ReplyInlineMarkup | None:
    if not buttons:
        return None
    return types.ReplyInlineMarkup(
        rows=[
            types.KeyboardButtonRow(buttons=[Button.inline(label, data) for label, data in row])
            for row in buttons
        ]
    )


def _sent_id(result: Any, random_id: int) -> int | None:
    if isinstance(result, types.UpdateShortSentMessage):
        return result.id
    updates = getattr(result, "updates", None) or []
    for update in updates:
        if isinstance(update, types.UpdateMessageID) and update.random_id == random_id:
            return update.id
    for update in updates:
        if isinstance(update, types.UpdateNewMessage | types.UpdateNewChannelMessage):
            return update.message.id
    return None


class BotSender:
    """Sends HTML messages with our own random id and maps Telegram's answers."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client

    async def send(
        self,
        chat: Subscriber,
        html: str,
        *,
        random_id: int,
        reply_to: int | None = None,
        silent: bool = False,
        buttons: Buttons | None = None,
        photo: bytes | None = None,
    ) -> int:
        """`photo`: a PNG sent as a photo with `html` as its caption."""
        text, entities = tg_html.parse(html)
        try:
            if photo is not None:
                uploaded = await self.client.upload_file(photo, file_name="chart.png")
                request: Any = functions.messages.SendMediaRequest(
                    peer=input_peer(chat),
                    media=types.InputMediaUploadedPhoto(file=uploaded),
                    message=text,
                    random_id=random_id,
                    silent=silent or None,
                    entities=entities or None,
                )
            else:
                request = functions.messages.SendMessageRequest(
                    peer=input_peer(chat),
                    message=text,
                    random_id=random_id,
                    no_webpage=True,
                    silent=silent or None,
                    reply_to=types.InputReplyToMessage(reply_to) if reply_to else None,
                    entities=entities or None,
                    reply_markup=reply_markup(buttons),
                )
            result = await self.client(request)
        except errors.FloodWaitError as exc:
            raise FloodWait(exc.seconds) from None
        except errors.RandomIdDuplicateError:
            raise AlreadySent() from None
        except _BLOCKED as exc:
            raise Blocked(exc.__class__.__name__) from None
        except _UNDELIVERABLE as exc:
            raise Undeliverable(exc.__class__.__name__) from None
        except errors.RPCError as exc:
            if exc.code is not None and exc.code >= 500:
                raise Transient(exc.__class__.__name__) from None
            raise Undeliverable(exc.__class__.__name__) from None
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise Transient(exc.__class__.__name__) from None
        except ValueError as exc:  # Telethon: "Request was unsuccessful N time(s)"
            raise Transient(str(exc)) from None
        message_id = _sent_id(result, random_id)
        if message_id is None:
            raise Transient("no message id in the answer")
        return message_id


# --- incoming ------------------------------------------------------------------


MessageHandler = Callable[[Caller, str], Awaitable[None]]
CallbackHandler = Callable[[Caller, bytes], Awaitable[str | None]]


def _name(sender: Any) -> str | None:
    if sender is None:
        return None
    parts = [getattr(sender, "first_name", None), getattr(sender, "last_name", None)]
    name = " ".join(p for p in parts if p) or getattr(sender, "title", None)
    username = getattr(sender, "username", None)
    if username:
        name = f"{name} (@{username})" if name else f"@{username}"
    return name


def _access_hash(peer: Any) -> int | None:
    return getattr(peer, "access_hash", None)


def attach(
    client: TelegramClient, on_message: MessageHandler, on_callback: CallbackHandler
) -> None:
    """Route incoming messages and button presses to the commands layer."""

    async def message(event: events.NewMessage.Event) -> None:
        if event.out or not event.raw_text:
            return
        sender = await event.get_sender()
        if getattr(sender, "bot", False):
            return
        input_sender = await event.get_input_sender()
        input_chat = None if event.is_private else await event.get_input_chat()
        chat = None if event.is_private else await event.get_chat()
        caller = Caller(
            chat_id=event.chat_id,
            user_id=event.sender_id,
            is_group=not event.is_private,
            name=_name(chat if chat is not None else sender),
            access_hash=_access_hash(input_sender),
            message_id=event.message.id,
            chat_access_hash=_access_hash(input_chat),
        )
        try:
            await on_message(caller, event.raw_text)
        except Exception:
            logger.bind(chat=caller.chat_id).exception("handling a message failed")

    async def callback(event: events.CallbackQuery.Event) -> None:
        sender = await event.get_sender()
        input_sender = await event.get_input_sender()
        caller = Caller(
            chat_id=event.chat_id,
            user_id=event.sender_id,
            is_group=not event.is_private,
            name=_name(sender),
            access_hash=_access_hash(input_sender),
            message_id=event.message_id,
        )
        try:
            answer = await on_callback(caller, event.data or b"")
        except Exception:
            logger.exception("button press failed")
            answer = "Sorry, that did not work."
        await event.answer(answer or "")

    client.add_event_handler(message, events.NewMessage(incoming=True))
    client.add_event_handler(callback, events.CallbackQuery())


async def set_commands(client: TelegramClient, commands: list[tuple[str, str]]) -> None:
    await client(
        functions.bots.SetBotCommandsRequest(
            scope=types.BotCommandScopeDefault(),
            lang_code="",
            commands=[types.BotCommand(command=name, description=text) for name, text in commands],
        )
    )


async def edit_message(
    client: TelegramClient,
    chat: Subscriber,
    message_id: int,
    html: str,
    buttons: Buttons | None = None,
) -> None:
    text, entities = tg_html.parse(html)
    try:
        await client(
            functions.messages.EditMessageRequest(
                peer=input_peer(chat),
                id=message_id,
                message=text,
                no_webpage=True,
                entities=entities or None,
                reply_markup=reply_markup(buttons),
            )
        )
    except errors.MessageNotModifiedError:
        pass
