"""SIGKILL at any moment loses nothing: `chanwatch run` killed, restarted, and checked.

The service runs as a real process (file sessions, CHANWATCH_* settings) against
the simulator. Three channels hold 600 posts before it starts, one in ten naming
Шебекино, which the analyst has a rule for. The process is killed with SIGKILL —
at a chosen point inside it (`tests/killpoint.py`: mid batch before COMMIT, between
archiving and alerting, just before and just after an alert reaches Telegram) or
from outside at a random moment (during the catch-up, during a burst of alerts) —
then started again, and the channels post, edit and delete while it runs.

At the end the archive holds every post the simulator published exactly once, with
its current text (the earlier text as a revision, deletions marked), the database
passes integrity checks, and the analyst received an alert for every matching post.
The simulator refuses a repeated random id as Telegram does, so "received" means
exactly once; without that the bound is one duplicate per message in flight at the
kill (see tests/test_bot_crash.py).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from telethon import errors, functions, types

from bot.simulator import SimChannel, Simulator
from storage import subscribers
from storage.db import open_database
from tests.fault_helpers import alerted_posts, ended, query, scalar, service_env, start, until

NAMES = ("border_news", "rdk_channel", "gladkov")
EARLY = 200  # posts per channel before the first start
KEYWORD = "Шебекино"


def _text(channel: SimChannel, i: int) -> str:
    if i % 10 == 3:
        return f"{channel.title}, сводка {i}: обстрел окраин Шебекино"
    return f"{channel.title}, сводка {i}: без происшествий"


class Scenario:
    def __init__(self, sim: Simulator, state: Path) -> None:
        self.sim = sim
        self.state = state
        self.db = state / "archive.db"
        self.log = state / "service.log"
        self.monitor = sim.add_user(phone="+15550001", first_name="Monitor")
        self.bot = sim.add_bot(username="watch_bot")
        self.analyst = sim.add_user(phone="+15550002", first_name="Analyst")
        self.channels = [sim.add_channel(username=n, title=n.upper()) for n in NAMES]
        sim.dedup_random_ids = True  # as Telegram: a resent random id is refused
        self.env = service_env(
            sim,
            state,
            NAMES,
            monitor=self.monitor,
            bot=self.bot,
            admins=[self.analyst],
            backfill="5000",
        )

    async def prepare(self) -> None:
        db = await open_database(self.db)
        try:
            await subscribers.upsert(db, self.analyst.id, "admin", name="Analyst")
            await subscribers.set_preferences(db, self.analyst.id, claims=False)
            await subscribers.add_rule(db, self.analyst.id, KEYWORD, None)
        finally:
            await db.close()
        for channel in self.channels:
            for i in range(EARLY):
                self.sim.post(channel, _text(channel, i), push=False)

    def published(self) -> dict[tuple[int, int], str]:
        return {(c.id, m.id): m.text for c in self.channels for m in c.messages.values()}

    def expected_alerts(self) -> dict[str, set[int]]:
        return {
            c.username: {m.id for m in c.messages.values() if KEYWORD in m.text}
            for c in self.channels
            if c.username
        }

    def received(self) -> dict[str, dict[int, int]]:
        messages = self.sim.messages_to(self.analyst, from_=self.bot)
        return {name: dict(alerted_posts(messages, name)) for name in NAMES}

    def all_alerted(self) -> bool:
        got = self.received()
        return all(set(got[n]) >= want for n, want in self.expected_alerts().items())

    def posts(self) -> int:
        return scalar(self.db, "SELECT count(*) FROM posts")

    def pending(self) -> int:
        return scalar(self.db, "SELECT count(*) FROM alerts WHERE status = 'pending'")


@pytest.fixture
async def scenario(sim: Simulator, tmp_path: Path) -> Scenario:
    world = Scenario(sim, tmp_path / "state")
    await world.prepare()
    return world


async def _kill_inside(world: Scenario, point: str, nth: int) -> None:
    proc = await start(world.env, point, str(nth), module="tests.killpoint", log=world.log)
    assert await ended(proc) == -9, f"the service was not killed at {point} #{nth}"


async def _kill_during_catch_up(world: Scenario, seed: int) -> None:
    at = random.Random(seed).randrange(50, 3 * EARLY - 50)
    proc = await start(world.env, log=world.log)
    await until(lambda: world.posts() >= at, proc)
    proc.kill()
    assert await ended(proc) == -9


async def _kill_during_burst(world: Scenario, seed: int) -> None:
    """Let the catch-up finish, post a burst of matching posts, kill while it is sent."""
    proc = await start(world.env, log=world.log)
    await until(lambda: world.posts() == 3 * EARLY and world.pending() == 0, proc)
    await until(lambda: bool(world.sim.online(world.monitor)), proc)
    before = len(world.sim.messages_to(world.analyst, from_=world.bot))
    burst = random.Random(seed)
    filler = " Подробности уточняются, жителей просят оставаться в укрытиях." * 4
    for i in range(150):  # several messages at Telegram's ~1 a second per chat
        channel = burst.choice(world.channels)
        world.sim.post(channel, f"срочно {i}: взрывы в районе Шебекино.{filler}")
    await until(lambda: len(world.sim.messages_to(world.analyst, from_=world.bot)) > before, proc)
    proc.kill()
    assert await ended(proc) == -9
    assert world.pending() > 0, "the kill came after the burst was delivered: nothing proved"


KILLS = {
    "mid-batch": lambda w: _kill_inside(w, "commit", 4),
    "between-archive-and-alert": lambda w: _kill_inside(w, "archived", 2),
    "before-send": lambda w: _kill_inside(w, "sending", 1),
    "after-send-before-recorded": lambda w: _kill_inside(w, "sent", 1),
    "random-during-catch-up": lambda w: _kill_during_catch_up(w, 7),
    "random-during-burst": lambda w: _kill_during_burst(w, 11),
}


@pytest.mark.parametrize("kill", list(KILLS))
async def test_sigkill_then_restart_loses_nothing_and_doubles_nothing(
    scenario: Scenario, kill: str
) -> None:
    world = scenario
    await KILLS[kill](world)
    killed_with = world.posts()

    proc = await start(world.env, log=world.log)
    try:
        await until(lambda: world.posts() >= 3 * EARLY, proc)
        await until(lambda: bool(world.sim.online(world.monitor)), proc)
        # the world goes on while the service recovers
        rdk, gov = world.channels[1], world.channels[2]
        for i in range(30):
            world.sim.post(world.channels[i % 3], _text(world.channels[i % 3], EARLY + i))
        world.sim.edit(rdk, 1, f"{_text(rdk, 0)} (уточнение: Шебекино)")
        world.sim.delete(gov, [2])
        total = len(world.published())
        await until(
            lambda: (
                world.posts() == total
                and scalar(world.db, "SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL") == 1
                and scalar(world.db, "SELECT count(*) FROM post_revisions") == 1
                and world.pending() == 0
                and world.all_alerted()
            ),
            proc,
        )
    finally:
        if proc.returncode is None:
            proc.terminate()
        code = await ended(proc)
    log = world.log.read_text(errors="replace")
    assert code == 0, log[-3000:]
    assert "Traceback" not in log.split("received SIGTERM")[-1]

    # every published post archived once, with its current text
    archived = {
        (c, m): t for c, m, t in query(world.db, "SELECT channel_id, msg_id, text FROM posts")
    }
    assert archived == world.published(), f"killed with {killed_with} posts archived"
    assert scalar(world.db, "SELECT count(*) FROM posts") == len(archived)
    (revision,) = query(world.db, "SELECT text FROM post_revisions")
    assert revision == (_text(rdk, 0),)
    assert query(world.db, "SELECT channel_id, msg_id FROM posts WHERE deleted_at IS NOT NULL") == [
        (gov.id, 2)
    ]
    assert query(world.db, "PRAGMA integrity_check") == [("ok",)]
    assert query(world.db, "INSERT INTO posts_fts(posts_fts) VALUES ('integrity-check')") == []

    # every matching post alerted, and (Telegram refusing resent random ids) once
    got = world.received()
    for name, want in world.expected_alerts().items():
        assert set(got[name]) == want, name
        assert {msg_id: n for msg_id, n in got[name].items() if n > 1} == {}, name
    statuses = query(world.db, "SELECT status, count(*) FROM alerts GROUP BY status")
    assert dict(statuses) == {"sent": sum(len(w) for w in world.expected_alerts().values())}


async def test_the_simulator_refuses_a_resent_random_id_like_telegram(sim: Simulator) -> None:
    bot, user = sim.add_bot(username="dedup_bot"), sim.add_user(phone="+15550009")
    sim.dedup_random_ids = True
    client = sim.client_for(bot, raise_last_call_error=True, request_retries=1)
    async with asyncio.timeout(30):
        await client.connect()
        try:
            peer = types.InputPeerUser(user.id, user.access_hash)
            request = functions.messages.SendMessageRequest(peer, "раз", random_id=42)
            await client(request)
            with pytest.raises(errors.RandomIdDuplicateError):
                await client(functions.messages.SendMessageRequest(peer, "два", random_id=42))
        finally:
            await client.disconnect()
    assert [m.text for m in sim.messages_to(user, from_=bot)] == ["раз"]


async def test_a_refused_send_keeps_its_random_id_free_for_the_retry(sim: Simulator) -> None:
    """A send Telegram refused (the user blocked the bot) delivered nothing, so a retry
    with the same random id must go through, not be taken for a duplicate."""
    bot, user = sim.add_bot(username="retry_bot"), sim.add_user(phone="+15550010")
    sim.dedup_random_ids = True
    sim.block(user, bot)
    client = sim.client_for(bot, raise_last_call_error=True, request_retries=1)
    async with asyncio.timeout(30):
        await client.connect()
        try:
            peer = types.InputPeerUser(user.id, user.access_hash)
            with pytest.raises(errors.UserIsBlockedError):
                await client(functions.messages.SendMessageRequest(peer, "раз", random_id=7))
            sim.unblock(user, bot)
            await client(functions.messages.SendMessageRequest(peer, "раз", random_id=7))
        finally:
            await client.disconnect()
    assert [m.text for m in sim.messages_to(user, from_=bot)] == ["раз"]
