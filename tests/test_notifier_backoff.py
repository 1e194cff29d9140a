"""A chat whose delivery fails because the archive cannot be written is held back
with a growing pause instead of being retried in a hot loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from loguru import logger

from bot.alerts.notifier import Notifier, NotifierOptions
from bot.alerts.policy import Policy
from bot.alerts.ratelimit import Limits, RateLimiter
from bot.pipeline import Pipeline
from storage import archive, subscribers
from storage.db import open_database
from storage.models import Channel, Post

CHAT = 5001


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(
        self, chat, html, *, random_id, reply_to=None, silent=False, buttons=None, photo=None
    ):
        self.sent.append(html)
        return len(self.sent)


async def test_a_read_only_archive_holds_the_chat_instead_of_retrying_at_once(tmp_path: Path):
    db = await open_database(tmp_path / "a.db")
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        await archive.save_channel(db, Channel(1, 1, "rdk_channel", "РДК"))
        await subscribers.upsert(db, CHAT, "analyst", name="Ann")
        await subscribers.add_rule(db, CHAT, "Белгород", None)
        pipeline = Pipeline(db, policy=Policy(album_settle=Policy().album_settle * 0))
        post = Post(1, 10, datetime.now(UTC), "Обстрел Белгородской области", raw={"id": 10})
        await pipeline.ingest([post], "live")
        await db.execute("PRAGMA query_only = ON")  # the archive cannot be written now

        sender = RecordingSender()
        notifier = Notifier(
            db,
            sender,
            RateLimiter(Limits(overall_per_second=1000, chat_interval=0, group_interval=0)),
            options=NotifierOptions(retry_base=30.0),
        )
        await notifier._dispatch()
        workers = list(notifier._workers.values())
        assert len(workers) == 1
        async with asyncio.timeout(10):
            await asyncio.gather(*workers, return_exceptions=True)  # it fails to write
        await notifier._dispatch()  # what the run loop does right after a failure
        assert notifier._workers == {}  # held back: no new attempt right away
        assert sender.sent == []  # nothing went out that could not be recorded
        assert any("archive cannot be written" in w for w in warnings), warnings
        assert 0 < await notifier._idle_timeout() <= 30.0  # it comes back after the pause
    finally:
        logger.remove(sink)
        await db.close()
