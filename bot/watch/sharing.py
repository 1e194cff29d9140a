"""This watcher's share of the channels when several watchers share one archive.

Every quarter of the lease time (and at once when an admin adds or removes a
channel) the watcher renews its lease in the archive and runs `shares.plan` over
the rows; then it starts watching what it now holds and stops watching what it
gave up. A watcher that cannot renew (the archive is away) stops watching its
channels once its lease has expired, since the others take them over then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from loguru import logger

from bot.floodgate import Slots
from bot.watch.shares import Held, key_of, plan
from bot.watch.watcher import Watcher
from config.settings import ChannelSpec
from storage import archive, shares, watchlist
from storage.db import Database, DatabaseError
from storage.models import Channel


class Sharing:
    def __init__(
        self,
        watcher: Watcher,
        db: Database,
        configured: Sequence[ChannelSpec],
        *,
        name: str,
        join_limit: int,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.watcher = watcher
        self.db = db
        self.configured = list(configured)
        self.name = name
        self.join_limit = join_limit
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.renewed_at: float | None = None
        self._swept = False
        self._failing = False  # the last renewal failed (warned once, then quiet)
        self._applied: dict[str, str] = {}  # the lease mode last acted on, per channel
        self._specs: dict[str, ChannelSpec] = {}
        self._adopting: dict[str, asyncio.Task[None]] = {}
        self._slots = Slots(watcher.concurrency)
        self._wake = asyncio.Event()
        self.log = logger.bind(watcher=name)
        self._held: dict[str, str] = {}
        # set while this watcher's lease has expired unrenewed (it watches nothing then)
        self.expired = asyncio.Event()
        watcher.account = name
        watcher.on_watchlist_change = self._wake.set
        watcher.still_held = lambda key: key in self._held
        watcher.team = lambda: list(self._team)
        self._team: list[Channel] = []  # the configured channels every watcher reads

    @property
    def interval(self) -> float:
        return self.lease_seconds / 4

    async def first_share(self) -> list[ChannelSpec]:
        """Take this watcher's share before it starts; the specs to start with."""
        held = self._held = await self._round()
        specs = [self._spec(key, mode) for key, mode in sorted(held.items())]
        self.log.info(
            "holding {n} of {total} channels ({live} live)",
            n=len(specs),
            total=len(self._specs),
            live=sum(1 for s in specs if s.mode == "live"),
        )
        return specs

    async def run(self, stopping: asyncio.Event, started: asyncio.Event) -> None:
        """Renew and rebalance until `stopping` is set. Until `started` (the watcher
        has started on its first share) it gives up what others now hold but takes
        nothing new."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            if stopping.is_set():
                break
            try:
                held = await self._round()
                self._held = held
                if not started.is_set():
                    # still starting on the first share: give up what others now hold
                    # (start() skips those it has not come to yet); take nothing new
                    await self.apply(held, adopt=False)
                else:
                    await self.apply(held)
                    if not self._swept and not self._adopting:  # once its share is watched
                        self._swept = True
                        if left := await self.watcher.leave_unwatched():
                            self.log.info(
                                "left {n} channels joined before and held by others", n=left
                            )
            except DatabaseError as exc:
                try:
                    await self._renew_failed(exc)
                except Exception:
                    self.log.exception("could not stop watching after the lease expired")
            except Exception:
                self.log.exception("sharing the channels failed; trying again")

    async def leave(self) -> None:
        """Give the channels up at once when stopping (others need not wait the lease)."""
        await self._stop_adopting()
        try:
            await shares.leave(self.db, self.name)
        except (*DatabaseError, OSError, TimeoutError) as exc:
            # the leases then expire by themselves: others wait out the lease instead
            self.log.warning("could not give the channels up: {error}", error=str(exc))

    async def _round(self) -> dict[str, str]:
        specs = await watchlist.effective_specs(self.db, self.configured)
        self._specs = {key_of(spec.ref): spec for spec in specs}
        channels = {key: spec.mode for key, spec in self._specs.items()}

        def decide(
            watchers: list[shares.WatcherRow], leases: list[shares.LeaseRow]
        ) -> shares.Changes:
            result = plan(
                self.name,
                channels,
                {w.name: w.live_limit for w in watchers},
                {lease.channel: Held(lease.watcher, lease.mode) for lease in leases},
            )
            return shares.Changes(result.claim, result.release, result.remode)

        now = self.clock()
        after = await shares.share_round(
            self.db,
            self.name,
            self.join_limit,
            now=now,
            ttl=self.lease_seconds,
            decide=decide,
        )
        self.renewed_at = now
        self._team = [
            c
            for c in await archive.list_channels(self.db)
            if key_of(c.username or c.id) in self._specs
        ]
        self._failing = False
        if self.expired.is_set():
            self.log.warning("renewed this watcher's lease again; taking a share of the channels")
            self.expired.clear()
        return after.held_by(self.name)

    async def apply(self, held: dict[str, str], *, adopt: bool = True) -> None:
        """Watch what this watcher holds, in the mode it holds it; stop the rest."""
        gone = [key for key in self.watcher.keys if key not in held]
        for key in gone:
            await self.watcher.drop(key)
        unavailable = self.watcher.unavailable
        new = [
            key
            for key in held
            if adopt
            and key not in self.watcher.keys
            and key not in self._adopting
            and self._spec(key, held[key]).label not in unavailable  # reported once
        ]
        for key in gone:
            self._applied.pop(key, None)
        for key, mode in held.items():
            # only a change of the lease: a channel Telegram would not let this account
            # join stays polled until then, rather than being tried again every round
            if key in self.watcher.keys and self._applied.get(key, mode) != mode:
                await self.watcher.remode(key, mode)
            self._applied[key] = mode
        for key in new:
            task = asyncio.create_task(self._adopt(self._spec(key, held[key])))
            self._adopting[key] = task
            task.add_done_callback(lambda _, key=key: self._adopting.pop(key, None))
        if gone or new:
            self.log.info(
                "took {new} channels, gave up {gone}; holding {n}",
                new=len(new),
                gone=len(gone),
                n=len(held),
            )

    async def _adopt(self, spec: ChannelSpec) -> None:
        try:
            async with self._slots.taken():
                await self.watcher.adopt(spec)
        except (OSError, TimeoutError) as exc:
            # the reconnect's catch-up or the next round picks it up
            self.log.bind(channel=spec.label).warning(
                "could not start watching {channel}: {error}",
                channel=spec.label,
                error=exc.__class__.__name__,
            )
        except Exception:
            self.log.bind(channel=spec.label).exception("could not start watching the channel")

    def _spec(self, key: str, mode: str) -> ChannelSpec:
        spec = self._specs.get(key)
        ref: str | int = spec.ref if spec is not None else key
        return ChannelSpec(ref, "live" if mode == "live" else "poll")

    async def _renew_failed(self, exc: BaseException) -> None:
        expired = self.renewed_at is None or self.clock() >= self.renewed_at + self.lease_seconds
        if self.expired.is_set():
            return  # said once; nothing held any more
        self.log.log(
            "WARNING" if expired or not self._failing else "DEBUG",
            "cannot renew this watcher's lease ({error}){more}",
            error=exc.__class__.__name__,
            more="; it has expired, so its channels go to the others" if expired else "",
        )
        self._failing = True
        if expired:
            await self._stop_adopting()
            self._held = {}
            await self.apply({})
            self.expired.set()

    async def _stop_adopting(self) -> None:
        tasks = list(self._adopting.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
