"""Alert delivery end to end: channel post -> archive -> outbox -> bot -> analyst's chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.simulator import Simulator
from storage import archive, subscribers
from tests.bot_helpers import (
    add_rule,
    ask,
    bold_words,
    bot_settings,
    make_analyst,
    received,
    service,
    settled,
    statuses,
)
from tests.watch_helpers import eventually


async def test_a_matching_post_reaches_the_analyst(
    sim, monitor, bot, admin, ann, tmp_path: Path, archive_target: Path | str
):
    rdk = sim.add_channel(username="rdk_channel", title="РДК")
    settings = bot_settings(tmp_path, bot, [admin], "rdk_channel", db_path=archive_target)
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann, "Ann")
        await add_rule(app, ann, "Белгород")
        msg = sim.post(rdk, "Обстрел Белгородской области <утром>")
        sim.post(rdk, "Обстановка спокойная")
        (alert,) = await received(sim, ann, bot, 1)
        assert alert.text.startswith("🔔 РДК\n")
        assert f"https://t.me/rdk_channel/{msg}" in alert.text
        assert "Обстрел Белгородской области <утром>" in alert.text
        assert "rule «Белгород» (Белгородской)" in alert.text
        assert bold_words(alert) == ["РДК", "Белгородской"]
        assert sim.messages_to(admin, from_=bot) == []  # admins have no rules here


@pytest.fixture
def agg(sim: Simulator):
    return sim.add_channel(username="news_agg", title="Новости")


@pytest.fixture
def settings(tmp_path: Path, bot, admin, rdk, agg):
    return bot_settings(tmp_path, bot, [admin], "rdk_channel", "news_agg")


async def test_one_alert_however_many_rules_and_forwards_and_it_lists_the_copies(
    sim, monitor, bot, admin, ann, rdk, agg, settings
):
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Белгород")
        await add_rule(app, ann, "обстрел")
        app.bot.notifier.limiter.hold(ann.id)  # deliver only once every copy is archived
        original = sim.post(rdk, "Обстрел Белгорода")
        copy = sim.forward(rdk, original, to=agg)
        await eventually(app, lambda: has_post(app, agg.id, copy))
        app.bot.notifier.limiter.release(ann.id)
        (alert,) = await received(sim, ann, bot, 1)
        assert "rule «Белгород» (Белгорода); rule «обстрел» (Обстрел)" in alert.text
        assert "Also in: Новости" in alert.text
        await settled(app, lambda: statuses_are(app, ann, [("alert", "sent")]))
        # a later copy does not alert again either
        again = sim.forward(rdk, original, to=agg)
        await eventually(app, lambda: has_post(app, agg.id, again))
        await settled(app, lambda: statuses_are(app, ann, [("alert", "sent")]))


async def has_post(app, channel_id: int, msg_id: int) -> bool:
    return await archive.get_post(app.db, channel_id, msg_id) is not None


async def test_edits_and_deletion_follow_up_as_replies(
    sim, monitor, bot, admin, ann, rdk, settings
):
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        quiet = sim.post(rdk, "Обстановка спокойная")
        shown = sim.post(rdk, "Обстрел Шебекино")
        (alert,) = await received(sim, ann, bot, 1)
        sim.edit(rdk, shown, "Обстрел Шебекино: двое раненых")
        edited = (await received(sim, ann, bot, 2))[1]
        assert edited.text == "✏️ edited: Обстрел Шебекино: двое раненых"
        assert edited.reply_to == alert.id
        sim.delete(rdk, [shown])
        deleted = (await received(sim, ann, bot, 3))[2]
        assert deleted.text == "🗑 deleted — archived copy kept" and deleted.reply_to == alert.id
        # an edit that makes a post match alerts
        sim.edit(rdk, quiet, "Обстановка в Шебекино напряжённая")
        late = (await received(sim, ann, bot, 4))[3]
        assert "matches after an edit" in late.text and late.reply_to is None
        await settled(
            app,
            lambda: statuses_are(
                app,
                ann,
                [
                    ("alert", "sent"),
                    ("edited:1", "sent"),
                    ("deleted", "sent"),
                    ("alert", "sent"),
                ],
            ),
        )


async def test_album_alert_summarises_the_media(
    sim, monitor, bot, admin, ann, rdk, settings, monkeypatch
):
    from storage import outbox

    reads = []
    due_for = outbox.due_for

    async def counting(*args, **kwargs):
        reads.append(1)
        return await due_for(*args, **kwargs)

    monkeypatch.setattr(outbox, "due_for", counting)
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        sim.post_album(
            rdk, [sim.photo(), sim.photo(), sim.video(duration=9)], caption="Шебекино сегодня"
        )
        (alert,) = await received(sim, ann, bot, 1)
        assert "📎 album: 2 photos, 1 video" in alert.text
        assert len(reads) < 10  # waiting for the album to settle is not a busy loop


async def test_mute_skips_and_unmute_resumes(sim, monitor, bot, admin, ann, rdk, settings):
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        later = datetime.now(UTC) + timedelta(hours=2)
        await subscribers.set_preferences(app.db, ann.id, muted_until=later)
        sim.post(rdk, "Шебекино 1")
        await settled(app, lambda: has_status(app, ann, "muted"))
        await subscribers.set_preferences(app.db, ann.id, muted_until=None)
        sim.post(rdk, "Шебекино 2")
        (alert,) = await received(sim, ann, bot, 1)
        assert "Шебекино 2" in alert.text
        await settled(app, lambda: statuses_are(app, ann, [("alert", "muted"), ("alert", "sent")]))


async def has_status(app, user, status: str) -> bool:
    return any(s == status for _, s in await statuses(app, user))


async def test_quiet_hours_deliver_without_sound(sim, monitor, bot, admin, ann, rdk, settings):
    seen: list[bool] = []
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(hours=1)).strftime("%H:%M"),
        (now + timedelta(hours=1)).strftime("%H:%M"),
    )

    def spy(sender):
        class Spy:
            async def send(self, chat, html, **kw):
                seen.append(kw["silent"])
                return await sender.send(chat, html, **kw)

        return Spy()

    async with service(sim, monitor, bot, settings, wrap_sender=spy) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        await subscribers.set_preferences(app.db, ann.id, quiet_from=start, quiet_to=end)
        sim.post(rdk, "Шебекино ночью")
        await received(sim, ann, bot, 1)
        assert seen == [True]


async def test_digest_collects_alerts_for_the_chats_morning(
    sim, monitor, bot, admin, ann, rdk, settings
):
    from bot.alerts.digest import send_digests

    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        await subscribers.set_preferences(app.db, ann.id, tz="Europe/Kyiv", digest_at="08:00")
        sim.post(rdk, "Шебекино 1")
        sim.post(rdk, "Шебекино 2")
        await settled(app, lambda: _digest_rows(app, ann, 2))
        assert sim.messages_to(ann, from_=bot) == []
        notifier = app.bot.notifier
        before = datetime(2030, 6, 1, 4, 59, tzinfo=UTC)  # 07:59 in Kyiv
        assert await send_digests(app.db, notifier, before) == 0
        morning = datetime(2030, 6, 1, 5, 0, tzinfo=UTC)
        assert await send_digests(app.db, notifier, morning) == 1
        (digest,) = await received(sim, ann, bot, 1)
        assert digest.text.startswith("📰 Digest 2030-06-01: 2 alerts")
        assert "Шебекино 1" in digest.text and "Шебекино 2" in digest.text
        assert await send_digests(app.db, notifier, morning + timedelta(hours=3)) == 0
        await settled(
            app, lambda: statuses_are(app, ann, [("alert", "digested"), ("alert", "digested")])
        )


async def _digest_rows(app, user, n: int) -> bool:
    return [s for _, s in await statuses(app, user)] == ["digest"] * n


async def test_an_analyst_who_blocked_the_bot_is_marked_inactive(
    sim, monitor, bot, admin, ann, rdk, settings
):
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        sim.block(ann, bot)
        sim.post(rdk, "Шебекино 1")
        await settled(app, lambda: has_status(app, ann, "skipped"))
        sub = await subscribers.get(app.db, ann.id)
        assert not sub.active and sub.inactive_reason == "blocked the bot"
        sim.post(rdk, "Шебекино 2")  # not planned for an inactive analyst
        await eventually(app, lambda: _posts(app, rdk.id, 2))
        await settled(app, lambda: statuses_are(app, ann, [("alert", "skipped")]))
        # unblocking and writing again brings them back
        sim.unblock(ann, bot)
        await ask(sim, ann, bot, "/start")
        assert (await subscribers.get(app.db, ann.id)).active


async def _posts(app, channel_id: int, n: int) -> bool:
    row = await app.db.fetchone("SELECT count(*) FROM posts WHERE channel_id = ?", (channel_id,))
    return row[0] >= n


async def test_catch_up_alerts_are_marked_delayed_and_old_ones_skipped(
    sim, monitor, bot, admin, ann, rdk, settings
):
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
    old = datetime.now(UTC) - timedelta(days=2)
    sim.post(rdk, "Шебекино позавчера", date=old)
    sim.post(rdk, "Шебекино только что")
    async with service(sim, monitor, bot, settings) as app:
        (alert,) = await received(sim, ann, bot, 1)
        assert "Шебекино только что" in alert.text and "delayed" in alert.text
        await eventually(app, lambda: _posts(app, rdk.id, 2))
        await settled(app, lambda: statuses_are(app, ann, [("alert", "sent")]))


async def statuses_are(app, user, expected: list[tuple[str, str]]) -> bool:
    return await statuses(app, user) == expected


async def test_a_burst_of_200_matching_posts_arrives_whole_in_order_without_flood_waits(
    sim, monitor, bot, admin, ann, rdk, settings
):
    bob = sim.add_user(phone="+15550009", first_name="Bob")
    sim.enforce_bot_limits = True
    async with service(sim, monitor, bot, settings, limits=None) as app:  # production limits
        for analyst in (ann, bob):
            await make_analyst(app, analyst)
            await add_rule(app, analyst, "Шебекино")
        posted = [sim.post(rdk, f"Шебекино, сообщение {i}") for i in range(200)]
        expected = [f"https://t.me/rdk_channel/{m}" for m in posted]
        for analyst in (ann, bob):
            await sim.wait_for_messages(
                analyst,
                from_=bot,
                predicate=lambda msgs: len(linked(msgs)) >= 200,
                timeout=90,
            )
            messages = sim.messages_to(analyst, from_=bot)
            assert linked(messages) == expected  # none lost, none twice, in order
            assert len(messages) < 30  # a backlog goes out combined, not one a second
        assert sim.flood_waits_issued == 0
        assert app.bot.notifier.flood_waits_since(datetime(2000, 1, 1, tzinfo=UTC)) == 0
        # an edit replies to the combined message that carried the alert, naming the post
        carrier = next(m for m in sim.messages_to(ann, from_=bot) if expected[100] in linked([m]))
        count = len(sim.messages_to(ann, from_=bot))
        sim.edit(rdk, posted[100], "Шебекино, сообщение 100 (уточнение)")
        follow = (await received(sim, ann, bot, count + 1))[count]
        assert follow.reply_to == carrier.id
        assert follow.text == "РДК ✏️ edited: Шебекино, сообщение 100 (уточнение)"
        assert linked([follow]) == [expected[100]]


def linked(messages) -> list[str]:
    from telethon.tl import types

    return [
        e.url
        for m in messages
        for e in m.entities or []
        if isinstance(e, types.MessageEntityTextUrl) and "/rdk_channel/" in e.url
    ]


async def test_flood_wait_pauses_the_chat_then_delivers_once(
    sim, monitor, bot, admin, ann, rdk, settings
):
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        sim.fail(request="SendMessageRequest", error="FLOOD_WAIT_1", times=1)
        sim.post(rdk, "Шебекино")
        (alert,) = await received(sim, ann, bot, 1)
        assert "Шебекино" in alert.text
        await settled(app, lambda: statuses_are(app, ann, [("alert", "sent")]))
        status = await ask(sim, admin, bot, "/status")
        assert "FloodWaits in the last hour: 1" in status.text
    assert len(sim.messages_to(ann, from_=bot)) == 1


async def test_a_server_error_is_retried_later(sim, monitor, bot, admin, ann, rdk, settings):
    from bot.alerts.notifier import NotifierOptions

    options = NotifierOptions(retry_base=0.2)
    # Telethon would otherwise retry a 500 by itself
    once = {"request_retries": 0, "raise_last_call_error": True}
    async with service(sim, monitor, bot, settings, notifier=options, bot_client=once) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        sim.fail(request="SendMessageRequest", error="INTERNAL", times=1, code=500)
        sim.post(rdk, "Шебекино")
        (alert,) = await received(sim, ann, bot, 1)
        await settled(app, lambda: statuses_are(app, ann, [("alert", "sent")]))
        row = await app.db.fetchone("SELECT attempts FROM alerts WHERE chat_id = ?", (ann.id,))
        assert row["attempts"] == 2


# --- the rate limiter, with a controlled clock -------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_spaces_each_chat_and_groups_more() -> None:
    from bot.alerts.ratelimit import Limits, RateLimiter

    clock = Clock()
    limiter = RateLimiter(Limits(chat_interval=1.0, group_interval=3.0), clock)
    assert limiter.delay(1) == 0
    limiter.take(1)
    assert limiter.delay(1) == pytest.approx(1.0) and limiter.delay(2) == 0
    limiter.take(-5, group=True)
    clock.now += 1.0
    assert limiter.delay(1) == 0 and limiter.delay(-5) == pytest.approx(2.0)


def test_limiter_lets_a_burst_through_then_holds_the_overall_rate() -> None:
    from bot.alerts.ratelimit import Limits, RateLimiter

    clock = Clock()
    limiter = RateLimiter(Limits(overall_per_second=10, overall_burst=5, chat_interval=0), clock)
    for chat in range(5):
        assert limiter.delay(chat) == 0
        limiter.take(chat)
    assert limiter.delay(99) == pytest.approx(0.1)
    clock.now += 0.1
    assert limiter.delay(99) == pytest.approx(0, abs=1e-9)


def test_limiter_pauses_for_flood_wait_and_holds_until_released() -> None:
    from bot.alerts.ratelimit import Limits, RateLimiter

    clock = Clock()
    limiter = RateLimiter(Limits(chat_interval=0), clock)
    limiter.pause(5, chat_id=1)
    assert limiter.delay(1) == pytest.approx(5) and limiter.delay(2) == 0
    limiter.pause(2)
    assert limiter.delay(2) == pytest.approx(2)
    limiter.hold(3)
    clock.now += 10
    assert limiter.delay(3) == float("inf") and limiter.delay(1) == 0
    limiter.release(3)
    assert limiter.delay(3) == 0


async def test_the_scheduler_runs_the_digest_check_every_minute(tmp_path: Path) -> None:
    from bot.alerts.digest import DIGEST_CHECK_SECONDS, build_scheduler
    from bot.alerts.notifier import Notifier
    from storage.db import open_database

    db = await open_database(tmp_path / "archive.db")
    try:
        scheduler = build_scheduler(db, Notifier(db, sender=None), lambda: datetime.now(UTC))
        scheduler.start()
        (job,) = scheduler.get_jobs()
        assert job.id == "digests"
        assert job.trigger.interval.total_seconds() == DIGEST_CHECK_SECONDS
        scheduler.shutdown(wait=False)
    finally:
        await db.close()
