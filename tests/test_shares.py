"""Sharing the channels among watchers: the pure plan, and its rounds in the archive
(on both backends)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import time
from pathlib import Path

import pytest

from bot.cli import status as status_cmd
from bot.watch.shares import Held, Plan, plan, quotas
from config.settings import ChannelSpec, Settings
from storage import shares
from storage.db import open_database

CHANNELS = {f"ch{i:03d}": "live" for i in range(10)}


def settle(
    channels: dict[str, str],
    watchers: dict[str, int],
    leases: dict[str, Held],
    order: list[str] | None = None,
    rounds: int = 10,
) -> tuple[dict[str, Held], int]:
    """Run every watcher's plan in turn (as their rounds would) until nothing changes;
    returns the leases and how many rounds it took."""
    leases = dict(leases)
    for n in range(1, rounds + 1):
        changed = False
        for me in order or sorted(watchers):
            step = plan(me, channels, watchers, leases)
            for key in step.release:
                del leases[key]
            for key, mode in step.remode.items():
                leases[key] = Held(me, mode)
            for key, mode in step.claim.items():
                assert key not in leases or leases[key].watcher not in watchers
                leases[key] = Held(me, mode)
            changed |= bool(step)
        if not changed:
            return leases, n
    raise AssertionError(f"no stable share after {rounds} rounds: {leases}")


def counts(leases: dict[str, Held]) -> dict[str, int]:
    found: dict[str, int] = {}
    for held in leases.values():
        found[held.watcher] = found.get(held.watcher, 0) + 1
    return found


def test_quotas_are_even_and_add_up() -> None:
    assert quotas(200, ["b", "a"]) == {"a": 100, "b": 100}
    assert quotas(7, ["c", "a", "b"]) == {"a": 3, "b": 2, "c": 2}
    assert quotas(5, []) == {}


def test_a_lone_watcher_takes_every_channel() -> None:
    step = plan("a", CHANNELS, {"a": 500}, {})
    assert step.claim == dict.fromkeys(CHANNELS, "live") and not step.release


def test_a_second_watcher_gets_half_as_the_first_gives_it_up() -> None:
    first, _ = settle(CHANNELS, {"a": 500}, {})
    assert counts(first) == {"a": 10}
    # b joins: its first plan finds nothing free, a gives up five, b takes them
    assert not plan("b", CHANNELS, {"a": 500, "b": 500}, first)
    shared, rounds = settle(CHANNELS, {"a": 500, "b": 500}, first, order=["b", "a"])
    assert counts(shared) == {"a": 5, "b": 5} and rounds <= 3
    kept = {k for k, h in first.items() if h.watcher == "a"} & {
        k for k, h in shared.items() if h.watcher == "a"
    }
    assert len(kept) == 5  # a kept half of what it watched; nothing moved for nothing


def test_the_channels_of_a_dead_watcher_are_taken_over() -> None:
    shared, _ = settle(CHANNELS, {"a": 500, "b": 500}, {})
    # b's lease expired: it is no longer among the live watchers, its leases count as free
    after, _ = settle(CHANNELS, {"a": 500}, shared)
    assert counts(after) == {"a": 10}
    assert all(h.mode == "live" for h in after.values())


def test_the_join_limit_is_kept_and_the_rest_is_polled() -> None:
    channels = {f"ch{i:03d}": "live" for i in range(200)}
    shared, _ = settle(channels, {"a": 60, "b": 500}, {})
    a_live = sum(1 for h in shared.values() if h.watcher == "a" and h.mode == "live")
    a_poll = sum(1 for h in shared.values() if h.watcher == "a" and h.mode == "poll")
    assert (a_live, a_poll) == (60, 40)
    assert all(h.mode == "live" for h in shared.values() if h.watcher == "b")


def test_a_channel_configured_as_poll_is_never_joined() -> None:
    channels = {"live1": "live", "poll1": "poll"}
    shared, _ = settle(channels, {"a": 500}, {})
    assert shared == {"live1": Held("a", "live"), "poll1": Held("a", "poll")}


def test_lowering_the_join_limit_leaves_channels_and_polls_them() -> None:
    joined, _ = settle(CHANNELS, {"a": 500}, {})
    step = plan("a", CHANNELS, {"a": 4}, joined)
    assert sum(1 for m in step.remode.values() if m == "poll") == 6 and not step.claim


def test_a_channel_no_longer_configured_is_given_up() -> None:
    held, _ = settle(CHANNELS, {"a": 500}, {})
    fewer = {k: m for k, m in CHANNELS.items() if k != "ch003"}
    step = plan("a", fewer, {"a": 500}, held)
    assert step.release == ["ch003"] and not step.claim


@pytest.mark.parametrize("seed", range(20))
def test_any_start_settles_on_every_channel_held_once_and_evenly(seed: int) -> None:
    rng = random.Random(seed)
    channels = {
        f"ch{i:03d}": rng.choice(["live", "live", "poll"]) for i in range(rng.randint(0, 60))
    }
    names = [f"w{i}" for i in range(rng.randint(1, 5))]
    watchers = {name: rng.randint(0, 30) for name in names}
    # leftovers of watchers that died, and of live ones, at random
    leases = {
        key: Held(rng.choice([*names, "dead"]), rng.choice(["live", "poll"]))
        for key in channels
        if rng.random() < 0.5
    }
    order = names[:]
    rng.shuffle(order)
    after, _ = settle(channels, watchers, leases, order=order)
    assert set(after) == set(channels)
    held = counts(after)
    assert max(held.values(), default=0) - min(held.values(), default=0) <= 1
    for name, limit in watchers.items():
        live = sum(1 for h in after.values() if h.watcher == name and h.mode == "live")
        assert live <= limit
    assert all(h.mode == "poll" for k, h in after.items() if channels[k] == "poll")
    assert not any(plan(name, channels, watchers, after) for name in names)


# --- rounds in the archive ---------------------------------------------------------


def decider(me: str, channels: dict[str, str]) -> shares.Decide:
    def decide(watchers: list[shares.WatcherRow], leases: list[shares.LeaseRow]) -> shares.Changes:
        step: Plan = plan(
            me,
            channels,
            {w.name: w.live_limit for w in watchers},
            {lease.channel: Held(lease.watcher, lease.mode) for lease in leases},
        )
        return shares.Changes(step.claim, step.release, step.remode)

    return decide


async def test_rounds_share_expire_and_leave(archive_target: Path | str) -> None:
    db = await open_database(archive_target)
    try:
        channels = dict(CHANNELS)

        async def round_(me: str, now: float, limit: int = 500) -> dict[str, str]:
            after = await shares.share_round(
                db, me, limit, now=now, ttl=10, decide=decider(me, channels)
            )
            return after.held_by(me)

        assert len(await round_("a", 100.0)) == 10
        assert await round_("b", 101.0) == {}  # a still holds everything
        assert len(await round_("a", 102.0)) == 5  # a gives up its extras
        assert len(await round_("b", 103.0)) == 5  # b takes them
        # a stops renewing; at 113 its lease (renewed at 102, 10 s) has expired
        assert len(await round_("b", 111.0)) == 5  # not yet
        assert len(await round_("b", 113.0)) == 10
        state = await shares.current(db)
        assert [w.name for w in state.watchers] == ["b"]
        # a comes back: it is a watcher again and gets its half back
        await round_("a", 114.0)
        await round_("b", 115.0)
        assert len(await round_("a", 116.0)) == 5
        await shares.leave(db, "b")  # a clean stop frees b's channels at once
        assert len(await round_("a", 117.0)) == 10
        # each account keeps its own access hash for a channel
        await shares.save_access_hash(db, "a", 1001, 11)
        await shares.save_access_hash(db, "b", 1001, 22)
        await shares.save_access_hash(db, "a", 1001, 12)
        assert (
            await shares.access_hash(db, "a", 1001),
            await shares.access_hash(db, "b", 1001),
        ) == (
            12,
            22,
        )
        assert await shares.access_hash(db, "c", 1001) is None
    finally:
        await db.close()


# --- chanwatch status ----------------------------------------------------------------


def test_status_shows_who_holds_what_and_who_waits(pg_server, tmp_path: Path) -> None:
    url = pg_server.create_database()
    channels = {"rdk_channel": "live", "gladkov": "live", "legion": "poll"}
    asyncio.run(_two_watchers_and_a_dead_one(url, channels))
    specs = tuple(ChannelSpec(k, m) for k, m in channels.items()) + (ChannelSpec("extra", "live"),)
    settings = Settings(channels=specs, db_path=url)

    def run(*argv: str, settings: Settings = settings) -> str:
        parser = argparse.ArgumentParser()
        status_cmd.add_arguments(parser)
        out = io.StringIO()
        assert status_cmd.run(parser.parse_args(argv), settings, out) == 0
        return out.getvalue()

    text = run("--channels")
    lines = text.splitlines()
    assert (
        lines[0].startswith("a ") and "2 channels (1 live, 1 polled; joins at most 1)" in lines[0]
    )
    assert lines[1].startswith("b ") and "1 channels (1 live, 0 polled" in lines[1]
    assert lines[2].startswith("c ") and "lease expired 40 s ago" in lines[2]
    assert "no watcher delivers alerts now" in text
    assert "4 channels: 3 held by a live watcher, 1 waiting for one" in text
    assert any(line.split()[:3] == ["@legion", "a", "poll"] for line in lines)
    assert any("@extra" in line and "(waiting)" in line for line in lines)
    data = json.loads(run("--format", "json"))
    assert data["waiting"] == ["extra"]
    assert data["channels"]["legion"] == {"watcher": "a", "mode": "poll"}
    alive = [(w["name"], w["alive"]) for w in data["watchers"]]
    assert alive == [("a", True), ("b", True), ("c", False)]
    # a SQLite archive has one watcher: status says so
    asyncio.run(_close(open_database(tmp_path / "one.db")))
    text = run(settings=Settings(channels=specs, db_path=tmp_path / "one.db"))
    assert "one watcher" in text and "4 in the settings" in text


async def _close(opening) -> None:
    await (await opening).close()


async def _two_watchers_and_a_dead_one(url: str, channels: dict[str, str]) -> None:
    db = await open_database(url)
    now = time.time()
    try:
        await shares.share_round(db, "a", 1, now=now, ttl=60, decide=decider("a", channels))
        await shares.share_round(db, "b", 500, now=now, ttl=60, decide=decider("b", channels))
        await shares.share_round(db, "a", 1, now=now, ttl=60, decide=decider("a", channels))
        await shares.share_round(db, "b", 500, now=now, ttl=60, decide=decider("b", channels))
        # c stopped renewing long ago; nobody's round has removed it yet
        await db.execute(
            "INSERT INTO watchers VALUES ('c', 500, ?, ?, ?)", (now - 100, now - 100, now - 40)
        )
    finally:
        await db.close()
