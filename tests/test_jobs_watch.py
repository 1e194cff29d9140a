"""The watcher's scheduled jobs: reconcile and metrics against the simulator with the real
Telethon client, the schedule itself with a controlled clock, and the run guard."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.service.jobs import POLL_TICK, WatchJobs, build_watch_scheduler
from bot.simulator import Simulator
from config.settings import JobSettings
from storage import archive
from storage.db import open_database
from storage.models import utcnow
from tests.jobs_helpers import FakeClock, run, running_jobs
from tests.watch_helpers import settings_for


@pytest.fixture
def user(sim: Simulator):
    return sim.add_user(phone="+15550001", first_name="Monitor")


async def test_reconcile_records_missed_posts_edits_and_deletions(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    first = sim.post(ch, "первый")
    second = sim.post(ch, "второй")
    clock = FakeClock()
    async with running_jobs(sim, user, settings_for(tmp_path, "rdk_channel"), clock) as app:
        assert app.jobs is not None and app.db is not None
        # nothing of this is pushed: a gap Telethon would never fill by itself
        sim.edit(ch, first, "первый (исправлено)", push=False)
        sim.delete(ch, [second], push=False)
        lost = sim.post(ch, "потерянный", push=False)
        result = await run(app.jobs.reconcile())
        assert (result.channels, result.new, result.deleted) == (1, 1, 1)
        assert (await archive.get_post(app.db, ch.id, first))["text"] == "первый (исправлено)"
        assert (await archive.get_post(app.db, ch.id, second))["deleted_at"] is not None
        assert await archive.get_post(app.db, ch.id, lost) is not None
        # a second run finds nothing new and costs no history page beyond the check
        again = await run(app.jobs.reconcile())
        assert (again.new, again.deleted) == (0, 0)


async def test_reconcile_of_one_broken_channel_does_not_stop_the_others(sim, user, tmp_path: Path):
    a = sim.add_channel(username="chan_a", title="A")
    b = sim.add_channel(username="chan_b", title="B")
    sim.post(a, "a1")
    sim.post(b, "b1")
    async with running_jobs(
        sim, user, settings_for(tmp_path, "chan_a", "chan_b"), FakeClock()
    ) as app:
        assert app.jobs is not None and app.db is not None
        lost = sim.post(b, "b2", push=False)
        sim.fail(request="GetHistoryRequest", error="MSG_ID_INVALID", code=400, times=1)
        result = await run(app.jobs.reconcile())
        assert result.channels == 1  # the first failed and was logged; the second ran
        assert await archive.get_post(app.db, b.id, lost) is not None
        assert (await run(app.jobs.reconcile())).channels == 2


async def test_metrics_snapshots_recent_posts_over_time(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    old = sim.post(ch, "давно", date=utcnow() - timedelta(days=5))
    a = sim.post(ch, "видео с позиций")
    b = sim.post(ch, "сводка")
    clock = FakeClock()
    async with running_jobs(sim, user, settings_for(tmp_path, "rdk_channel"), clock) as app:
        assert app.jobs is not None and app.db is not None
        sim.set_views(ch, a, views=120, forwards=3, reactions={"👍": 5}, replies=2)
        assert await run(app.jobs.metrics()) == 2
        clock.advance(timedelta(hours=1))
        sim.set_views(ch, a, views=900, forwards=40, reactions={"👍": 30, "🔥": 4}, replies=9)
        assert await run(app.jobs.metrics()) == 2
        rows = await app.db.fetchall(
            """SELECT p.msg_id, m.taken_at, m.views, m.forwards, m.replies, m.reactions
               FROM metrics m JOIN posts p ON p.id = m.post_id ORDER BY p.msg_id, m.taken_at"""
        )
        assert [r["msg_id"] for r in rows] == [a, a, b, b]  # the old post is out of the window
        assert [(r["views"], r["forwards"], r["replies"]) for r in rows[:2]] == [
            (120, 3, 2),
            (900, 40, 9),
        ]
        assert json.loads(rows[1]["reactions"]) == {"👍": 30, "🔥": 4}
        assert rows[1]["taken_at"] > rows[0]["taken_at"]
        current = await archive.get_post(app.db, ch.id, a)
        assert current["views"] == 900  # the post's own counters follow
        assert await archive.get_post(app.db, ch.id, old) is not None


async def _jobs_without_client(tmp_path: Path) -> tuple[WatchJobs, object]:
    db = await open_database(tmp_path / "archive.db")
    settings = settings_for(tmp_path)
    return WatchJobs(settings, db, watcher=None), db  # type: ignore[arg-type]


async def test_a_job_never_overlaps_itself_and_a_failure_is_logged(tmp_path: Path):
    from loguru import logger

    jobs, db = await _jobs_without_client(tmp_path)
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()

    async def broken() -> None:
        raise RuntimeError("boom")

    jobs.reconcile = slow  # type: ignore[method-assign]
    jobs.metrics = broken  # type: ignore[method-assign]
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        async with asyncio.timeout(5):
            first = asyncio.create_task(jobs.run_job("reconcile"))
            await started.wait()
            await jobs.run_job("reconcile")  # skipped: the first is still running
            assert calls == 1
            await jobs.run_job("metrics")
            release.set()
            await first
            await jobs.run_job("reconcile")
    finally:
        logger.remove(sink)
        await db.close()  # type: ignore[attr-defined]
    assert calls == 2
    assert errors == ["the metrics job failed; it runs again at its next time"]


def test_schedule_defaults_with_a_controlled_clock() -> None:
    scheduler = build_watch_scheduler(_NoRunner(), JobSettings())
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"reconcile", "metrics", "poll", "backup"}
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce and job.misfire_grace_time is None
        assert job.args == (job.id,)
    assert isinstance(jobs["reconcile"].trigger, IntervalTrigger)
    assert jobs["reconcile"].trigger.interval == timedelta(minutes=15)
    assert jobs["metrics"].trigger.interval == timedelta(hours=1)
    assert jobs["poll"].trigger.interval == POLL_TICK
    backup = jobs["backup"].trigger
    assert isinstance(backup, CronTrigger)
    noon = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    assert backup.get_next_fire_time(None, noon) == datetime(2024, 6, 2, 3, 0, tzinfo=UTC)
    early = datetime(2024, 6, 1, 2, 59, tzinfo=UTC)
    assert backup.get_next_fire_time(None, early) == datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
    # intervals count from the previous run, whatever the time now
    start = jobs["reconcile"].trigger.start_date
    assert jobs["reconcile"].trigger.get_next_fire_time(start, start) == start + timedelta(
        minutes=15
    )


def test_schedule_follows_the_settings() -> None:
    config = JobSettings(
        reconcile_every=None,
        metrics_every=timedelta(minutes=10),
        media_download=True,
        media_retention=timedelta(days=30),
        backup_keep=0,
        backup_at=time(4, 30),
    )
    scheduler = build_watch_scheduler(_NoRunner(), config)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"metrics", "poll", "download_media", "prune_media"}
    assert jobs["metrics"].trigger.interval == timedelta(minutes=10)
    assert jobs["download_media"].trigger.interval == timedelta(minutes=1)


class _NoRunner:
    async def run_job(self, name: str) -> None:
        raise AssertionError("not run in these tests")


async def test_the_service_runs_its_scheduler_until_stopped(sim, user, tmp_path: Path):
    sim.add_channel(username="rdk_channel", title="РДК")
    settings = settings_for(tmp_path, "rdk_channel")
    async with running_jobs(sim, user, settings, FakeClock(), scheduled=True) as app:
        assert app.jobs is not None and app.jobs.scheduler is not None
        assert app.jobs.scheduler.running
        ids = {job.id for job in app.jobs.scheduler.get_jobs()}
        assert ids == {"reconcile", "metrics", "poll", "backup"}
        # the nightly backup goes next to the database by default
        made = await run(app.jobs.backup())
        assert made.parent == tmp_path / "backups" and made.stat().st_size > 0
    assert not app.jobs.scheduler.running
