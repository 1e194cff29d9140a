"""The June 2023 Novaya Tavolzhanka story becomes one incident on the simulator, among
a few hundred unrelated real posts; its later posts reply to the first alert."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts.policy import Policy
from bot.pipeline import Pipeline
from storage import archive, incidents
from storage.db import open_database
from storage.incidents import NewMember
from storage.models import Channel, Forward, Post, utcnow
from tests.bot_helpers import (
    add_rule,
    ask,
    bot_settings,
    make_analyst,
    received,
    service,
    settled,
)
from tests.incident_helpers import STORY, play, story_posts, unrelated_posts

LIVE = ("album", "artillery", "repost2")


async def _incident_posts(app) -> dict[int, set[tuple[int, int]]]:
    rows = await app.db.fetchall(
        """SELECT ip.incident_id, p.channel_id, p.msg_id FROM incident_posts ip
           JOIN posts p ON p.id = ip.post_id WHERE ip.incident_id IS NOT NULL"""
    )
    out: dict[int, set[tuple[int, int]]] = {}
    for r in rows:
        out.setdefault(r[0], set()).add((r[1], r[2]))
    return out


# Channels are caught up one at a time, in the order given, so that each order is tested
# every time: the governor's channel first puts his answer in the archive before the
# second claim that ties it to the incident (`incident_join._pull_in`).
@pytest.mark.parametrize("first", ["legion_svoboda", "vvgladkov"], ids=["claims", "answer"])
async def test_story_is_one_incident_among_unrelated_posts(
    sim, monitor, bot, ann, tmp_path: Path, first: str
):
    channels = {
        c["key"]: sim.add_channel(username=c["username"], title=c["title"])
        for c in STORY["channels"]
    }
    noise = [sim.add_channel(username=f"noise{i}", title=f"Лента {i}") for i in range(3)]
    start = utcnow() - timedelta(hours=20)
    background = unrelated_posts(300)
    assert not any("таволжанк" in r["text"].lower() for r in background)
    unrelated: set[tuple[int, int]] = set()
    targets = [*noise, channels["news"], channels["mod"]]  # news channels post other news too
    for i, row in enumerate(background[:260]):
        channel = targets[i % len(targets)]
        date = start - timedelta(hours=6) + timedelta(minutes=5 * i)
        unrelated.add((channel.id, sim.post(channel, row["text"], date=date)))
    made: dict[str, list[tuple[int, int]]] = {}
    early = [p for p in story_posts() if p["id"] not in LIVE]
    play(sim, channels, early, start, made)
    other = STORY["unrelated_claim"]
    other_key = (
        channels[other["channel"]].id,
        sim.post(channels[other["channel"]], other["text"], date=start - timedelta(days=5)),
    )
    settings = bot_settings(
        tmp_path,
        bot,
        [],
        *sorted((c["username"] for c in STORY["channels"]), key=lambda name: name != first),
        *[c.username for c in noise],
        catchup_concurrency=1,
    )
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann, "Ann")
        await add_rule(app, ann, "Таволжанка")
        album = [p for p in story_posts() if p["id"] == "album"]
        play(sim, channels, album, utcnow() - timedelta(minutes=album[0]["minutes"]), made)
        alert = (await received(sim, ann, bot, 1))[0]
        for i, row in enumerate(background[260:]):
            channel = targets[i % len(targets)]
            unrelated.add((channel.id, sim.post(channel, row["text"])))
        later = [p for p in story_posts() if p["id"] in ("artillery", "repost2")]
        play(sim, channels, later, utcnow() - timedelta(minutes=later[-1]["minutes"]), made)
        reply = (await received(sim, ann, bot, 2))[1]
        expected = {key for keys in made.values() for key in keys}
        everything = expected | unrelated | {other_key}

        async def archived() -> bool:
            row = await app.db.fetchone("SELECT count(*) FROM posts WHERE detected_at IS NOT NULL")
            return row[0] >= len(everything)

        await settled(app, archived)
        groups = await _incident_posts(app)
        holding = [i for i, keys in groups.items() if keys & expected]
        shown = [
            (i, m.date, m.text[:40], m.ties)
            for i in holding
            for m in await incidents.timeline(app.db, i)
        ]
        assert len(holding) == 1, "\n".join(map(str, shown))
        story_id = holding[0]
        assert groups[story_id] == expected  # every story post, no unrelated one
        alone = [i for i, keys in groups.items() if other_key in keys]
        assert len(alone) == 1 and groups[alone[0]] == {other_key}
        incident = await incidents.get(app.db, story_id)
        assert incident is not None
        assert incident.title.startswith("Новая Таволжанка, ")
        assert incident.channels == 5 and incident.posts == len(expected)
        assert incident.counts == (2, 5)
        assert incident.media.get("video", 0) >= 3
        # the first alert names its incident; the artillery statement replies to it
        assert f"incident #{story_id} · Новая Таволжанка" in alert.text
        assert "4 channels, 8 posts, 2 → 5 captives claimed" in alert.text  # so far
        assert reply.reply_to == alert.id
        assert reply.text.startswith(f"🧩 incident #{story_id}")
        assert "Артиллерия" in reply.text
        timeline = await incidents.timeline(app.db, story_id)
        artillery = next(m for m in timeline if m.text.startswith("Артиллерия"))
        assert [t["kind"] for t in artillery.ties] == ["place"]
        assert artillery.ties[0]["detail"] == "Новая Таволжанка"
        # the repost of the album alerted nobody again (its origin's alert lists it)
        assert len(sim.messages_to(ann, from_=bot)) == 2
        # and the analyst reads the incident through the bot
        listing = (await ask(sim, ann, bot, "/incidents")).text
        assert listing.startswith("Incidents, latest first")
        assert f"#{story_id} · Новая Таволжанка" in listing
        shown = (await ask(sim, ann, bot, f"/incident {story_id}")).text
        assert "opened the incident" in shown and "place Новая Таволжанка 0.80" in shown


async def test_an_answer_archived_before_the_claim_that_ties_it_joins_with_that_claim(
    archive_target: Path | str,
) -> None:
    """Grouping decides a post when it is archived; a post archived before an earlier
    post that ties it (another channel's catch-up ran first) is decided again when that
    post joins (both archives: the posts are found by their lemmas in each one's FTS)."""
    db = await open_database(archive_target)
    try:
        ids = {}
        for n, c in enumerate(STORY["channels"], start=1):
            await archive.save_channel(db, Channel(100 + n, n, c["username"], c["title"]))
            ids[c["key"]] = 100 + n
        story = {p["id"]: p for p in story_posts()}
        start = utcnow() - timedelta(hours=20)

        def post(entry: str, msg: int, text: str | None = None, minutes: int = 0) -> Post:
            row = story[entry]
            when = start + timedelta(minutes=row["minutes"] + minutes)
            return Post(ids[row["channel"]], msg, when, text or row["text"])

        pipeline = Pipeline(db, policy=Policy(max_age=None))
        claim, _ = await pipeline.ingest([post("claim", 1), post("counter", 2)], "catchup")
        opened = await incidents.of_post(db, claim.post_id)
        assert opened is not None
        # the governor's channel caught up before the second claim's
        weather = post("reply", 2, "Погода в Белгороде: ясно, +25", minutes=10)
        answer, stray = await pipeline.ingest([post("reply", 1), weather], "catchup")
        for alone in (answer, stray):  # the incident names the governor: 0.4 of 0.8
            assert await incidents.of_post(db, alone.post_id) is None
        # deleted meanwhile: the archive keeps what was said, and grouping judges that
        await archive.mark_deleted(db, answer.post.channel_id, [answer.post.msg_id])
        (claim2,) = await pipeline.ingest([post("claim2", 1)], "catchup")
        joined = await incidents.of_post(db, claim2.post_id)
        assert joined is not None and joined.id == opened.id
        # the answer names РДК, now a channel of the incident, as the claim names him
        shown = {m.post_id: m for m in await incidents.timeline(db, opened.id)}
        ties = [t["kind"] for t in shown[answer.post_id].ties]
        assert ties.count("mention") == 2
        # a post of the same channel whose ties stay under the bar stays alone
        assert await incidents.of_post(db, stray.post_id) is None
    finally:
        await db.close()


async def test_ungrouped_posts_are_found_by_dates_lemmas_channels_keys_and_links(
    archive_target: Path | str,
) -> None:
    """What deciding again reads back, in both archives: ungrouped posts dated in the
    range with a lemma starting with a word or a quoted post in their text (FTS), of a
    channel wanted, forwarding a post wanted, or replying in a member's channel; not a
    grouped, skipped, unwanted or later one."""
    db = await open_database(archive_target)
    try:
        for n in (1, 2, 3):
            await archive.save_channel(db, Channel(n, n, f"c{n}", f"Канал {n}"))
        t0 = utcnow().replace(microsecond=0) - timedelta(hours=10)
        rows = {
            "place": (1, "Бой у Таволжанки", "бой у таволжанка", {}),
            "named": (2, "Спокойно", "спокойно", {}),
            "quote": (1, "См. t.me/legion/5", "смотреть", {}),
            "forward": (1, "Копия", "копия", {"fwd_from": Forward(channel_id=9, msg_id=1)}),
            "reply": (3, "Ответ", "ответ", {"reply_to": 7}),
            "other": (1, "Погода", "погода", {}),
            "unthreaded": (1, "Ответ", "ответ", {"reply_to": 7}),
            "grouped": (1, "Таволжанка снова", "таволжанка снова", {}),
            "skipped": (1, "Таволжанка опять", "таволжанка опять", {}),
            "late": (1, "Таволжанка потом", "таволжанка потом", {}),
        }
        posts = {
            name: Post(channel, n, t0 + timedelta(hours=20 if name == "late" else n), text, **kw)
            for n, (name, (channel, text, _, kw)) in enumerate(rows.items(), start=1)
        }
        archived = await archive.archive_posts(
            db, [(posts[name], row[2]) for name, row in rows.items()]
        )
        ids = {name: a.post_id for name, a in zip(rows, archived, strict=True)}
        wanted = incidents.Wanted(
            words=["таволжан", "«»"], quotes=["legion/5"], channels={2}, keys={"9/1"}, threads={3}
        )
        async with db.transaction() as conn:
            member = NewMember(ids["grouped"], posts["grouped"].date, {}, 0.0, [])
            await incidents.add_in(conn, [(None, member)])
            until = t0 + timedelta(hours=15)
            found = await incidents.ungrouped_between_in(
                conn, t0, until, wanted, skip=[ids["skipped"]]
            )
        expected = ("place", "named", "quote", "forward", "reply")
        assert [r.post_id for r in found] == [ids[name] for name in expected]
        assert found[0].text == "Бой у Таволжанки" and found[0].lemmas == "бой у таволжанка"
        assert found[3].fwd_key == "9/1" and found[4].reply_to == 7
    finally:
        await db.close()
