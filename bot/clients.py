"""Building the Telethon clients: session file (mode 0600), custom server, reconnect hook."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loguru import logger
from telethon import TelegramClient
from telethon.crypto import rsa
from telethon.sessions import Session, SQLiteSession

from config.settings import Settings

ReconnectCallback = Callable[[], Awaitable[None]]
SessionStore = Session  # where a client keeps its auth key: handed through, never opened, elsewhere


class MonitorClient(TelegramClient):
    """A TelegramClient that tells us when Telethon has reconnected by itself.

    Telethon does not fetch missed channel posts after an automatic reconnect,
    so the watcher catches up from the archive's own last id when this fires.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reconnect_callbacks: list[ReconnectCallback] = []

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
