"""/incidents, /incident N and the corrections, through the command layer with a real
archive: clear replies on bad input and for analysts the incident did not alert,
nothing changed then; corrections hold when more posts arrive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.commands import Caller, Dispatcher, Reply, Services
from bot.pipeline import Pipeline
from config.settings import Settings
from storage import incidents, subscribers
from storage.db import open_database
from storage.models import Forward, Post, utcnow
from tests.incident_helpers import story_archive

ADMIN, ANN, BOB = 1, 2, 3
START = utcnow().replace(microsecond=0) - timedelta(hours=14)


class Replies:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def reply(self, to, reply: Reply) -> None:
        self.texts.append(reply.html)

    async def edit(self, to, message_id: int, reply: Reply) -> None:
        self.texts.append(reply.html)


@pytest.fixture
async def world(tmp_path: Path):
    path = tmp_path / "archive.db"
    # Ann's rule alerts her about the story; Bob's rule is about something else, and
    # his claim alerts are off
    ids = await story_archive(
        path,
        START,
        analysts={ANN: ["Таволжанка"], BOB: ["Бахмут"]},
        claims_off=frozenset({BOB}),
    )
    db = await open_database(path)
    assert not await incidents.alerted_chats(db, 1) & {BOB}
    await subscribers.sync_admins(db, frozenset({ADMIN}))
    out = Replies()
    pipeline = Pipeline(db)
    services = Services(db=db, settings=Settings(admin_ids=frozenset({ADMIN})), pipeline=pipeline)
    dispatch = Dispatcher(services, out.reply, out.edit)

    async def ask(who: int, text: str) -> str:
        before = len(out.texts)
        await dispatch.on_message(Caller(chat_id=who, user_id=who), text)
        assert len(out.texts) == before + 1, out.texts[before:]
        return out.texts[-1]

    yield db, ask, ids, pipeline
    await db.close()


async def _state(db) -> list[tuple]:
    rows = await db.fetchall("SELECT post_id, incident_id FROM incident_posts ORDER BY post_id")
    heads = await db.fetchall("SELECT id, posts, merged_into FROM incidents ORDER BY id")
    return [tuple(r) for r in rows] + [tuple(r) for r in heads]


async def test_list_and_timeline(world) -> None:
    db, ask, ids, _ = world
    listing = await ask(ANN, "/incidents")
    assert "#1 · <b>Новая Таволжанка," in listing and "5 channels" in listing
    assert "#2 · <b>Работино," in listing
    timeline = await ask(ANN, "/incident 1")
    assert timeline.startswith("🧩 <b>incident #1 · Новая Таволжанка")
    assert "opened the incident" in timeline and "forward a forward of the same post" in timeline
    assert (await ask(ANN, "/incidents x")).startswith("Usage: /incidents")


async def test_bad_input_gets_a_clear_reply_and_changes_nothing(world) -> None:
    db, ask, ids, _ = world
    before = await _state(db)
    assert await ask(ANN, "/incident merge 1 99") == "no incident #99; /incidents lists them"
    assert await ask(ANN, "/incident merge 1 1") == (
        "#1 and #1 are the same incident; nothing to merge"
    )
    assert await ask(ANN, "/incident split 2 1") == (
        "incident #2 has only one post; nothing to split. Nothing changed."
    )
    assert "post 1 opened incident #1" in await ask(ANN, "/incident split 1 1")
    assert "POST is 1 to" in await ask(ANN, "/incident remove 1 77")
    assert "is not a post of incident #1" in await ask(ANN, "/incident remove 1 t.me/x/1")
    assert (await ask(ANN, "/incident frobnicate")).startswith("Usage: /incident N")
    # Bob's rules alerted him to nothing in these incidents
    refusal = await ask(BOB, "/incident merge 1 2")
    assert refusal.startswith("incident #1 was not alerted to you by any of your rules")
    assert refusal.endswith("Nothing changed.")
    assert "was not alerted to you" in await ask(BOB, "/incident remove 1 3")
    assert await _state(db) == before


async def test_corrections_hold_when_more_posts_arrive(world) -> None:
    db, ask, ids, pipeline = world
    story = await incidents.timeline(db, 1)
    counter = next(n for n, m in enumerate(story, start=1) if m.text.startswith("Гладков"))
    reply = await ask(ANN, f"/incident split 1 {counter}")
    assert reply.startswith(f"Split #1 at post {counter}: #1 keeps {counter - 1} posts, #3 has")
    removed = await ask(ANN, "/incident remove 1 2")
    assert removed.startswith("Removed post 2 (Русский добровольческий корпус) from #1")
    split_posts = set(await incidents.post_ids(db, 3))
    # a new claim about the village ties to both halves; it joins one and does not
    # merge what the analyst split; the removed post stays out
    later = START + timedelta(minutes=720)
    text = "У Новой Таволжанки в плен взяты ещё двое военнослужащих ВС РФ, сообщает Легион."
    await pipeline.ingest([Post(104, 500, later, text)], "catchup")
    claim2 = ids["claim2"][0]
    await pipeline.ingest(
        [Post(105, 501, later, "repost", fwd_from=Forward(channel_id=102, msg_id=2))], "catchup"
    )
    assert (
        await db.fetchone("SELECT incident_id FROM incident_posts WHERE post_id = ?", (claim2,))
    )[0] is None
    assert split_posts <= set(await incidents.post_ids(db, 3))
    assert await incidents.get(db, 1) is not None and await incidents.get(db, 3) is not None
    merged = await ask(ANN, "/incident merge 1 3")
    assert merged.startswith("Merged #3 into #1")
    assert "merged into #1" in await ask(ANN, "/incident 3")
    admin = await ask(ADMIN, "/incident merge 1 2")  # admins may correct any incident
    assert admin.startswith("Merged #2 into #1")
    rows = await incidents.corrections(db, 1)
    assert [r["action"] for r in rows] == ["split", "remove", "merge", "merge"]
