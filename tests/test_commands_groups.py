"""Group chats, through the command layer directly (the simulator has no group chats yet)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.alerts.notifier import Notifier
from bot.alerts.ratelimit import Limits, RateLimiter
from bot.commands import Caller, Dispatcher, Reply, Services
from bot.pipeline import Pipeline
from config.settings import Settings
from storage import archive, outbox, subscribers
from storage.db import open_database
from storage.models import Channel, Post

ADMIN, MEMBER, GROUP = 1, 2, -1001234


@pytest.fixture
async def db(tmp_path: Path):
    database = await open_database(tmp_path / "archive.db")
    await archive.save_channel(database, Channel(10, 1, "rdk_channel", "РДК"))
    await subscribers.sync_admins(database, frozenset({ADMIN}))
    yield database
    await database.close()


class Outbox:
    """Captures replies and sends (stands in for the bot client)."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, str]] = []
        self.sent: list[tuple[int, str, bool]] = []

    async def reply(self, to, reply: Reply) -> None:
        self.replies.append((to.chat_id, reply.html))

    async def edit(self, to, message_id: int, reply: Reply) -> None:
        self.replies.append((to.chat_id, reply.html))

    async def send(
        self, chat, html, *, random_id, reply_to=None, silent=False, buttons=None, photo=None
    ):
        self.sent.append((chat.chat_id, html, chat.is_group))
        return len(self.sent)


def dispatcher(db, out: Outbox) -> tuple[Dispatcher, Pipeline]:
    pipeline = Pipeline(db)
    services = Services(db=db, settings=Settings(admin_ids=frozenset({ADMIN})), pipeline=pipeline)
    return Dispatcher(services, out.reply, out.edit), pipeline


def in_group(user: int) -> Caller:
    return Caller(chat_id=GROUP, user_id=user, is_group=True, name="Ops room", chat_access_hash=7)


async def test_an_admin_adds_a_group_and_it_receives_alerts(db) -> None:
    out = Outbox()
    dispatch, pipeline = dispatcher(db, out)
    await dispatch.on_message(in_group(MEMBER), "/addgroup")
    await dispatch.on_message(in_group(ADMIN), "/rule add Шебекино")
    assert out.replies == []  # groups stay quiet until an admin registers them
    await dispatch.on_message(in_group(ADMIN), "/addgroup@chanwatch_bot")
    group = await subscribers.get(db, GROUP)
    assert (group.kind, group.role, group.name, group.access_hash) == (
        "group",
        "group",
        "Ops room",
        7,
    )
    await dispatch.on_message(in_group(MEMBER), "/rule add Шебекино")  # members are ignored
    await dispatch.on_message(in_group(ADMIN), "/rule add Шебекино")
    await dispatch.on_message(in_group(ADMIN), "/status@other_bot")  # not for us
    assert [text for _, text in out.replies] == [
        "This group will receive alerts. Admins can add rules here with /rule add.",
        "Rule 1 added: <code>Шебекино</code>",
    ]
    await pipeline.ingest([Post(10, 1, datetime.now(UTC), "Обстрел Шебекино")], "live")
    limiter = RateLimiter(Limits(group_interval=3.0))
    notifier = Notifier(db, out, limiter)
    await notifier._serve(GROUP)
    assert [(chat, group_) for chat, _, group_ in out.sent] == [(GROUP, True)]
    assert limiter.delay(GROUP) == pytest.approx(3.0, abs=0.2)  # 20 messages a minute
    assert await outbox.pending_count(db) == 0
