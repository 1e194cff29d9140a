"""Building the Telethon clients: session file (mode 0600), custom server, reconnect hook,
the FloodWait gate every request of the user client passes, and its update box, which
hands on what a channel difference carries."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from loguru import logger
from telethon import TelegramClient, errors, utils
from telethon._updates import MessageBox
from telethon.crypto import rsa
from telethon.sessions import Session, SQLiteSession
from telethon.tl import types
from telethon.tl.tlobject import TLRequest

from bot.floodgate import FloodGate
from config.settings import Settings

ReconnectCallback = Callable[[], Awaitable[None]]
SessionStore = Session  # where a client keeps its auth key: handed through, never opened, elsewhere
# Telegram names the request a FloodWait applies to; slow mode applies to one chat.
_KIND_WIDE = (errors.FloodWaitError, errors.FloodPremiumWaitError, errors.FloodTestPhoneWaitError)


FloodWaitHook = Callable[[errors.RPCError], None]
_PATIENT: ContextVar[FloodWaitHook | None] = ContextVar("chanwatch_patient", default=None)


@contextlib.contextmanager
def waiting_out_flood_waits(on_flood_wait: FloodWaitHook) -> Iterator[None]:
    """Requests made inside (by this task) wait out every FloodWait at the gate and are
    sent again, instead of raising: an iteration over history just pauses. Each
    FloodWait Telegram answers above the sleep threshold is told to `on_flood_wait`
    (to log and count it); requests held back by a wait already known wait silently."""
    token = _PATIENT.set(on_flood_wait)
    try:
        yield
    finally:
        _PATIENT.reset(token)


class HeldForFloodWait(errors.FloodWaitError):
    """Not sent: Telegram's wait for this kind of request, asked for earlier (perhaps by
    another channel's work), is still running. `seconds` is what is left of it."""


def request_kind(request: TLRequest) -> str:
    """`messages.GetHistoryRequest`, `contacts.ResolveUsernameRequest`, ..."""
    module = type(request).__module__.rsplit(".", 1)[-1]
    return f"{module}.{type(request).__name__}"


def _chat_of(request: TLRequest) -> int | None:
    peer = getattr(request, "peer", None)
    if peer is None:
        return None
    try:
        return utils.get_peer_id(peer)
    except (TypeError, ValueError):
        return None


# What a channel difference may carry that the service handles.
_CHANNEL_UPDATES = (
    types.UpdateNewChannelMessage,
    types.UpdateEditChannelMessage,
    types.UpdateDeleteChannelMessages,
)


class _WholeDifferenceBox(MessageBox):
    """Telethon's update box, handing the event handlers the edits and deletions of
    every channel difference.

    Telethon 1.45 fills a gap in a channel's updates with `updates.getChannelDifference`,
    then takes the difference's pts *before* it goes through the updates the difference
    carries (`other_updates`), so it skips each of them as already seen ("Skipping update
    since local pts 9 > pts=9"): only the difference's new messages reached the handlers,
    and its edits and deletions waited for the next reconcile. The server sends them in
    order and once, so they are passed on after the new messages, as if pushed. An
    update Telethon did pass on is not passed twice."""

    __slots__ = ()

    def apply_channel_difference(self, request: Any, diff: Any, chat_hashes: Any) -> Any:
        updates, users, chats = super().apply_channel_difference(request, diff, chat_hashes)
        if isinstance(diff, types.updates.ChannelDifference):
            passed = {id(update) for update in updates}
            updates.extend(
                update
                for update in diff.other_updates
                if isinstance(update, _CHANNEL_UPDATES) and id(update) not in passed
            )
        return updates, users, chats


class MonitorClient(TelegramClient):
    """A TelegramClient that tells us when Telethon has reconnected by itself, and that
    never sends a request Telegram asked it to hold back.

    Telethon does not fetch missed channel posts after an automatic reconnect,
    so the watcher catches up from the archive's own last id when this fires.

    Every request passes `flood_gate`: after a FloodWait no request of that kind (in
    that chat, for slow mode) is sent until the wait is over, whoever asks. Waits up to
    `flood_sleep_threshold` are slept inside the request, as Telethon does, but at the
    gate; longer ones raise FloodWaitError (HeldForFloodWait for a request that was not
    sent because an earlier wait is still running), except inside
    `waiting_out_flood_waits()`, where every wait is waited out at the gate. Telethon's
    own bookkeeping lets a request through up to 3 s before the wait ends; the gate
    does not.
    """

    def __init__(self, *args: Any, flood_sleep_threshold: int = 60, **kwargs: Any) -> None:
        # Telethon must hand every FloodWait to __call__ below instead of sleeping on it
        super().__init__(*args, flood_sleep_threshold=0, **kwargs)
        self.flood_sleep_limit = flood_sleep_threshold
        self.flood_gate = FloodGate()
        self.reconnect_callbacks: list[ReconnectCallback] = []
        # still empty: it is filled from the session on connect
        self._message_box = _WholeDifferenceBox(self._log["messagebox"])

    async def _call(  # Telethon's one way out for every request (downloads too), 1.45.x
        self,
        sender: Any,
        request: Any,
        ordered: bool = False,
        flood_sleep_threshold: int | None = None,
    ) -> Any:
        threshold = flood_sleep_threshold
        if threshold is None:
            threshold = self.flood_sleep_limit
        requests = list(request) if utils.is_list_like(request) else [request]
        patient = _PATIENT.get()
        while True:
            for one in requests:
                kind, chat = request_kind(one), _chat_of(one)
                left = self.flood_gate.remaining(kind, chat)
                if left > threshold and patient is None:
                    raise HeldForFloodWait(request=one, capture=math.ceil(left))
                await self.flood_gate.wait(kind, chat)  # sent together when it opens
            try:
                return await super()._call(sender, request, ordered=ordered)
            except (*_KIND_WIDE, errors.SlowModeWaitError) as exc:
                failed = exc.request if isinstance(exc.request, TLRequest) else requests[0]
                scope = _chat_of(failed) if isinstance(exc, errors.SlowModeWaitError) else None
                self.flood_gate.close(request_kind(failed), exc.seconds, scope)
                if exc.seconds > threshold:
                    if patient is None:
                        raise
                    patient(exc)
                    continue  # wait at the gate, then send it again
                logger.bind(request=request_kind(failed)).info(
                    "FloodWait of {seconds} s on {kind}; waiting inside the request",
                    seconds=exc.seconds,
                    kind=request_kind(failed),
                )

    async def _handle_auto_reconnect(self) -> None:  # Telethon's hook, pinned to 1.45.x
        await super()._handle_auto_reconnect()
        for callback in self.reconnect_callbacks:
            asyncio.get_running_loop().create_task(callback())


def secure_session_file(path: Path) -> Path:
    """Create the session file (and its folder) with owner-only permissions.

    Telethon appends `.session` when the name lacks it; the returned path is the
    real file so the mode can be checked.
    """
    real = path if path.suffix == ".session" else path.with_name(path.name + ".session")
    real.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(real, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(real, 0o600)
    return real


def file_session(settings: Settings) -> SQLiteSession:
    real = secure_session_file(settings.session_path)
    return SQLiteSession(str(real))


def apply_server(session: Session, settings: Settings) -> None:
    """Point the session at a custom server (test DCs, self-hosted, the simulator)."""
    if settings.server is None:
        return
    if settings.server_key:
        rsa.add_key(settings.server_key, old=False)
    if (session.server_address, session.port) != (settings.server.host, settings.server.port):
        session.set_dc(settings.server.dc_id, settings.server.host, settings.server.port)
        logger.bind(dc=settings.server.dc_id).info(
            "using custom server {host}:{port}",
            host=settings.server.host,
            port=settings.server.port,
        )


def user_client(
    settings: Settings, session: Session | None = None, **overrides: Any
) -> MonitorClient:
    """The user-account client that reads channels."""
    session = session if session is not None else file_session(settings)
    apply_server(session, settings)
    assert settings.api_id is not None and settings.api_hash is not None
    options: dict[str, Any] = {
        "flood_sleep_threshold": settings.flood_sleep_threshold,
        "connection_retries": 10,
        "retry_delay": 2,
        "auto_reconnect": True,
        "sequential_updates": False,
    }
    options.update(overrides)
    return MonitorClient(session, settings.api_id, settings.api_hash, **options)


class NotLoggedIn(Exception):
    """The session file holds no logged-in account; the message says which case."""


async def logged_in_account(
    settings: Settings, session_file: Path, *, request_timeout: float
) -> tuple[str, int]:
    """(first name, id) of the account a session file is logged in as, checked on the server.

    Raises NotLoggedIn, or OSError/TimeoutError/ConnectionError/EOFError when the server
    cannot be reached."""
    session = SQLiteSession(str(session_file))
    try:
        if not session.auth_key:  # an AuthKey without data is falsy
            raise NotLoggedIn("the session was never logged in")
        client = user_client(settings, session, connection_retries=1, timeout=request_timeout)
        try:
            await client.connect()
            if not await client.is_user_authorized():
                raise NotLoggedIn("the session has no logged-in account")
            me = await client.get_me()
        finally:
            await client.disconnect()
    finally:
        session.close()
    return me.first_name, me.id
