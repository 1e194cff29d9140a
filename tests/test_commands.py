"""Every command's happy path and bad arguments, through the real bot client and simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import archive, subscribers
from tests.bot_helpers import ask, bot_settings, received, service
from tests.watch_helpers import eventually


@pytest.fixture
def settings(tmp_path: Path, bot, admin, rdk):
    return bot_settings(tmp_path, bot, [admin], "rdk_channel")


async def _analyst(app, user) -> None:
    await subscribers.upsert(app.db, user.id, "analyst", name=user.first_name)
    app.pipeline.audience_changed()


async def test_watch_unwatch_and_channels(sim, monitor, bot, admin, rdk, tmp_path: Path):
    legion = sim.add_channel(username="legion", title="Легион")
    sim.post(legion, "первый пост")
    settings = bot_settings(tmp_path, bot, [admin], "rdk_channel")
    async with service(sim, monitor, bot, settings) as app:
        answer = await ask(sim, admin, bot, "/watch https://t.me/legion")
        assert answer.text == "Watching Легион (@legion) (live)."
        await eventually(app, lambda: _count(app, legion.id, 1))
        later = sim.post(legion, "второй пост")  # live from now on
        await eventually(app, lambda: _count(app, legion.id, 2))
        listing = (await ask(sim, admin, bot, "/channels")).text
        assert "2 watched channels" in listing and "Легион (@legion) · live · 2 posts" in listing
        assert "already watched" in (await ask(sim, admin, bot, "/watch @legion")).text
        unknown = await ask(sim, admin, bot, "/watch @no_such_channel")
        assert unknown.text == "Cannot watch @no_such_channel: no such username on Telegram"
        again = await ask(sim, admin, bot, "/watch @no_such_channel")
        assert "checked before" in again.text
        assert sim.requests_seen("ResolveUsernameRequest") == 3  # rdk, legion, the unknown once
        assert (await ask(sim, admin, bot, "/watch")).text.startswith("Usage: /watch")
        assert "invite link" in (await ask(sim, admin, bot, "/watch https://t.me/+abc")).text
        bye = await ask(sim, admin, bot, "/unwatch @legion")
        assert bye.text == "Stopped watching Легион (@legion). Its archive is kept."
        assert "is not watched" in (await ask(sim, admin, bot, "/unwatch @legion")).text
        assert later
    # persisted: a restart keeps legion unwatched, and a re-added channel stays added
    async with service(sim, monitor, bot, settings) as app:
        assert sorted(c.username for c in app.watcher.watched()) == ["rdk_channel"]
        await ask(sim, admin, bot, "/watch @legion")
    async with service(sim, monitor, bot, settings) as app:
        assert sorted(c.username for c in app.watcher.watched()) == ["legion", "rdk_channel"]


async def _count(app, channel_id: int, n: int) -> bool:
    row = await app.db.fetchone("SELECT count(*) FROM posts WHERE channel_id = ?", (channel_id,))
    return row[0] >= n


async def test_rules_add_list_delete(sim, monitor, bot, admin, ann, settings):
    async with service(sim, monitor, bot, settings) as app:
        await _analyst(app, ann)
        assert (await ask(sim, ann, bot, "/rule list")).text.startswith("No keyword rules yet")
        added = await ask(sim, ann, bot, '/rule add "взяли в плен" in @rdk_channel -not учения')
        assert added.text == 'Rule 1 added: "взяли в плен" in @rdk_channel -not учения'
        await ask(sim, ann, bot, "/rule add Белгород")
        listing = (await ask(sim, ann, bot, "/rule list")).text
        assert '1. "взяли в плен" in @rdk_channel -not учения\n2. Белгород' in listing
        assert "claim alerts: on, score ≥ 0.50" in listing
        assert (await ask(sim, ann, bot, "/rule del 1")).text.startswith("Deleted rule 1")
        assert [r.text for r in await subscribers.rules_of(app.db, ann.id)] == ["Белгород"]
        # bad arguments: one line each
        for text, expected in [
            ("/rule", "Your rules"),  # bare /rule lists
            ("/rule add", "Usage: /rule add"),
            ('/rule add "unclosed', "unclosed quote"),
            ("/rule add пленный in @nowhere", "@nowhere is not a watched channel"),
            ("/rule add Белгород", "you already have this rule"),
            ("/rule del 7", "no rule 7; you have 1"),
            ("/rule del x", "Usage: /rule del N"),
            ("/rule frob", "Usage: /rule add"),
        ]:
            answer = (await ask(sim, ann, bot, text)).text
            assert expected in answer, (text, answer)
            assert "\n" not in answer or text == "/rule", answer


async def test_a_rule_of_several_words_is_a_phrase(sim, monitor, bot, admin, ann, rdk, settings):
    async with service(sim, monitor, bot, settings) as app:
        await _analyst(app, ann)
        added = await ask(sim, ann, bot, "/rule add Новая Таволжанка")
        assert added.text == "Rule 1 added: Новая Таволжанка"
        before = len(sim.messages_to(ann, from_=bot))
        sim.post(rdk, "Новая школа открылась")  # one word of the phrase: no alert
        sim.post(rdk, "Обстрел села Новая Таволжанка")
        alerts = await received(sim, ann, bot, before + 1)
        assert "Таволжанка" in alerts[before].text
        await eventually(app, lambda: _count(app, rdk.id, 2))
        assert len(sim.messages_to(ann, from_=bot)) == before + 1


async def test_claims_switch(sim, monitor, bot, admin, ann, settings):
    async with service(sim, monitor, bot, settings) as app:
        await _analyst(app, ann)
        assert (await ask(sim, ann, bot, "/claims off")).text.startswith("Claim alerts off")
        assert not (await subscribers.get(app.db, ann.id)).claims
        on = await ask(sim, ann, bot, "/claims on 0,8")
        assert on.text == "Claim alerts on for claims scoring at least 0.80."
        sub = await subscribers.get(app.db, ann.id)
        assert sub.claims and sub.claims_min == 0.8
        assert (await ask(sim, ann, bot, "/claims maybe")).text.startswith("Usage: /claims")
        assert "between 0 and 1" in (await ask(sim, ann, bot, "/claims on 3")).text
        assert "not a number" in (await ask(sim, ann, bot, "/claims on lots")).text


async def test_mute_quiet_time_zone_and_digest(sim, monitor, bot, admin, ann, settings):
    async with service(sim, monitor, bot, settings) as app:
        await _analyst(app, ann)
        tz = await ask(sim, ann, bot, "/tz kyiv")
        assert tz.text.startswith("Time zone set to Europe/Kyiv (now ")
        muted = await ask(sim, ann, bot, "/mute 2h")
        assert muted.text.startswith("Muted until ") and "EE" in muted.text
        sub = await subscribers.get(app.db, ann.id)
        left = sub.muted_until - datetime.now(UTC)
        assert timedelta(minutes=119) < left <= timedelta(hours=2)
        assert (await ask(sim, ann, bot, "/unmute")).text == "Alerts resumed."
        assert (await subscribers.get(app.db, ann.id)).muted_until is None
        quiet = await ask(sim, ann, bot, "/quiet 23:00-7:00")
        assert quiet.text.startswith("Quiet hours 23:00–07:00 (Europe/Kyiv)")
        digest = await ask(sim, ann, bot, "/digest 8:30")
        assert digest.text.startswith("Daily digest at 08:30 (Europe/Kyiv)")
        sub = await subscribers.get(app.db, ann.id)
        assert (sub.tz, sub.quiet_from, sub.quiet_to, sub.digest_at) == (
            "Europe/Kyiv",
            "23:00",
            "07:00",
            "08:30",
        )
        assert (await ask(sim, ann, bot, "/digest off")).text.startswith("Digest off")
        assert (await ask(sim, ann, bot, "/quiet off")).text == "Quiet hours off."
        for text, expected in [
            ("/mute", "Usage: /mute"),
            ("/mute soon", "is not a duration"),
            ("/mute 90d", "at most 30 days"),
            ("/quiet 23:00", "Usage: /quiet"),
            ("/quiet 25:00-07:00", "is not a time like 23:00"),
            ("/quiet 07:00-07:00", "are the same"),
            ("/tz Mars/Olympus", "unknown time zone"),
            ("/digest", "Usage: /digest"),
            ("/digest noon", "is not a time"),
            ("/unmute now", "Usage: /unmute"),
        ]:
            answer = (await ask(sim, ann, bot, text)).text
            assert expected in answer and "\n" not in answer, (text, answer)


async def test_search_with_pages_and_recent(sim, monitor, bot, admin, ann, rdk, settings):
    for i in range(7):
        sim.post(rdk, f"Сообщение {i}: у Белгорода взяли пленных")
    sim.post(rdk, "Обстановка спокойная")
    async with service(sim, monitor, bot, settings) as app:
        await _analyst(app, ann)
        first = await ask(sim, ann, bot, "/search пленный")
        assert first.text.startswith("🔎 пленный — page 1")
        assert first.text.count("• РДК") == 5
        assert "Сообщение 6" in first.text  # newest first
        assert first.buttons == [[("older ▶", first.buttons[0][0][1])]]
        await sim.user_presses(ann, bot, first.id, first.buttons[0][0][1])
        await sim.wait_until(lambda: sim.messages_to(ann, from_=bot)[-1].edited, timeout=10)
        page2 = sim.messages_to(ann, from_=bot)[-1]
        assert page2.text.startswith("🔎 пленный — page 2") and page2.text.count("• РДК") == 2
        assert [label for label, _ in page2.buttons[0]] == ["◀ newer"]
        scoped = await ask(sim, ann, bot, "/search пленный in @rdk_channel since 2020-01-01")
        assert scoped.text.count("• РДК") == 5
        none = await ask(sim, ann, bot, "/search танкер")
        assert none.text == "No posts match танкер."
        recent = await ask(sim, ann, bot, "/recent @rdk_channel 2")
        assert recent.text.startswith("РДК: latest 2")
        assert "Обстановка спокойная" in recent.text
        for text, expected in [
            ("/search", "Usage: /search"),
            ("/search пленный in @nowhere", "is not in the archive"),
            ("/search пленный since someday", "not a date"),
            ("/recent", "Usage: /recent"),
            ("/recent @rdk_channel 50", "between 1 and 20"),
            ("/recent @nowhere", "is not in the archive"),
        ]:
            answer = (await ask(sim, ann, bot, text)).text
            assert expected in answer and "\n" not in answer, (text, answer)


async def test_search_replies_are_escaped_and_understand_in_since_until(
    sim, monitor, bot, admin, ann, rdk, settings
):
    sim.post(rdk, "Бойцы РДК взяли в плен двоих военнослужащих у Козинки.")
    sim.post(rdk, "Soldiers were captured in Bakhmut, the brigade says.")
    async with service(sim, monitor, bot, settings) as app:
        await _analyst(app, ann)
        await eventually(app, lambda: _count(app, rdk.id, 2))
        # usage and errors are plain text: nothing is swallowed as an HTML tag
        usage = (await ask(sim, ann, bot, '/search "unclosed')).text
        assert "unterminated quote" in usage
        assert 'Usage: /search <words or "phrase"> [in @channel]' in usage
        echoed = await ask(sim, ann, bot, '/search "<a href=https://x.example>y')
        assert '"<a href=https://x.example>y' in echoed.text and not echoed.entities
        # the admin also gets the claim alerts meanwhile: pick the reply out of them
        await sim.user_sends(admin, bot, "/revoke")

        def usage_replies() -> list[str]:
            texts = [m.text for m in sim.messages_to(admin, from_=bot)]
            return [t for t in texts if t.startswith("Usage:")]

        await sim.wait_until(lambda: bool(usage_replies()), timeout=10)
        assert usage_replies() == ["Usage: /revoke <user id | invitation code>"]
        # `in Bakhmut` is a word of the query; only `in @channel` or a link filters
        found = await ask(sim, ann, bot, "/search soldiers captured in Bakhmut")
        assert found.text.startswith("🔎 soldiers captured in Bakhmut — page 1")
        assert "Bakhmut, the brigade says" in found.text
        linked = await ask(sim, ann, bot, "/search плен in t.me/rdk_channel since yesterday")
        assert linked.text.count("• РДК") == 1
        # the claim detector's verdict is shown with each post
        assert "· claim 0.9" in linked.text
        later = await ask(sim, ann, bot, "/search плен until 2000-01-01")
        assert later.text == "No posts match плен until 2000-01-01."
        today = await ask(sim, ann, bot, "/search плен since today until today")
        assert today.text.count("• РДК") == 1
        assert (
            "since is after until"
            in (await ask(sim, ann, bot, "/search плен since today until yesterday")).text
        )


async def test_status(sim, monitor, bot, admin, rdk, settings):
    sim.post(rdk, "пост")
    async with service(sim, monitor, bot, settings) as app:
        status = (await ask(sim, admin, bot, "/status")).text
        assert "1 channels watched" in status
        assert "• РДК: last post" in status and "lag" in status
        assert "Alert queue: 0 waiting" in status
        assert "FloodWaits in the last hour: 0" in status
        assert (await ask(sim, admin, bot, "/status x")).text == "Usage: /status (no arguments)"
        assert await archive.find_channel(app.db, rdk.id)
