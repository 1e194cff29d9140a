"""Crashes around delivery: nothing lost, and no copy shown twice where Telegram can tell.

An alert is planned in the transaction that archives its post, so a crash before
the send leaves a pending row that the next start delivers. A crash after the
send but before the row is marked sent makes the next start send it again, with
the same random id; Telegram drops a message whose random id it has already seen
(RANDOM_ID_DUPLICATE), so the analyst sees it once. Against a server that keeps
no random ids (the simulator by default) the bound is one duplicate per message
in flight at the crash.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.soak import alerts_in
from bot.alerts.notifier import AlreadySent
from bot.simulator import Simulator
from storage.db import open_database
from tests.bot_helpers import (
    add_rule,
    bot_settings,
    crash,
    make_analyst,
    received,
    service,
    settled,
    statuses,
)
from tests.watch_helpers import TIMEOUT


@pytest.fixture
def settings(tmp_path: Path, bot, admin, rdk):
    return bot_settings(tmp_path, bot, [admin], "rdk_channel")


class Freeze:
    """A sender that stops the world before or after the first real send."""

    def __init__(self, when: str) -> None:
        self.when = when
        self.reached = asyncio.Event()
        self.random_ids: list[int] = []

    def wrap(self, sender):
        freeze = self

        class Frozen:
            async def send(self, chat, html, **kw):
                freeze.random_ids.append(kw["random_id"])
                if freeze.when == "before":
                    freeze.reached.set()
                    await asyncio.Event().wait()  # the process dies here
                message_id = await sender.send(chat, html, **kw)
                freeze.reached.set()
                await asyncio.Event().wait()  # ... or here
                return message_id

        return Frozen()


class TelegramDedup:
    """Answers a repeated random id the way Telegram does (RANDOM_ID_DUPLICATE).

    It stands for the server, so it outlives the crashed process."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def wrap(self, sender):
        dedup = self

        class Deduplicating:
            async def send(self, chat, html, **kw):
                if kw["random_id"] in dedup.seen:
                    raise AlreadySent()
                message_id = await sender.send(chat, html, **kw)
                dedup.seen.add(kw["random_id"])
                return message_id

        return Deduplicating()


async def _crash_once(sim, monitor, bot, ann, rdk, settings, freeze, wrap=None):
    inner = wrap or (lambda s: s)
    async with service(
        sim, monitor, bot, settings, wrap_sender=lambda s: freeze.wrap(inner(s))
    ) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        sim.post(rdk, "Обстрел Шебекино")
        async with asyncio.timeout(TIMEOUT):
            await freeze.reached.wait()
        await crash(app)


async def test_crash_between_outbox_write_and_send(sim, monitor, bot, admin, ann, rdk, settings):
    freeze = Freeze("before")
    await _crash_once(sim, monitor, bot, ann, rdk, settings, freeze)
    assert sim.messages_to(ann, from_=bot) == []
    async with service(sim, monitor, bot, settings) as app:
        (alert,) = await received(sim, ann, bot, 1)
        assert "Обстрел Шебекино" in alert.text
        await settled(app, lambda: _all_sent(app, ann))
        sim.post(rdk, "Шебекино: всё спокойно")  # and the service goes on
        await received(sim, ann, bot, 2)
    assert len(sim.messages_to(ann, from_=bot)) == 2


async def test_crash_between_send_and_mark_delivered_shows_the_alert_once(
    sim, monitor, bot, admin, ann, rdk, settings
):
    server = TelegramDedup()
    freeze = Freeze("after")
    await _crash_once(sim, monitor, bot, ann, rdk, settings, freeze, wrap=server.wrap)
    assert len(sim.messages_to(ann, from_=bot)) == 1
    resent: list[int] = []

    def spy(sender):
        class Spy:
            async def send(self, chat, html, **kw):
                resent.append(kw["random_id"])
                return await sender.send(chat, html, **kw)

        return Spy()

    async with service(
        sim, monitor, bot, settings, wrap_sender=lambda s: spy(server.wrap(s))
    ) as app:
        await settled(app, lambda: _all_sent(app, ann))
        assert resent == freeze.random_ids  # the same message, under the same random id
    assert len(sim.messages_to(ann, from_=bot)) == 1


async def test_an_edit_after_a_resend_refused_as_duplicate_names_its_post_and_is_no_new_alert(
    sim, monitor, bot, admin, ann, rdk, settings
):
    # The resend after the crash is refused (RANDOM_ID_DUPLICATE), so the service never
    # learns the alert's message id: the edit's follow-up cannot reply to it and names
    # the post instead. It is still a follow-up, not a second alert on the post.
    server = TelegramDedup()
    await _crash_once(sim, monitor, bot, ann, rdk, settings, Freeze("after"), wrap=server.wrap)
    (first,) = sim.messages_to(ann, from_=bot)
    async with service(sim, monitor, bot, settings, wrap_sender=server.wrap) as app:
        await settled(app, lambda: _all_sent(app, ann))
        (post,) = rdk.live_messages_desc()
        sim.edit(rdk, post.id, "Обстрел Шебекино, двое раненых")
        _, followup = await received(sim, ann, bot, 2)
    assert followup.reply_to is None
    assert "✏️ edited" in followup.text and "двое раненых" in followup.text
    assert alerts_in(sim.messages_to(ann, from_=bot)) == alerts_in([first])
    assert sum(alerts_in([first]).values()) == 1


async def test_without_telegrams_dedup_a_crash_after_send_costs_at_most_one_duplicate(
    sim, monitor, bot, admin, ann, rdk, settings
):
    freeze = Freeze("after")
    await _crash_once(sim, monitor, bot, ann, rdk, settings, freeze)
    async with service(sim, monitor, bot, settings) as app:
        await settled(app, lambda: _all_sent(app, ann))
    texts = [m.text for m in sim.messages_to(ann, from_=bot)]
    assert len(texts) == 2 and texts[0] == texts[1]


async def _all_sent(app, user) -> bool:
    rows = await statuses(app, user)
    return bool(rows) and all(status == "sent" for _, status in rows)


async def test_a_clean_stop_lets_the_message_being_sent_finish_and_be_recorded(
    sim, monitor, bot, admin, ann, rdk, settings
):
    reached, gate = asyncio.Event(), asyncio.Event()

    def slow(sender):
        class Slow:
            async def send(self, chat, html, **kw):
                reached.set()
                await gate.wait()
                return await sender.send(chat, html, **kw)

        return Slow()

    async with service(sim, monitor, bot, settings, wrap_sender=slow) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        sim.post(rdk, "Обстрел Шебекино")
        async with asyncio.timeout(TIMEOUT):
            await reached.wait()
        app.stop()  # SIGTERM while the alert is on its way
        gate.set()
        async with asyncio.timeout(TIMEOUT):
            await app.task
    db = await open_database(settings.db_path)
    try:
        rows = await db.fetchall("SELECT status FROM alerts WHERE chat_id = ?", (ann.id,))
        assert [r["status"] for r in rows] == ["sent"]
    finally:
        await db.close()
    assert len(sim.messages_to(ann, from_=bot)) == 1


async def test_crash_after_send_shows_the_alert_once_on_a_server_that_dedups_random_ids(
    sim, monitor, bot, admin, ann, rdk, settings
):
    if not hasattr(Simulator, "dedup_random_ids"):
        pytest.skip("this simulator does not refuse repeated random ids yet")
    sim.dedup_random_ids = True  # as Telegram: a repeated random id is RANDOM_ID_DUPLICATE
    once = {"request_retries": 0, "raise_last_call_error": True}  # Telethon retries 5xx
    freeze = Freeze("after")
    await _crash_once(sim, monitor, bot, ann, rdk, settings, freeze)
    assert len(sim.messages_to(ann, from_=bot)) == 1
    async with service(sim, monitor, bot, settings, bot_client=once) as app:
        await settled(app, lambda: _all_sent(app, ann))
        sim.post(rdk, "Шебекино: всё спокойно")  # later alerts still go out
        await received(sim, ann, bot, 2)
    assert len(sim.messages_to(ann, from_=bot)) == 2
