"""Two `chanwatch run` processes (two accounts) share 200 channels on one PostgreSQL
archive while the channels post, edit and delete; one of them is SIGKILLed three
times at random moments and started again.

What must hold: each watcher holds half of the channels; a killed watcher's channels
are taken over by the survivor once its lease expires, and delivery moves with it
when the killed one was delivering; at the end the archive equals what the
simulator published (ids, texts, edits as revisions, deletions) and every matching
post was alerted exactly once (the simulator refuses a resent random id, as Telegram
does).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.soak import alerts_in
from bot.simulator import SimChannel, Simulator
from storage import leases, shares, subscribers
from storage.db import Database, open_database
from tests.fault_helpers import ended, service_env, start
from tests.pg_server import PgServer

CHANNELS = 200
EARLY = 3  # posts per channel before the watchers start
LEASE = 4  # seconds (CHANWATCH_LEASE_SECONDS): a dead watcher's channels move after it
KEYWORD = "Шебекино"
TIMEOUT = 120
POLL = 0.1  # seconds between looks at the archive another process writes


def _text(i: int) -> str:
    if i % 7 == 3:
        return f"сводка {i}: обстрел окраин Шебекино"
    return f"сводка {i}: без происшествий"


async def _until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    within: float = TIMEOUT,
    detail: Callable[[], str] = str,
) -> float:
    """Poll `check` until true; the seconds it took. Fails naming `what` on timeout."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(within):
            while not await check():  # noqa: ASYNC110 - the state lives in other processes
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what} {detail()}") from None
    return time.monotonic() - began


class Team:
    def __init__(self, sim: Simulator, state: Path, url: str) -> None:
        self.sim = sim
        self.url = url
        self.bot = sim.add_bot(username="team_bot")
        self.analyst = sim.add_user(phone="+15550100", first_name="Analyst")
        self.monitors = {
            name: sim.add_user(phone=f"+1555010{i}", first_name=f"Monitor {name}")
            for i, name in enumerate("ab", start=1)
        }
        self.channels = [
            sim.add_channel(username=f"front_{i:03d}", title=f"Front {i}") for i in range(CHANNELS)
        ]
        sim.dedup_random_ids = True
        self.logs = {name: state / f"{name}.log" for name in self.monitors}
        self.env = {
            name: service_env(
                sim,
                state / name,
                [c.username or "" for c in self.channels],
                monitor=monitor,
                bot=self.bot,
                admins=[self.analyst],
                db=url,
                watcher=name,
                lease_seconds=str(LEASE),
                backfill="1000",
                # the fallback for what Telegram does not push (every 15 min by default)
                reconcile_interval="1m",
            )
            for name, monitor in self.monitors.items()
        }
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.db: Database | None = None
        self.edited: set[tuple[int, int]] = set()
        self.deleted: set[tuple[int, int]] = set()
        self.membership_diff: dict[str, tuple[list[str], list[str]]] = {}

    async def prepare(self) -> None:
        self.db = await open_database(self.url)
        await subscribers.upsert(self.db, self.analyst.id, "admin", name="Analyst")
        await subscribers.set_preferences(self.db, self.analyst.id, claims=False)
        await subscribers.add_rule(self.db, self.analyst.id, KEYWORD, None)
        for n, channel in enumerate(self.channels):
            for i in range(EARLY):
                self.sim.post(channel, _text(n * EARLY + i), push=False)

    async def start(self, name: str) -> None:
        self.procs[name] = await start(self.env[name], log=self.logs[name])

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    async def held(self) -> dict[str, int]:
        """Channels held per live watcher."""
        assert self.db is not None
        state = await shares.current(self.db)
        alive = {w.name for w in state.watchers if w.expires_at >= time.time()}
        found = dict.fromkeys(alive, 0)
        for lease in state.leases:
            if lease.watcher in alive:
                found[lease.watcher] += 1
        return found

    async def deliverer(self) -> str | None:
        assert self.db is not None
        found = [h.watcher for h in await leases.holders(self.db) if h.lock == leases.DELIVER]
        return found[0] if len(found) == 1 else None

    def memberships(self) -> dict[str, set[str]]:
        return {
            name: {c.username or "" for c in self.channels if monitor.id in c.members}
            for name, monitor in self.monitors.items()
        }

    async def members_as_leased(self) -> bool:
        members, leased = self.memberships(), await self.joined_by_lease()
        self.membership_diff = {
            name: (
                sorted(members[name] - leased[name])[:5],
                sorted(leased[name] - members[name])[:5],
            )
            for name in members
        }
        return members == leased

    async def joined_by_lease(self) -> dict[str, set[str]]:
        assert self.db is not None
        state = await shares.current(self.db)
        found: dict[str, set[str]] = {name: set() for name in self.monitors}
        for lease in state.leases:
            if lease.mode == "live":
                found[lease.watcher].add(lease.channel)
        return found

    def published(self) -> dict[tuple[int, int], str]:
        return {(c.id, m.id): m.text for c in self.channels for m in c.messages.values()}

    def expected_alerts(self) -> set[tuple[str, int]]:
        return {
            (c.username or "", m.id)
            for c in self.channels
            for m in c.messages.values()
            if KEYWORD in (m.text or "") and not m.deleted
        }

    def received(self) -> dict[tuple[str, int], int]:
        return alerts_in(self.sim.messages_to(self.analyst, from_=self.bot))

    async def deletions_recorded(self) -> bool:
        assert self.db is not None
        rows = await self.db.fetchall(
            "SELECT channel_id, msg_id FROM posts WHERE deleted_at IS NOT NULL"
        )
        return {(r[0], r[1]) for r in rows} == self.deleted

    async def archived(self) -> dict[tuple[int, int], str]:
        assert self.db is not None
        rows = await self.db.fetchall("SELECT channel_id, msg_id, text FROM posts")
        return {(r[0], r[1]): r[2] for r in rows}

    async def activity(self, stop: asyncio.Event, seed: int) -> int:
        """The channels post (some naming the keyword), edit and delete until `stop`."""
        rng = random.Random(seed)
        n = 0
        while not stop.is_set():
            channel: SimChannel = rng.choice(self.channels)
            self.sim.post(channel, _text(10_000 + n))
            n += 1
            if n % 10 == 0:
                target = rng.choice(self.channels)
                msg_id = rng.randint(1, EARLY)
                if (target.id, msg_id) not in self.deleted:
                    self.sim.edit(target, msg_id, f"{_text(msg_id)} (уточнение {n})")
                    self.edited.add((target.id, msg_id))
            if n % 25 == 0:
                target = rng.choice(self.channels)
                msg_id = rng.randint(1, EARLY)
                if (target.id, msg_id) not in self.deleted:
                    self.sim.delete(target, [msg_id])
                    self.deleted.add((target.id, msg_id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)  # ~20 posts a second
        return n

    async def stop_all(self) -> dict[str, int]:
        codes = {}
        for name, proc in self.procs.items():
            if proc.returncode is None:
                proc.terminate()
            codes[name] = await ended(proc)
        return codes


async def test_two_watchers_share_channels_survive_kills_and_lose_nothing(
    sim: Simulator, tmp_path: Path, pg_server: PgServer
) -> None:
    team = Team(sim, tmp_path, pg_server.create_database())
    await team.prepare()
    assert team.db is not None
    stop = asyncio.Event()
    load: asyncio.Task[int] | None = None
    rng = random.Random(20230522)
    try:
        for name in team.monitors:
            await team.start(name)
        await _until(
            lambda: _equal(team.held(), {"a": CHANNELS // 2, "b": CHANNELS // 2}),
            "each watcher holds half of the channels",
        )
        await _until(lambda: _is_some(team.deliverer()), "one watcher delivers")
        early = team.published()  # archived before any edit, so each edit is a revision
        await _until(lambda: _equal(team.archived(), early), "the early posts are archived")
        load = asyncio.create_task(team.activity(stop, seed=7))
        takeovers = []
        for kill in range(3):
            await asyncio.sleep(rng.uniform(0.5, 3.0))  # a random moment under load
            victim = await team.deliverer() if kill == 0 else rng.choice("ab")
            assert victim is not None
            survivor = "b" if victim == "a" else "a"
            team.kill(victim)
            assert await ended(team.procs[victim]) == -9
            took = await _until(
                lambda s=survivor: _equal(team.held(), {s: CHANNELS}),
                f"{survivor} takes over all {CHANNELS} channels after {victim} was killed",
                within=LEASE * 5,
            )
            await _until(
                lambda s=survivor: _equal(team.deliverer(), s),
                f"{survivor} delivers after {victim} was killed",
                within=LEASE * 5,
            )
            takeovers.append(took)
            await team.start(victim)
            await _until(
                lambda: _equal(team.held(), {"a": CHANNELS // 2, "b": CHANNELS // 2}),
                f"{victim} takes its half back after its restart",
            )
        stop.set()
        posted = await load
        assert posted > 100, "too little load to prove anything"

        published = team.published()
        await _until(
            lambda: _equal(team.archived(), published),
            "the archive holds every published post with its current text",
        )
        expected = team.expected_alerts()
        await _until(
            lambda: _true(set(team.received()) >= expected), "every matching post is alerted"
        )
        deletions_after = await _until(team.deletions_recorded, "every deletion recorded")
        pending = "SELECT count(*) FROM alerts WHERE status = 'pending'"
        await _until(lambda: _scalar_is(team.db, pending, 0), "nothing left to deliver")
        # each account is a member of just the channels it holds (a killed one left
        # those it had joined and no longer holds after its restart)
        await _until(
            team.members_as_leased,
            "each account a member of what it holds live",
            detail=lambda: f"(member but not held, held but not member): {team.membership_diff}",
        )
    finally:
        stop.set()
        if load is not None:
            with contextlib.suppress(Exception):
                await load
        codes = await team.stop_all()
    logs = {name: path.read_text(errors="replace") for name, path in team.logs.items()}
    assert codes == {"a": 0, "b": 0}, {n: log[-3000:] for n, log in logs.items()}

    # each matching post alerted exactly once, through whichever watcher delivered
    got = team.received()
    assert {key: n for key, n in got.items() if n > 1} == {}
    assert set(got) >= team.expected_alerts()
    # edits kept as revisions, deletions marked
    revised = await team.db.fetchall("SELECT DISTINCT p.channel_id, p.msg_id FROM post_revisions r "
                                     "JOIN posts p ON p.id = r.post_id")  # fmt: skip
    assert {(r[0], r[1]) for r in revised} == team.edited
    gone = await team.db.fetchall(
        "SELECT channel_id, msg_id FROM posts WHERE deleted_at IS NOT NULL"
    )
    assert {(r[0], r[1]) for r in gone} == team.deleted
    # the watchers left cleanly: nobody holds a channel any more
    assert await team.held() == {}, {n: log[-3000:] for n, log in logs.items()}
    await team.db.close()
    print(f"\ntakeovers after SIGKILL: {', '.join(f'{t:.1f} s' for t in takeovers)}"
          f" (lease {LEASE} s); {posted} posts under load; deletions all recorded"
          f" {deletions_after:.1f} s after the archive held every post")  # fmt: skip


async def _equal(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _is_some(value: Awaitable[object]) -> bool:
    return await value is not None


async def _true(value: bool) -> bool:
    return value


async def _scalar_is(db: Database | None, sql: str, expected: int) -> bool:
    assert db is not None
    row = await db.fetchone(sql)
    return row is not None and row[0] == expected
