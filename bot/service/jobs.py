"""The watcher's scheduled jobs, and the scheduler that runs them.

Each job is a plain async method here (tests call them directly, with a controlled
clock); `build_watch_scheduler()` only decides how often. A run of a job never
overlaps another run of the same job (the scheduler's max_instances=1 and coalescing,
and a guard here for direct calls), and a failing run is logged and retried at the
job's next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger

from bot.watch.maintenance import Reconciled, reconcile_channels, snapshot_metrics
from bot.watch.media import MediaDownloader, Wanted, prune_media
from bot.watch.polling import Poller, RequestBudget
from bot.watch.watcher import Watcher
from config.settings import JobSettings, Settings
from storage.backup import backup_database
from storage.db import Database
from storage.models import utcnow

Clock = Callable[[], datetime]

POLL_TICK = timedelta(seconds=5)
MEDIA_TICK = timedelta(minutes=1)
RETENTION_EVERY = timedelta(hours=6)
STOP_TIMEOUT = 30.0


class JobRunner(Protocol):
    async def run_job(self, name: str) -> None: ...


class WatchJobs:
    """Reconcile, metrics, polling, media download, backups and media retention."""

    def __init__(
        self, settings: Settings, db: Database, watcher: Watcher, *, clock: Clock = utcnow
    ) -> None:
        self.settings = settings
        self.config = settings.jobs
        self.db = db
        self.watcher = watcher
        self.clock = clock
        self.poller = Poller(
            watcher,
            db,
            RequestBudget(self.config.poll_budget, clock),
            fastest=self.config.poll_fastest,
            slowest=self.config.poll_slowest,
            clock=clock,
        )
        self.media = MediaDownloader(
            watcher,
            db,
            settings.media_dir,
            Wanted(self.config.media_kinds, self.config.media_max_size),
        )
        self.runs: Counter[str] = Counter()
        self.scheduler: AsyncIOScheduler | None = None
        self._running: dict[str, asyncio.Task[Any]] = {}

    def use_clock(self, clock: Clock) -> None:
        """Drive every job (and the poll budget) by `clock` (tests, simulations)."""
        self.clock = self.poller.clock = self.poller.budget.clock = clock

    # --- the jobs ----------------------------------------------------------------

    async def reconcile(self) -> Reconciled:
        return await reconcile_channels(self.watcher, self.config.reconcile_depth)

    async def metrics(self) -> int:
        return await snapshot_metrics(self.watcher, self.clock(), self.config.metrics_window)

    async def poll(self) -> int:
        return await self.poller.tick()

    async def download_media(self) -> int:
        return await self.media.run(self.clock(), self.config.media_per_minute)

    async def backup(self) -> Path:
        return await backup_database(
            self.settings.db_path, self.settings.backup_dir, self.clock(), self.config.backup_keep
        )

    async def prune_media(self) -> int:
        retention = self.config.media_retention
        if retention is None:
            return 0
        return await prune_media(self.db, self.settings.media_dir, self.clock(), retention)

    # --- running them -----------------------------------------------------------

    async def run_job(self, name: str) -> None:
        """Run one job by name, unless a run of it is still going; log its failure."""
        if name in self._running:
            logger.debug("{job} is still running; skipping this turn", job=name)
            return
        task = asyncio.current_task()
        assert task is not None
        self._running[name] = task
        try:
            await getattr(self, name)()
        except Exception:
            logger.exception("the {job} job failed; it runs again at its next time", job=name)
        finally:
            self._running.pop(name, None)
            self.runs[name] += 1

    def start(self) -> None:
        if self.scheduler is None:
            config = self.config
            if not isinstance(self.settings.db_path, Path):
                # a PostgreSQL archive is backed up with the server's tools (pg_dump)
                config = dataclasses.replace(config, backup_keep=0)
            self.scheduler = build_watch_scheduler(self, config)
            self.scheduler.start()
            names = ", ".join(job.id for job in self.scheduler.get_jobs())
            logger.info("scheduled jobs: {names}", names=names)

    async def stop(self) -> None:
        """Stop scheduling and cancel runs in progress (a backup removes its partial copy)."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT):
                    await asyncio.gather(*tasks, return_exceptions=True)


def build_watch_scheduler(runner: JobRunner, config: JobSettings) -> AsyncIOScheduler:
    """Schedule the jobs the settings turn on (times in UTC):

    reconcile and metrics every configured interval; polling every 5 s (each channel
    has its own adaptive interval inside); media download every minute when enabled;
    the backup daily at the configured time when kept; media retention every 6 h
    when set. A run that is late (the loop was busy) still runs, once.
    """
    scheduler = AsyncIOScheduler(timezone="UTC")

    def every(name: str, interval: timedelta) -> None:
        add(name, IntervalTrigger(seconds=interval.total_seconds(), timezone="UTC"))

    def add(name: str, trigger: Any) -> None:
        scheduler.add_job(
            runner.run_job,
            trigger,
            args=[name],
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    if config.reconcile_every is not None:
        every("reconcile", config.reconcile_every)
    if config.metrics_every is not None:
        every("metrics", config.metrics_every)
    every("poll", POLL_TICK)
    if config.media_download:
        every("download_media", MEDIA_TICK)
    if config.backup_keep > 0:
        at = config.backup_at
        add("backup", CronTrigger(hour=at.hour, minute=at.minute, timezone="UTC"))
    if config.media_retention is not None:
        every("prune_media", RETENTION_EVERY)
    return scheduler
