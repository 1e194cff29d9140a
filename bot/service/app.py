"""Builds and wires the parts; owns start, reconnects, and a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable
from typing import Any

from loguru import logger

from bot.alerts.alertbot import AlertBot, BotOptions
from bot.alerts.bot_client import BotLoginError
from bot.alerts.notifier import DeliveredListener
from bot.alerts.policy import Policy
from bot.clients import MonitorClient, SessionStore, user_client
from bot.detection import set_cache_budget, widen_cache_budget_for_worker
from bot.pipeline import Pipeline
from bot.pool import DetectionPool
from bot.service.jobs import WatchJobs
from bot.service.systemd import Notifier as SystemdNotifier
from bot.service.systemd import watchdog_interval
from bot.watch.sharing import Sharing
from bot.watch.watcher import Watcher
from config.settings import Settings
from storage import outbox, overview, watchlist
from storage.db import Database, DatabaseError, describe_unavailable, open_database, unavailable

BACKOFF_MAX = 300.0
STATUS_INTERVAL = 30.0
LEASE_POLL = 2.0  # seconds between tries for the delivery lease (the takeover time)


class NotAuthorized(Exception):
    """The session has no logged-in account."""


class App:
    def __init__(
        self,
        settings: Settings,
        *,
        session: SessionStore | None = None,
        client_options: dict[str, Any] | None = None,
        page_wait: float | None = None,
        bot: BotOptions | None = None,
        scheduled_jobs: bool = True,
    ) -> None:
        """`bot` runs the analysts' bot (alerts, commands, digests); without it the bot
        runs only when CHANWATCH_BOT_TOKEN is set, with production defaults.
        `scheduled_jobs=False` leaves the watcher's jobs (`app.jobs`) to be called by hand."""
        self.settings = settings
        self._session = session
        self._client_options = client_options or {}
        self._page_wait = page_wait
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.connection_lost = asyncio.Event()  # set when Telethon gave up and we back off
        self.db: Database | None = None
        self.client: MonitorClient | None = None
        self.pipeline: Pipeline | None = None
        self.pool: DetectionPool | None = None
        self.watcher: Watcher | None = None
        self.bot: AlertBot | None = None
        self.jobs: WatchJobs | None = None
        self._scheduled_jobs = scheduled_jobs
        self.catchups = 0
        self._bot_options = bot if bot is not None else BotOptions()
        self._run_bot = bot is not None or settings.bot_token is not None
        self._alert_listeners: list[DeliveredListener] = []
        self.systemd = SystemdNotifier()
        self._heartbeat: asyncio.Task[None] | None = None
        self._leading: asyncio.Task[None] | None = None
        self.sharing: Sharing | None = None
        self._sharing_task: asyncio.Task[None] | None = None

    def on_alert(self, listener: DeliveredListener) -> None:
        """Call `listener` with every alert message delivered (demo, benchmarks, tests)."""
        self._alert_listeners.append(listener)
        if self.bot is not None:
            self.bot.add_listener(listener)

    async def run(self) -> None:
        """Run until `stop()` (or SIGTERM/SIGINT when installed)."""
        self.db = await open_database(self.settings.db_path)
        self._heartbeat = asyncio.create_task(self._beat())
        try:
            policy = Policy(max_age=self.settings.alert_max_age)
            set_cache_budget(self.settings.cache_mb)
            self.pool = DetectionPool(
                self.settings.detection_workers, setup=widen_cache_budget_for_worker
            )
            self.pipeline = Pipeline(
                self.db, policy=policy, clock=self._bot_options.clock, pool=self.pool
            )
            self.client = user_client(self.settings, self._session, **self._client_options)
            specs = await watchlist.effective_specs(self.db, self.settings.channels)
            self.watcher = Watcher(
                self.client,
                self.db,
                self.pipeline,
                specs,
                backfill=self.settings.backfill,
                page_wait=self._page_wait,
                concurrency=self.settings.catchup_concurrency,
            )
            if self.db.dialect == "postgresql":
                # several watchers may share this archive: each watches its share
                self.sharing = Sharing(
                    self.watcher,
                    self.db,
                    self.settings.channels,
                    name=self.settings.watcher,
                    join_limit=self.settings.join_limit,
                    lease_seconds=self.settings.lease_seconds,
                )
                self.watcher.specs = await self.sharing.first_share()
                self._sharing_task = asyncio.create_task(
                    self.sharing.run(self.stopping, self.ready), name="channel-leases"
                )
            self.client.reconnect_callbacks.append(self._after_reconnect)
            self.jobs = WatchJobs(self.settings, self.db, self.watcher)
            if self._run_bot and self.db.dialect == "postgresql":
                # several watchers may share this archive: one of them delivers
                self._leading = asyncio.create_task(self._lead(), name="delivery-lease")
            elif self._run_bot:
                try:
                    await self._start_bot()
                except BotLoginError as exc:
                    raise NotAuthorized(str(exc)) from None
            await self._serve()
        finally:
            await self._shutdown()

    async def _start_bot(self) -> None:
        assert self.db and self.pipeline and self.watcher
        self.bot = AlertBot(
            self.settings,
            self.db,
            self.pipeline,
            self._bot_options,
            channels=self.watcher,
            flood_waits=self.watcher.flood_waits_since,
        )
        for listener in self._alert_listeners:
            self.bot.add_listener(listener)
        await self.bot.start()

    async def _lead(self) -> None:
        """Deliver alerts while this process holds the delivery lease; try to take it
        every few seconds while another watcher holds it (or the server is away)."""
        from storage.leases import DELIVER, Lease  # PostgreSQL only: SQLite needs no asyncpg
        from storage.pg import listen

        assert isinstance(self.settings.db_path, str)
        url = self.settings.db_path
        lease = Lease(url, DELIVER, self.settings.watcher)
        log = logger.bind(watcher=self.settings.watcher)
        failing = False  # warned once per outage; the retries every 2 s are quiet
        # alerts the other watchers plan wake the notifier at once, not at its next check
        listening: asyncio.Task[None] | None = None
        try:
            while not self.stopping.is_set():
                try:
                    held = await lease.try_acquire()
                    failing = False
                except (*DatabaseError, OSError, TimeoutError) as exc:
                    held = False
                    log.log(
                        "DEBUG" if failing else "WARNING",
                        "cannot reach the archive for the delivery lease: {e}",
                        e=exc,
                    )
                    failing = True
                if held and self.bot is None:
                    log.info("delivering alerts: this watcher holds the delivery lease")
                    try:
                        await self._start_bot()
                    except BotLoginError:
                        log.exception("the bot cannot log in; alerts wait in the outbox")
                        await lease.release()
                        return
                    assert self.bot is not None and self.bot.notifier is not None
                    listening = asyncio.create_task(
                        listen(url, outbox.OUTBOX_CHANNEL, self.bot.notifier.wake),
                        name="outbox-notices",
                    )
                elif not held and self.bot is not None:
                    log.warning("lost the delivery lease; another watcher delivers")
                    await _cancelled(listening)
                    listening = None
                    bot, self.bot = self.bot, None
                    await bot.stop(graceful=False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), LEASE_POLL)
        finally:
            await _cancelled(listening)
            await lease.release()

    async def _serve(self) -> None:
        assert self.client and self.watcher
        delay = 1.0
        first = True
        self.watcher.add_handlers()  # before connecting: no update is dropped at start
        while not self.stopping.is_set():
            try:
                await self.client.connect()
                if first and not await self.client.is_user_authorized():
                    raise NotAuthorized(
                        "the session has no logged-in account; run `chanwatch login` first"
                    )
                # resolving, joining and catching up, channels side by side; a stop
                # does not wait for a FloodWait to pass
                if not await self._unless_stopped(self._catch_up(start=first)):
                    break
                first = False
                delay = 1.0
                if not self.ready.is_set():
                    self.systemd.ready(await self.status_line())
                self.ready.set()
                if self._scheduled_jobs and self.jobs is not None:
                    self.jobs.start()  # once; later reconnects keep it running
                logger.info("watching {n} channels", n=len(self.watcher.channels))
                await self._until_disconnected_or_stopped()
            except (TimeoutError, OSError, ConnectionError) as exc:
                self.connection_lost.set()
                logger.warning(
                    "connection lost ({error}); reconnecting in {delay:.0f} s",
                    error=exc.__class__.__name__,
                    delay=delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, BACKOFF_MAX)
            except DatabaseError as exc:
                if not unavailable(exc):
                    raise
                # disk full or read-only while starting: keep trying rather than exit
                assert self.db is not None
                logger.error(
                    "{what}; retrying in {delay:.0f} s",
                    what=describe_unavailable(self.db.path, exc),
                    delay=delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def _until_disconnected_or_stopped(self) -> None:
        assert self.client
        stop = asyncio.ensure_future(self.stopping.wait())
        gone = asyncio.ensure_future(self.client.disconnected)
        try:
            await asyncio.wait({stop, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if gone.done() and not self.stopping.is_set():
            exc = gone.exception() if not gone.cancelled() else None
            raise ConnectionError(str(exc) if exc else "disconnected")
        gone.cancel()

    async def _catch_up(self, *, start: bool = False) -> None:
        assert self.watcher
        if start:
            await self.watcher.start()
        else:
            await self.watcher.catch_up_all()
        self.catchups += 1

    async def _unless_stopped(self, work: Awaitable[None]) -> bool:
        """Run `work` unless stop() comes first (then it is cancelled); True if it ran."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            return False
        task.result()
        return True

    async def _after_reconnect(self) -> None:
        if self.stopping.is_set():
            return
        logger.info("reconnected; catching up above the archive head")
        try:
            await self._catch_up()
        except (OSError, TimeoutError) as exc:  # ConnectionError included
            if not self.stopping.is_set():  # a stop cuts the connection on purpose
                logger.warning(
                    "catch-up after reconnect interrupted ({error}); the next reconnect "
                    "or the reconcile job fetches the rest",
                    error=exc.__class__.__name__,
                )
        except Exception:
            if not self.stopping.is_set():
                logger.exception("catch-up after reconnect failed; the next one will retry")

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("received {signal}; stopping after in-flight writes", signal=sig.name)
        self.stop()

    async def status_line(self) -> str:
        """One line for `systemctl status`: channels, newest post, its lag, alert queue."""
        assert self.db is not None
        channels = len(self.watcher.channels) if self.watcher else 0
        newest = await overview.newest_capture(self.db)
        queue = await outbox.pending_count(self.db)
        if newest is None:
            return f"{channels} channels, no posts yet, {queue} alerts queued"
        posted, captured = newest
        lag = (captured - posted).total_seconds()
        return (
            f"{channels} channels, last post {posted:%Y-%m-%d %H:%M} UTC "
            f"(archived after {max(lag, 0):.0f} s), {queue} alerts queued"
        )

    async def _beat(self) -> None:
        """Ping the systemd watchdog from the event loop (a stuck loop stops the pings,
        so systemd restarts the service) and refresh the status line."""
        interval = min(watchdog_interval() or STATUS_INTERVAL, STATUS_INTERVAL)
        while True:
            self.systemd.watchdog()
            if self.ready.is_set():
                try:
                    self.systemd.status(await self.status_line())
                except Exception:
                    logger.exception("could not build the status line")
            await asyncio.sleep(interval)

    async def _shutdown(self) -> None:
        self.systemd.stopping()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self.jobs is not None:
            await self.jobs.stop()
        if self.bot is not None:
            # a stop (signal, stop()) lets alerts being sent be recorded; a crash does not
            await self.bot.stop(graceful=self.stopping.is_set())
        await _cancelled(self._leading)  # the lease goes only once nothing is being sent
        await _cancelled(self._sharing_task)
        if self.sharing is not None and self.stopping.is_set():
            await self.sharing.leave()  # a crash leaves them to expire instead
        if self.watcher is not None:
            await self.watcher.close()
        if self.client is not None:
            await self.client.disconnect()
        if self.pipeline is not None:
            await self.pipeline.drain()
        if self.pool is not None:
            self.pool.close()
        if self.db is not None:
            await self.db.close()


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    """Cancel the task (if any) and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
