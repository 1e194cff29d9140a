"""`python -m tests.killpoint POINT N [chanwatch args]`: chanwatch, SIGKILLed at a chosen point.

The process kills itself with SIGKILL (no cleanup, no flush, as a power cut or
the OOM killer would) the Nth time it reaches POINT:

* ``commit``   — a transaction has written posts and is about to COMMIT (mid batch)
* ``archived`` — posts and their alerts are committed, the notifier not yet woken
                 (between archive and alert)
* ``sending``  — an alert message is about to go to Telegram (its batch recorded)
* ``sent``     — Telegram has the message; the outbox does not know yet (mid delivery)
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import aiosqlite

from bot import cli, pipeline
from bot.alerts import bot_client as botmod
from storage import archive

POINTS = ("commit", "archived", "sending", "sent")


def install(point: str, nth: int) -> None:
    reached = 0

    def tick() -> None:
        nonlocal reached
        reached += 1
        if reached >= nth:
            os.kill(os.getpid(), signal.SIGKILL)

    if point == "commit":
        wrote = False
        archive_in = archive.archive_posts_in
        execute = aiosqlite.Connection.execute

        async def archive_posts_in(conn: Any, items: Any) -> Any:
            nonlocal wrote
            result = await archive_in(conn, items)
            wrote = bool(items)
            return result

        def patched_execute(self: Any, sql: str, *args: Any) -> Any:
            nonlocal wrote
            if sql == "COMMIT" and wrote:
                wrote = False
                tick()
            return execute(self, sql, *args)

        archive.archive_posts_in = archive_posts_in  # type: ignore[assignment]
        aiosqlite.Connection.execute = patched_execute  # type: ignore[method-assign]
    elif point == "archived":
        wake = pipeline.Pipeline._wake

        def patched_wake(self: Any) -> None:
            tick()
            wake(self)

        pipeline.Pipeline._wake = patched_wake  # type: ignore[method-assign]
    elif point in ("sending", "sent"):
        send = botmod.BotSender.send

        async def patched_send(self: Any, *args: Any, **kw: Any) -> Any:
            if point == "sending":
                tick()
            result = await send(self, *args, **kw)
            if point == "sent":
                tick()
            return result

        botmod.BotSender.send = patched_send  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {point!r}; one of {', '.join(POINTS)}")


if __name__ == "__main__":
    install(sys.argv[1], int(sys.argv[2]))
    sys.exit(cli.main(sys.argv[3:]))
