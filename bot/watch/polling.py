"""Reading `poll` channels without joining them.

Three parts: the adaptive interval (a pure function of the channel's recent posting
rate), the request budget shared by every polled channel (a sliding window over an
injected clock, lowered by FloodWait), and the poller, which on each tick polls the
channels that are due, most overdue first, for as long as the budget allows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from telethon import errors

from bot.clients import HeldForFloodWait
from bot.watch.watcher import BATCH, Watched, Watcher
from storage import archive
from storage.db import Database, DatabaseError

Clock = Callable[[], datetime]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Newest posts looked at to estimate a channel's rate (bounded work per poll).
RATE_SAMPLE = 300


def extra_requests(seen: int) -> int:
    """Requests a poll made beyond the first: none below a page of new posts; past it,
    the watcher pages through them all (one request per page, and one to find the end)."""
    return 0 if seen < BATCH else -(-seen // BATCH) + 1


def posting_rate(dates: Iterable[datetime], now: datetime) -> float:
    """Posts per hour: the last hour's count, or the last day's average if higher
    (a burst speeds polling up at once; a quiet hour after a busy day does not stop it)."""
    last_hour = last_day = 0
    for date in dates:
        age = now - date
        if age <= DAY:
            last_day += 1
            if age <= HOUR:
                last_hour += 1
    return max(float(last_hour), last_day / 24)


def poll_interval(rate: float, fastest: timedelta, slowest: timedelta) -> timedelta:
    """About two polls per expected gap between posts: 30 posts an hour or more polls at
    `fastest` (1 min by default), one an hour every 30 min, a silent channel at `slowest`."""
    if rate <= 0:
        return slowest
    return min(max(timedelta(seconds=1800 / rate), fastest), slowest)


class RequestBudget:
    """At most `limit` requests in any minute (a sliding window).

    A FloodWait pauses every request until it has passed and halves the limit; each
    `recover_after` without another raises it by a quarter (at least one) until it is
    back at the configured number.
    """

    WINDOW = timedelta(minutes=1)

    def __init__(
        self, per_minute: int, clock: Clock, *, recover_after: timedelta = timedelta(minutes=10)
    ) -> None:
        if per_minute < 1:
            raise ValueError("the budget needs at least one request a minute")
        self.configured = per_minute
        self.limit = per_minute
        self.clock = clock
        self.recover_after = recover_after
        self.paused_until: datetime | None = None
        self._spent: deque[datetime] = deque()
        self._calm_since = clock()

    def _refresh(self, now: datetime) -> None:
        # entries from the future mean the clock went back: forget them rather than stall
        self._spent = deque(t for t in self._spent if now - self.WINDOW < t <= now)
        while self.limit < self.configured and now - self._calm_since >= self.recover_after:
            self.limit = min(self.configured, self.limit + max(1, self.limit // 4))
            self._calm_since += self.recover_after
        if self.paused_until is not None and now >= self.paused_until:
            self.paused_until = None

    def available(self) -> int:
        now = self.clock()
        self._refresh(now)
        if self.paused_until is not None:
            return 0
        return max(0, self.limit - len(self._spent))

    def take(self, n: int = 1) -> bool:
        """Spend `n` requests if the budget allows them now."""
        if self.available() < n:
            return False
        self.charge(n)
        return True

    def charge(self, n: int) -> None:
        """Record requests already made (pages beyond the first); may overdraw."""
        now = self.clock()
        self._spent.extend([now] * n)

    def hold(self, seconds: int) -> None:
        """Spend nothing for `seconds` (a FloodWait someone else hit), limit unchanged."""
        until = self.clock() + timedelta(seconds=max(seconds, 1))
        self.paused_until = max(self.paused_until or until, until)

    def flood_wait(self, seconds: int) -> None:
        now = self.clock()
        until = now + timedelta(seconds=max(seconds, 1))
        self.paused_until = max(self.paused_until or until, until)
        self.limit = max(1, self.limit // 2)
        self._calm_since = until


@dataclass
class Slot:
    due: datetime
    interval: timedelta


class PollSchedule:
    """When each polled channel is due next."""

    def __init__(self) -> None:
        self.slots: dict[int, Slot] = {}

    def retain(self, channel_ids: Iterable[int]) -> None:
        keep = set(channel_ids)
        for channel_id in list(self.slots):
            if channel_id not in keep:
                del self.slots[channel_id]

    def plan(self, channel_id: int, now: datetime, interval: timedelta) -> None:
        self.slots[channel_id] = Slot(now + interval, interval)

    def due(self, now: datetime) -> list[int]:
        """Channels whose time has come, most overdue first."""
        ready = [(slot.due, cid) for cid, slot in self.slots.items() if slot.due <= now]
        return [cid for _, cid in sorted(ready)]


class Poller:
    """Polls the watcher's `poll` channels on their adaptive intervals within the budget.

    `tick()` does one round and returns; the scheduler calls it every few seconds. A
    channel the budget cannot afford now stays due for the next tick.
    """

    def __init__(
        self,
        watcher: Watcher,
        db: Database,
        budget: RequestBudget,
        *,
        fastest: timedelta,
        slowest: timedelta,
        clock: Clock,
    ) -> None:
        self.watcher = watcher
        self.db = db
        self.budget = budget
        self.fastest = fastest
        self.slowest = slowest
        self.clock = clock
        self.schedule = PollSchedule()
        self.polls = 0
        self.write_failing = False

    def polled(self) -> dict[int, Watched]:
        return {cid: w for cid, w in self.watcher.channels.items() if w.channel.mode == "poll"}

    async def interval(self, channel_id: int) -> timedelta:
        dates = await archive.recent_post_dates(self.db, channel_id, RATE_SAMPLE)
        rate = posting_rate(dates, self.clock())
        return poll_interval(rate, self.fastest, self.slowest)

    async def tick(self) -> int:
        """Poll every channel that is due while the budget lasts; returns posts found."""
        channels = self.polled()
        self.schedule.retain(channels)
        for channel_id in channels.keys() - self.schedule.slots.keys():
            # just caught up (at start, or by /watch): due after its first interval
            self.schedule.plan(channel_id, self.clock(), await self.interval(channel_id))
        if not self.watcher.client.is_connected():
            return 0
        found = 0
        for channel_id in self.schedule.due(self.clock()):
            if not self.budget.take():
                logger.debug("poll budget spent; the rest wait for the next tick")
                break
            watched = channels[channel_id]
            log = logger.bind(channel=channel_id)
            try:
                seen = await self.watcher.poll(watched)
            except HeldForFloodWait as exc:
                # not sent: a wait another job hit is still running; not a new FloodWait
                self.budget.hold(exc.seconds)
                log.debug("polling waits {seconds} s more for a FloodWait", seconds=exc.seconds)
                break
            except errors.FloodWaitError as exc:
                self._flood_wait(channel_id, exc.seconds)
                break
            except (ConnectionError, OSError, TimeoutError) as exc:
                log.warning("poll interrupted ({error}); retried next tick", error=repr(exc))
                break
            except DatabaseError as exc:
                # the archive cannot be written (disk full, locked ...): the head stays put,
                # so the next successful poll fetches the same posts again
                if not self.write_failing:
                    log.warning("poll not archived ({error}); polling retries", error=str(exc))
                self.write_failing = True
                break
            except errors.RPCError as exc:
                log.warning(
                    "could not poll {title}: {error}; trying again in {minutes:.0f} min",
                    title=watched.channel.title,
                    error=exc.__class__.__name__,
                    minutes=self.slowest.total_seconds() / 60,
                )
                await archive.set_channel_error(self.db, channel_id, exc.__class__.__name__)
                self.schedule.plan(channel_id, self.clock(), self.slowest)
                continue
            except Exception:
                # a bug or a bad record must not hold up the channels due after this one
                log.exception("polling the channel failed; trying again later")
                self.schedule.plan(channel_id, self.clock(), self.slowest)
                continue
            self.polls += 1
            self.write_failing = False
            self.budget.charge(extra_requests(seen))
            found += seen
            interval = await self.interval(channel_id)
            self.schedule.plan(channel_id, self.clock(), interval)
            if seen:
                log.info(
                    "polled {n} new posts; next poll in {seconds:.0f} s",
                    n=seen,
                    seconds=interval.total_seconds(),
                )
        return found

    def _flood_wait(self, channel_id: int, seconds: int) -> None:
        self.budget.flood_wait(seconds)
        self.watcher.flood_waits.append((str(channel_id), seconds))
        self.watcher.flood_wait_times.append(self.clock())
        logger.bind(channel=channel_id).warning(
            "FloodWait while polling: pausing polling for {seconds} s; "
            "budget lowered to {limit} requests a minute",
            seconds=seconds,
            limit=self.budget.limit,
        )
