"""Polling without joining: the adaptive interval and the request budget (pure, with a
controlled clock), then the poller against the simulator with the real Telethon client."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.service.app import App
from bot.simulator import Simulator
from bot.watch.polling import (
    PollSchedule,
    RequestBudget,
    extra_requests,
    poll_interval,
    posting_rate,
)
from config.settings import ChannelSpec, JobSettings, Settings
from storage import archive
from storage.models import utcnow
from tests.jobs_helpers import FakeClock, run, running_jobs
from tests.watch_helpers import settings_for

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_rate_takes_the_busier_of_last_hour_and_last_day() -> None:
    burst = [T0 - timedelta(minutes=i) for i in range(10)]
    assert posting_rate(burst, T0) == 10
    steady = [T0 - timedelta(hours=2 + i) for i in range(20)]  # none in the last hour
    assert posting_rate(steady, T0) == pytest.approx(20 / 24)
    assert posting_rate([T0 - timedelta(days=3)], T0) == 0
    assert posting_rate([], T0) == 0


def test_interval_adapts_between_the_bounds() -> None:
    fastest, slowest = MIN, 30 * MIN
    assert poll_interval(0, fastest, slowest) == slowest
    assert poll_interval(0.5, fastest, slowest) == slowest
    assert poll_interval(1, fastest, slowest) == 30 * MIN
    assert poll_interval(6, fastest, slowest) == 5 * MIN
    assert poll_interval(30, fastest, slowest) == MIN
    assert poll_interval(500, fastest, slowest) == MIN
    rates = [0, 0.5, 1, 2, 4, 10, 30, 100]
    intervals = [poll_interval(r, fastest, slowest) for r in rates]
    assert intervals == sorted(intervals, reverse=True)


def test_budget_allows_at_most_the_limit_in_any_minute() -> None:
    clock = FakeClock(T0)
    budget = RequestBudget(5, clock)
    taken = []
    for _ in range(600):  # ten minutes in steps of a second
        if budget.take():
            taken.append(clock.now)
        clock.advance(timedelta(seconds=1))
    for i, start in enumerate(taken):
        in_window = [t for t in taken[i:] if t - start < MIN]
        assert len(in_window) <= 5
    assert len(taken) >= 45  # and it is spent, not hoarded


def test_budget_counts_extra_pages_and_may_be_overdrawn() -> None:
    clock = FakeClock(T0)
    budget = RequestBudget(5, clock)
    assert budget.take()
    budget.charge(6)
    assert budget.available() == 0 and not budget.take()
    clock.advance(MIN)
    assert budget.available() == 5


def test_flood_wait_pauses_then_lowers_and_slowly_restores_the_budget() -> None:
    clock = FakeClock(T0)
    budget = RequestBudget(20, clock, recover_after=10 * MIN)
    budget.flood_wait(30)
    assert budget.available() == 0 and budget.paused_until == T0 + timedelta(seconds=30)
    clock.advance(timedelta(seconds=29))
    assert not budget.take()
    clock.advance(timedelta(seconds=1))
    assert budget.limit == 10 and budget.available() == 10
    budget.flood_wait(1)
    assert budget.limit == 5
    limits = []
    for _ in range(10):
        clock.advance(10 * MIN)
        budget.available()
        limits.append(budget.limit)
    # the pause counted from the end of the wait: the first step comes a second later
    assert limits == [5, 6, 7, 8, 10, 12, 15, 18, 20, 20]


def test_budget_survives_the_clock_going_back() -> None:
    clock = FakeClock(T0)
    budget = RequestBudget(2, clock)
    assert budget.take() and budget.take() and not budget.take()
    clock.advance(-timedelta(hours=1))
    assert budget.take()


def test_schedule_orders_due_channels_by_how_overdue() -> None:
    schedule = PollSchedule()
    schedule.plan(1, T0, 5 * MIN)
    schedule.plan(2, T0, MIN)
    schedule.plan(3, T0, 30 * MIN)
    assert schedule.due(T0) == []
    assert schedule.due(T0 + 10 * MIN) == [2, 1]
    schedule.retain([1, 3])
    assert schedule.due(T0 + 31 * MIN) == [1, 3]


# --- the poller against the simulator -------------------------------------------------


@pytest.fixture
def user(sim: Simulator):
    return sim.add_user(phone="+15550001", first_name="Monitor")


def poll_settings(tmp_path: Path, *usernames: str, **jobs: Any) -> Settings:
    specs = [ChannelSpec(name, "poll") for name in usernames]
    return settings_for(tmp_path, *specs, jobs=JobSettings(**jobs))


async def count(app: App, channel_id: int) -> int:
    assert app.db is not None
    return (
        await app.db.fetchone("SELECT count(*) FROM posts WHERE channel_id = ?", (channel_id,))
    )[0]


async def test_poll_channel_is_read_without_joining(sim, user, tmp_path: Path) -> None:
    ch = sim.add_channel(username="quiet_news", title="Тихие новости")
    for i in range(3):
        sim.post(ch, f"старый пост {i}")
    clock = FakeClock()
    async with running_jobs(sim, user, poll_settings(tmp_path, "quiet_news"), clock) as app:
        assert app.jobs is not None
        assert await count(app, ch.id) == 3  # caught up at start
        new = [sim.post(ch, f"новый пост {i}") for i in range(2)]
        assert await run(app.jobs.poll()) == 0  # just caught up: not due yet
        clock.advance(30 * MIN)
        assert await run(app.jobs.poll()) == 2
        assert await count(app, ch.id) == 5
        assert (await archive.find_channel(app.db, ch.id)).last_msg_id == new[-1]
        # nothing new: one cheap request, nothing archived
        clock.advance(30 * MIN)
        before = sim.requests_seen("GetHistoryRequest")
        assert await run(app.jobs.poll()) == 0
        assert sim.requests_seen("GetHistoryRequest") == before + 1
        # a burst of more than a page is fetched in full, and every request is charged
        burst = [sim.post(ch, f"лавина {i}") for i in range(150)]
        clock.advance(30 * MIN)
        before = sim.requests_seen("GetHistoryRequest")
        spent = app.jobs.poller.budget.available()
        assert await run(app.jobs.poll()) == 150
        made = sim.requests_seen("GetHistoryRequest") - before
        assert made == 1 + extra_requests(150) == spent - app.jobs.poller.budget.available()
        assert (await archive.find_channel(app.db, ch.id)).last_msg_id == burst[-1]
    assert sim.requests_seen("JoinChannelRequest") == 0
    assert user.id not in ch.members


async def test_poll_interval_follows_the_posting_rate(sim, user, tmp_path: Path) -> None:
    busy = sim.add_channel(username="busy_front", title="Busy")
    quiet = sim.add_channel(username="quiet_rear", title="Quiet")
    for i in range(40):
        sim.post(busy, f"срочно {i}")
    sim.post(quiet, "раз в неделю", date=utcnow() - timedelta(days=3))
    clock = FakeClock()
    settings = poll_settings(tmp_path, "busy_front", "quiet_rear")
    async with running_jobs(sim, user, settings, clock) as app:
        assert app.jobs is not None
        poller = app.jobs.poller
        await run(app.jobs.poll())
        assert poller.schedule.slots[busy.id].interval == MIN
        assert poller.schedule.slots[quiet.id].interval == 30 * MIN
        clock.advance(MIN)
        assert poller.schedule.due(clock()) == [busy.id]
        # the quiet channel wakes up: once polled, it is polled more often
        for i in range(12):
            sim.post(quiet, f"вдруг активно {i}")
        clock.advance(29 * MIN)
        await run(app.jobs.poll())
        assert await count(app, quiet.id) == 13
        assert poller.schedule.slots[quiet.id].interval == timedelta(seconds=150)


async def test_polling_stays_within_the_request_budget(sim, user, tmp_path: Path) -> None:
    names = [f"chan_{i:02d}" for i in range(8)]
    channels = [sim.add_channel(username=n, title=n) for n in names]
    for ch in channels:
        sim.post(ch, "первый")
    clock = FakeClock()
    async with running_jobs(
        sim, user, poll_settings(tmp_path, *names, poll_budget=3), clock
    ) as app:
        assert app.jobs is not None
        await run(app.jobs.poll())  # plans every channel
        for ch in channels:
            sim.post(ch, "второй")
        clock.advance(30 * MIN)
        history = sim.requests_seen("GetHistoryRequest")
        polled_per_minute = []
        for _ in range(3):
            before = sim.requests_seen("GetHistoryRequest")
            await run(app.jobs.poll())
            clock.advance(timedelta(seconds=30))
            await run(app.jobs.poll())  # same minute: nothing left to spend
            clock.advance(timedelta(seconds=30))
            polled_per_minute.append(sim.requests_seen("GetHistoryRequest") - before)
        assert polled_per_minute == [3, 3, 2]
        assert sim.requests_seen("GetHistoryRequest") - history == 8
        assert [await count(app, ch.id) for ch in channels] == [2] * 8


async def test_flood_wait_pauses_polling_and_lowers_the_budget(sim, user, tmp_path: Path) -> None:
    names = ["front_a", "front_b"]
    channels = [sim.add_channel(username=n, title=n) for n in names]
    clock = FakeClock()
    async with running_jobs(
        sim, user, poll_settings(tmp_path, *names, poll_budget=10), clock
    ) as app:
        assert app.jobs is not None
        await run(app.jobs.poll())
        for ch in channels:
            sim.post(ch, "новое")
        clock.advance(30 * MIN)
        # (the client holds back every request of that kind until the real wait has
        # passed, whatever the jobs' clock says)
        sim.fail(request="GetHistoryRequest", error="FLOOD_WAIT_3", times=1)
        before = sim.requests_seen("GetHistoryRequest")
        assert await run(app.jobs.poll()) == 0
        budget = app.jobs.poller.budget
        assert budget.limit == 5 and budget.paused_until == clock() + timedelta(seconds=3)
        assert app.watcher is not None and app.watcher.flood_waits[-1][1] == 3
        clock.advance(timedelta(seconds=2))
        assert await run(app.jobs.poll()) == 0
        assert sim.requests_seen("GetHistoryRequest") == before + 1  # paused: no request
        assert app.client is not None
        async with asyncio.timeout(10):  # Telegram's own 3 s, in real time
            await app.client.flood_gate.wait("messages.GetHistoryRequest")
        assert sim.requests_seen("GetHistoryRequest") == before + 1
        clock.advance(timedelta(seconds=1))
        assert await run(app.jobs.poll()) == 2
        assert [await count(app, ch.id) for ch in channels] == [1, 1]


async def test_a_channel_that_fails_to_poll_does_not_hold_up_the_others(
    sim, user, tmp_path: Path
) -> None:
    names = ["broken_feed", "fine_feed"]
    broken, fine = (sim.add_channel(username=n, title=n) for n in names)
    clock = FakeClock()
    async with running_jobs(sim, user, poll_settings(tmp_path, *names), clock) as app:
        assert app.jobs is not None and app.watcher is not None
        await run(app.jobs.poll())
        real_poll = app.watcher.poll

        async def poll(watched: Any) -> int:
            if watched.id == broken.id:
                raise RuntimeError("a bug")
            return await real_poll(watched)

        app.watcher.poll = poll  # type: ignore[method-assign]
        sim.post(broken, "не дойдёт")
        sim.post(fine, "дойдёт")
        clock.advance(30 * MIN)
        assert await run(app.jobs.poll()) == 1
        assert await count(app, fine.id) == 1
        slots = app.jobs.poller.schedule.slots
        assert slots[broken.id].due == clock() + 30 * MIN  # tried again later
