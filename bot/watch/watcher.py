"""The user client's side: resolve and join channels, live events, catch-up.

The archive keeps its own truth: at start and after every reconnect each
channel's history above the last archived id is fetched before live events
are relied on, because Telethon does not fetch missed channel posts itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from loguru import logger
from telethon import errors, events, functions, types, utils
from telethon.tl.tlobject import TLRequest

from bot.clients import HeldForFloodWait, MonitorClient, request_kind, waiting_out_flood_waits
from bot.floodgate import Slots
from bot.pipeline import Pipeline, Source
from bot.watch.shares import key_of
from bot.watch.telegram import channel_id_of, salvage, to_post
from config.settings import Backfill, ChannelSpec
from storage import archive, shares, watchlist
from storage.db import Database, DatabaseError, describe_unavailable, unavailable
from storage.models import Channel, Post, utcnow

BATCH = 100
PAGE_WAIT = 0.0  # seconds between history pages (Telegram answers too fast with FLOOD_WAIT)
RECONCILE_DEPTH = 100
HISTORY = "messages.GetHistoryRequest"  # the request a catch-up begins with (request_kind)
EARLY_EVENTS_MAX = 10_000
T = TypeVar("T")
# Channels resolved and caught up at once (CHANWATCH_CATCHUP_CONCURRENCY); a channel
# waiting out a FloodWait does not count, so one wait never holds up the others.
CONCURRENCY = 4
# While the archive cannot be written (disk full, read-only, locked) new posts are not
# held in memory: the archive head stays put and they are fetched again from Telegram
# once a write succeeds. Edits and deletions pushed meanwhile are kept, up to these
# bounds; past them the oldest are dropped and the channel's newest posts re-read.
PENDING_EDITS_MAX = 2_000
PENDING_DELETIONS_MAX = 20_000
REPAIR_FIRST = 1.0  # seconds before the first retry; doubles up to REPAIR_MAX
REPAIR_MAX = 60.0
OUTAGE_LOG_EVERY = 300.0  # seconds between repeated errors while writes keep failing


@dataclass
class Watched:
    channel: Channel
    entity: types.InputPeerChannel
    # Held while catching up; live events for the channel wait on it, so a post
    # newer than the archive head is never recorded before the ones under it.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> int:
        return self.channel.id


class ChannelUnavailable(Exception):
    """A configured channel that cannot be watched (unknown, private, banned)."""


@dataclass
class _Pass:
    """One catch-up over many channels (at start, after a reconnect)."""

    reconcile_depth: int
    total: int = 0
    failed: DatabaseError | None = None  # the archive cannot be written
    skipped: list[int] = field(default_factory=list)  # left for the repair loop


async def _all(coroutines: Sequence[Awaitable[None]]) -> None:
    """Run them together; the first to fail cancels the rest and its error is raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def label_of(channel: Channel) -> str:
    """How logs name a channel: @username, else its title, else its id."""
    if channel.username:
        return "@" + channel.username
    return channel.title or str(channel.id)


class Watcher:
    def __init__(
        self,
        client: MonitorClient,
        db: Database,
        pipeline: Pipeline,
        specs: Sequence[ChannelSpec],
        *,
        backfill: Backfill | None = None,
        page_wait: float | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.client = client
        # Set by bot/watch/sharing.py when several watchers share the archive: this
        # watcher's name (each account keeps its own access hash per channel, as
        # Telegram gives each its own), and what /watch and /unwatch call instead of
        # watching themselves (the sharing hands the channel to a watcher).
        self.account: str | None = None
        self.on_watchlist_change: Callable[[], None] | None = None
        self.team: Callable[[], list[Channel]] | None = None
        self.keys: dict[str, int] = {}  # a configured reference -> the channel id
        # whether a channel is still this watcher's when start() comes to it
        self.still_held: Callable[[str], bool] = lambda key: True
        self.gate = client.flood_gate
        self.concurrency = concurrency
        self.db = db
        self.pipeline = pipeline
        self.specs = list(specs)
        self.backfill = backfill or Backfill()
        self.page_wait = page_wait
        self.channels: dict[int, Watched] = {}
        self.unavailable: dict[str, str] = {}
        self.flood_waits: list[tuple[str, int]] = []
        self.flood_wait_times: deque[datetime] = deque(maxlen=1000)
        self._background: set[asyncio.Task[int]] = set()
        self._catchup_lock = asyncio.Lock()
        self._catchup_queued = False
        self._handlers_added = False
        # events that arrive before resolve_all() knows the channels (see replay_early_events)
        self._early: list[tuple[Callable[[Any], Awaitable[None]], Any]] | None = []
        # channels whose archive is behind Telegram because a write failed
        self._repair: set[int] = set()
        self._reconcile_after: set[int] = set()
        self._pending_edits: deque[Post] = deque()
        self._pending_deletions: deque[tuple[int, int]] = deque()
        self._repair_task: asyncio.Task[None] | None = None
        self.repair_first = REPAIR_FIRST
        self.outage_since: datetime | None = None
        self.write_failures = 0
        self._outage_logged = 0.0
        self._changed = asyncio.Event()

    # --- resolving -----------------------------------------------------------

    async def start(self, reconcile_depth: int = RECONCILE_DEPTH) -> int:
        """At start: resolve every configured channel, join the live ones and catch each
        up, `concurrency` channels at a time. A channel waiting out a FloodWait gives its
        turn to the next, so a channel already known (never resolved again) or caught up
        without hitting the wait does not wait for it. Then replay the updates that
        arrived meanwhile. Returns the posts caught up."""
        run = _Pass(reconcile_depth)
        slots = Slots(self.concurrency)

        async def one(spec: ChannelSpec) -> None:
            async with slots.taken():
                if not self.still_held(key_of(spec.ref)):  # given to another watcher meanwhile
                    return
                watched = await self._resolve_configured(spec)
                if watched is None:
                    return
                if watched.channel.mode == "live":
                    await self._join(watched)
                await self._catch_up_in(run, watched)

        async with self._catchup_lock:
            await _all([one(spec) for spec in self.specs])
            self._end(run)
        await self.replay_early_events()
        return run.total

    async def resolve_all(self) -> None:
        slots = Slots(self.concurrency)

        async def one(spec: ChannelSpec) -> None:
            async with slots.taken():
                await self._resolve_configured(spec)

        await _all([one(spec) for spec in self.specs])

    async def _resolve_configured(self, spec: ChannelSpec) -> Watched | None:
        try:
            watched = await self._resolve(spec)
        except ChannelUnavailable as exc:
            if self.unavailable.get(spec.label) != str(exc):
                logger.bind(channel=spec.label).error(
                    "cannot watch {channel}: {reason}", channel=spec.label, reason=str(exc)
                )
            self.unavailable[spec.label] = str(exc)
            await archive.record_unresolved(self.db, spec.label, str(exc))
            return None
        self.unavailable.pop(spec.label, None)
        self.channels[watched.id] = watched
        self.keys[key_of(spec.ref)] = watched.id
        return watched

    # --- channels handed over between watchers sharing the archive ------------

    async def adopt(self, spec: ChannelSpec) -> None:
        """Start watching a configured channel this watcher now holds: resolve it,
        join it if live, catch it up (one that cannot be watched is reported once)."""
        watched = await self._resolve_configured(spec)
        if watched is None:
            return
        if watched.channel.mode == "live":
            await self._join(watched)
        run = _Pass(RECONCILE_DEPTH)
        await self._catch_up_in(run, watched)
        self._end(run)

    async def drop(self, key: str) -> None:
        """Stop watching a channel another watcher takes over (it stays in the
        archive and in the configuration); leave it if joined, for the join limit."""
        channel_id = self.keys.pop(key, None)
        watched = self.channels.pop(channel_id, None) if channel_id is not None else None
        if watched is not None and watched.channel.mode == "live":
            await self._leave(watched.entity)

    async def remode(self, key: str, mode: str) -> None:
        """Join a polled channel, or leave a joined one and poll it (the join limit)."""
        watched = self.channels.get(self.keys.get(key, 0))
        if watched is None or watched.channel.mode == mode:
            return
        watched.channel = replace(watched.channel, mode=mode)
        if mode == "live":
            await self._join(watched)
        else:
            await self._leave(watched.entity)

    async def _leave(self, entity: types.InputPeerChannel) -> None:
        try:
            await self.client(functions.channels.LeaveChannelRequest(entity))
        except errors.RPCError as exc:
            logger.bind(channel=entity.channel_id).warning(
                "could not leave the channel: {error}", error=exc.__class__.__name__
            )
        if self.account is not None:
            # kept true when the archive is away: the sweep after a restart leaves it then
            with contextlib.suppress(*DatabaseError):
                await shares.set_joined(self.db, self.account, entity.channel_id, False)

    async def leave_unwatched(self) -> int:
        """Leave the channels this account joined but no longer watches (it was killed
        while holding them, and another watcher holds them now); how many."""
        if self.account is None:
            return 0
        stale = [
            (channel_id, access_hash)
            for channel_id, access_hash in await shares.joined_channels(self.db, self.account)
            if channel_id not in self.channels
        ]
        for channel_id, access_hash in stale:
            await self._leave(types.InputPeerChannel(channel_id, access_hash))
        return len(stale)

    # --- channels added and removed at run time (admins, from the bot) ---------

    async def watch(self, spec: ChannelSpec) -> Channel:
        """Start watching a channel now: resolve it (once), join it if live, and catch
        up in the background. Raises ValueError with the reason it cannot be watched."""
        known_error = await archive.unresolved_error(self.db, spec.label)
        if known_error is not None and await archive.find_channel(self.db, spec.ref) is None:
            raise ValueError(f"{known_error} (checked before; not asking Telegram again)")
        try:
            watched = await self._resolve(spec)
        except ChannelUnavailable as exc:
            self.unavailable[spec.label] = str(exc)
            await archive.record_unresolved(self.db, spec.label, str(exc))
            raise ValueError(str(exc)) from None
        self.unavailable.pop(spec.label, None)
        await watchlist.mark(self.db, watched.id, "added")
        if self.on_watchlist_change is not None:  # the sharing hands it to a watcher
            self.on_watchlist_change()
            return watched.channel
        self.channels[watched.id] = watched
        self.keys[key_of(spec.ref)] = watched.id
        self.specs = [s for s in self.specs if s.ref != spec.ref] + [spec]
        if spec.mode == "live":
            await self._join(watched)
        task = asyncio.create_task(self.catch_up(watched))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return watched.channel

    async def unwatch(self, channel_id: int) -> None:
        """Stop watching a channel; its archive stays."""
        watched = self.channels.pop(channel_id, None)
        await watchlist.mark(self.db, channel_id, "removed")
        if self.on_watchlist_change is not None:
            self.on_watchlist_change()
        if watched is None:
            return
        self.keys = {k: v for k, v in self.keys.items() if v != channel_id}
        self.specs = [s for s in self.specs if s.ref not in (watched.id, watched.channel.username)]
        if watched.channel.mode == "live":
            await self._leave(watched.entity)

    def watched(self) -> list[Channel]:
        """The channels watched: this watcher's, or the whole team's when shared."""
        if self.team is not None:
            return self.team()
        return [w.channel for w in self.channels.values()]

    def unavailable_channels(self) -> dict[str, str]:
        return dict(self.unavailable)

    def flood_waits_since(self, since: datetime) -> int:
        return sum(1 for when in self.flood_wait_times if when >= since)

    async def _resolve(self, spec: ChannelSpec) -> Watched:
        known = await archive.find_channel(self.db, spec.ref)
        access_hash = known.access_hash if known is not None else None
        if known is not None and self.account is not None:
            access_hash = await shares.access_hash(self.db, self.account, known.id)
            if access_hash is None and known.username:
                spec = ChannelSpec(known.username, spec.mode)  # another account's: resolve
        if known is not None and access_hash is not None:
            if known.mode != spec.mode or not known.active:
                known = Channel(
                    known.id,
                    known.access_hash,
                    known.username,
                    known.title,
                    spec.mode,
                    known.last_msg_id,
                    True,
                )
                await archive.save_channel(self.db, known)
            return Watched(known, types.InputPeerChannel(known.id, access_hash))
        entity = await self._lookup(spec)
        channel = Channel(
            id=entity.id,
            access_hash=entity.access_hash,
            username=(entity.username or "").lower() or None,
            title=entity.title,
            mode=spec.mode,
        )
        await archive.save_channel(self.db, channel)
        if self.account is not None:
            await shares.save_access_hash(self.db, self.account, channel.id, entity.access_hash)
        await archive.forget_unresolved(self.db, spec.label)
        stored = await archive.find_channel(self.db, channel.id)
        assert stored is not None
        logger.bind(channel=spec.label).info(
            "resolved {label} to {title} (id {id})",
            label=spec.label,
            title=channel.title,
            id=channel.id,
        )
        return Watched(stored, types.InputPeerChannel(channel.id, entity.access_hash or 0))

    async def _lookup(self, spec: ChannelSpec) -> types.Channel:
        try:
            if isinstance(spec.ref, int):
                try:
                    ref = types.PeerChannel(spec.ref)
                    entity = await self._with_flood_wait(
                        spec.label, lambda: self.client.get_entity(ref)
                    )
                except ValueError:
                    raise ChannelUnavailable(
                        "a numeric id can only be used for a channel this account has seen; "
                        "give its username once"
                    ) from None
            else:
                result = await self._with_flood_wait(
                    spec.label,
                    lambda: self.client(functions.contacts.ResolveUsernameRequest(spec.ref)),
                )
                entity = next((c for c in result.chats if isinstance(c, types.Channel)), None)
        except (errors.UsernameNotOccupiedError, errors.UsernameInvalidError):
            raise ChannelUnavailable("no such username on Telegram") from None
        except (errors.ChannelPrivateError, errors.ChannelInvalidError):
            raise ChannelUnavailable("the channel is private or this account is banned") from None
        if not isinstance(entity, types.Channel):
            raise ChannelUnavailable("the username belongs to a user or group, not a channel")
        return entity

    async def join_live(self) -> None:
        for watched in self.channels.values():
            if watched.channel.mode == "live":
                await self._join(watched)

    async def _join(self, watched: Watched) -> None:
        try:
            await self._with_flood_wait(
                str(watched.id),
                lambda w=watched: self.client(functions.channels.JoinChannelRequest(w.entity)),
            )
        except errors.UserAlreadyParticipantError:
            pass
        except errors.RPCError as exc:
            # not persisted: the next start tries to join again
            watched.channel = replace(watched.channel, mode="poll")
            logger.bind(channel=watched.id).warning(
                "could not join {title}: {error}; polling it instead",
                title=watched.channel.title,
                error=exc.__class__.__name__,
            )
            return
        if self.account is not None:
            await shares.set_joined(self.db, self.account, watched.id, True)

    # --- catch-up ------------------------------------------------------------

    async def catch_up_all(self, reconcile_depth: int = RECONCILE_DEPTH) -> int:
        """Fetch every channel's history above the archive head, then re-read its
        newest archived posts for edits and deletions missed meanwhile."""
        if self._catchup_queued:
            # one is already waiting for the running one to end; it will fetch all
            # above the head when it starts, so reconnects in a row cost one catch-up
            return 0
        self._catchup_queued = True
        try:
            await self._catchup_lock.acquire()
        finally:
            self._catchup_queued = False
        try:
            run = _Pass(reconcile_depth)
            slots = Slots(self.concurrency)

            async def one(watched: Watched) -> None:
                while True:
                    async with slots.taken():
                        if self.gate.remaining(HISTORY) <= 0:
                            await self._catch_up_in(run, watched)
                            return
                    # every channel given a slot while history reads wait would wait
                    # too: it waits without its slot and without starting its catch-up
                    await self.gate.wait(HISTORY)

            await _all([one(w) for w in list(self.channels.values())])
            self._end(run)
            return run.total
        finally:
            self._catchup_lock.release()

    async def _catch_up_in(self, run: _Pass, watched: Watched) -> None:
        if run.failed is not None:
            # writes are failing: the rest would fail the same way; retried once they work
            run.skipped.append(watched.id)
            return
        try:
            before = await self._head(watched)
            run.total += await self.catch_up(watched)
            if run.reconcile_depth and before:
                await self.reconcile(watched, run.reconcile_depth, up_to=before)
        except DatabaseError as exc:
            if not unavailable(exc):
                raise
            run.failed = run.failed or exc
            run.skipped.append(watched.id)

    def _end(self, run: _Pass) -> None:
        if run.failed is not None:
            self._write_failed(run.failed, run.skipped, reconcile=bool(run.reconcile_depth))

    async def _head(self, watched: Watched) -> int:
        current = await archive.find_channel(self.db, watched.id)
        return current.last_msg_id if current else 0

    async def catch_up(self, watched: Watched, source: Source = "catchup") -> int:
        async with watched.lock:
            return await self._catch_up_locked(watched, source)

    async def _catch_up_locked(self, watched: Watched, source: Source) -> int:
        log = logger.bind(channel=watched.id)
        head = await self._head(watched)
        while True:
            # A FloodWait on history reads holds back every channel's catch-up. Waited for
            # here, before this channel's read is set up, it holds the channel at the cost
            # of a few coroutines; met inside the read, each channel given the slot of one
            # waiting would set up its read (task, pages, pipeline stream), meet the wait
            # and pass the slot on, until every channel's read is held at once: a burst of
            # memory after a reconnect that the allocator keeps.
            await self.gate.wait(HISTORY)
            try:
                with self._patient(str(watched.id), watched):
                    if head == 0:
                        head = await self._backfill_start(watched)
                    seen = await self._fetch_above(watched, head, source)
            except errors.FloodWaitError as exc:
                await self._wait_out(str(watched.id), exc, watched)
                head = await self._head(watched)
                continue
            except (errors.ChannelPrivateError, errors.ChannelInvalidError) as exc:
                log.error("lost access to the channel: {error}", error=exc.__class__.__name__)
                await archive.set_channel_error(self.db, watched.id, exc.__class__.__name__)
                return 0
            if seen:
                log.info("caught up {n} posts above id {head}", n=seen, head=head)
            return seen

    async def _backfill_start(self, watched: Watched) -> int:
        """min_id for a channel seen for the first time, from the configured depth."""
        latest = await self.client.get_messages(watched.entity, limit=1)
        if not latest:
            return 0
        start = max(0, latest[0].id - self.backfill.posts)
        if self.backfill.days is not None:
            cutoff = utcnow() - timedelta(days=self.backfill.days)
            older = await self.client.get_messages(watched.entity, limit=1, offset_date=cutoff)
            start = max(start, older[0].id if older else 0)
        return start

    async def _fetch_above(
        self, watched: Watched, min_id: int, source: Source, below: int = 0
    ) -> int:
        async def pages() -> AsyncIterator[list[Post]]:
            batch: list[Post] = []
            async for message in self.client.iter_messages(
                watched.entity,
                min_id=min_id,
                max_id=below,
                reverse=True,
                # Telethon's default sleeps 1 s before every page after the first, and
                # an ascending read always asks for a second page: 1 s per channel, 8
                # minutes for 500 channels after each reconnect. FloodWaits are handled
                # instead.
                wait_time=self.page_wait if self.page_wait is not None else PAGE_WAIT,
            ):
                post = self._convert(message, watched.id)
                if post is not None:
                    batch.append(post)
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch

        # the pipeline reads the next pages while it detects and writes this one, so
        # their round trips overlap its work instead of following it
        async with contextlib.aclosing(pages()) as read:
            return await self.pipeline.ingest_stream(read, source)

    async def poll(self, watched: Watched) -> int:
        """Fetch a channel's posts above the archive head (source "poll"); returns how
        many. Up to a page of new posts costs one request (iter_messages would always
        ask once more). FloodWaitError and RPC errors propagate: the poller owns the
        pause and the request budget."""
        async with watched.lock:
            head = await self._head(watched)
            if head == 0:
                head = await self._backfill_start(watched)
            page = await self.client(
                functions.messages.GetHistoryRequest(
                    peer=watched.entity,
                    offset_id=0,
                    offset_date=None,
                    add_offset=0,
                    limit=BATCH,
                    max_id=0,
                    min_id=head,
                    hash=0,
                )
            )
            if len(page.messages) >= BATCH:  # more than a page is new: fetch it all in order
                return await self._fetch_above(watched, head, "poll")
            messages = sorted((m for m in page.messages if m.id > head), key=lambda m: m.id)
            posts = [p for p in (self._convert(m, watched.id) for m in messages) if p]
            await self.pipeline.ingest(posts, "poll")
            return len(posts)

    async def reconcile(
        self, watched: Watched, depth: int, up_to: int | None = None
    ) -> tuple[int, int]:
        """Re-read the newest `depth` archived posts (with ids <= `up_to`) to record
        edits and deletions that were never pushed.

        Returns (posts re-read, posts newly marked deleted).
        """
        msg_ids = await archive.recent_msg_ids(self.db, watched.id, depth, up_to=up_to)
        if not msg_ids:
            return (0, 0)
        while True:
            try:
                with self._patient(str(watched.id), watched):
                    messages = await self.client.get_messages(watched.entity, ids=msg_ids)
                break
            except errors.FloodWaitError as exc:
                await self._wait_out(str(watched.id), exc, watched)
        posts: list[Post] = []
        gone: list[int] = []
        for msg_id, message in zip(msg_ids, messages, strict=True):
            post = self._convert(message, watched.id) if message is not None else None
            if post is None:
                gone.append(msg_id)
            else:
                posts.append(post)
        async with watched.lock:
            await self.pipeline.ingest(posts, "reconcile")
            deleted = await self.pipeline.deleted(watched.id, gone) if gone else []
        return (len(posts), len(deleted))

    # --- live events ---------------------------------------------------------

    def _keep_early(self, handler: Callable[[Any], Awaitable[None]], event: Any) -> None:
        if self._early is not None and len(self._early) < EARLY_EVENTS_MAX:
            self._early.append((handler, event))

    def add_handlers(self) -> None:
        if self._handlers_added:
            return
        self.client.add_event_handler(self._on_message, events.NewMessage())
        self.client.add_event_handler(self._on_message, events.MessageEdited())
        self.client.add_event_handler(self._on_deleted, events.MessageDeleted())
        self._handlers_added = True

    async def replay_early_events(self) -> None:
        """Handle the updates that arrived before the channels were known.

        Handlers are added before connecting, so an edit or deletion pushed while
        the service starts is never dropped; until `resolve_all()` has filled
        `channels`, events are kept here (a bounded list) and replayed after it."""
        early, self._early = self._early, None
        for handler, event in early or ():
            await handler(event)

    async def _on_message(self, event: events.NewMessage.Event) -> None:
        watched = self.channels.get(channel_id_of(event.message) or 0)
        if watched is None:
            self._keep_early(self._on_message, event)
            return
        post = self._convert(event.message, watched.id)
        if post is None:
            return
        edit = isinstance(event, events.MessageEdited.Event)  # a NewMessage.Event too
        try:
            async with watched.lock:
                if watched.id in self._repair:
                    # writes are failing: the head stays put, so the repair fetches new
                    # posts again; an edit is kept for it
                    if edit:
                        self._remember_edit(post)
                    return
                try:
                    head = await self._head(watched)
                    if not edit and post.msg_id > head + 1:
                        await self._fill_gap(watched, head, post.msg_id)
                    await self.pipeline.ingest([post], "live")
                except DatabaseError as exc:
                    if not unavailable(exc):
                        raise
                    if edit:
                        self._remember_edit(post)
                    self._write_failed(exc, [watched.id])
        except (ConnectionError, TimeoutError) as exc:
            # the head did not move: the catch-up after the reconnect fetches the post
            logger.bind(channel=watched.id, msg_id=post.msg_id).warning(
                "connection lost while archiving live post {msg_id} ({error}); the catch-up "
                "after the reconnect fetches it",
                msg_id=post.msg_id,
                error=exc.__class__.__name__,
            )
        except Exception:
            # one poison post must not stop the others; reconcile retries it later
            logger.bind(channel=watched.id, msg_id=post.msg_id).exception(
                "could not archive a live post"
            )

    async def _fill_gap(self, watched: Watched, head: int, below: int) -> None:
        """Fetch the posts between the archive head and live post `below`: ids jumped, and
        posts in between may never be pushed (Telethon only notices a gap once it knows the
        channel's pts). Under a FloodWait the live post and its gap wait for it, holding
        only this channel's live events (the lock is held by the caller)."""
        holding = f"live post {below} and the posts before it"
        while True:
            try:
                with self._patient(str(watched.id), watched, holding=holding):
                    await self._fetch_above(watched, head, "catchup", below=below)
                return
            except errors.FloodWaitError as exc:
                await self._wait_out(str(watched.id), exc, watched, holding=holding)
                head = await self._head(watched)

    async def _on_deleted(self, event: events.MessageDeleted.Event) -> None:
        # Telethon's MessageDeleted event carries the channel only as a marked chat id
        if event.chat_id is None:
            return
        real_id, peer_type = utils.resolve_id(event.chat_id)
        watched = self.channels.get(real_id) if peer_type is types.PeerChannel else None
        if watched is None:
            self._keep_early(self._on_deleted, event)
            return
        try:
            async with watched.lock:
                if watched.id in self._repair:
                    self._remember_deletions(watched.id, event.deleted_ids)
                    return
                try:
                    await self.pipeline.deleted(watched.id, event.deleted_ids)
                except DatabaseError as exc:
                    if not unavailable(exc):
                        raise
                    self._remember_deletions(watched.id, event.deleted_ids)
                    self._write_failed(exc, [watched.id])
        except Exception:
            logger.bind(channel=watched.id).exception("could not record deleted posts")

    def _convert(self, message: types.TypeMessage, channel_id: int) -> Post | None:
        """to_post(), or what can be read of a message it cannot convert."""
        try:
            return to_post(message, channel_id)
        except Exception as exc:
            logger.bind(channel=channel_id, msg_id=getattr(message, "id", None)).exception(
                "could not read a {kind}; archiving its id, date and text only",
                kind=type(message).__name__,
            )
            return salvage(message, channel_id, exc)

    # --- the archive cannot be written -----------------------------------------

    @property
    def behind(self) -> set[int]:
        """Channels whose archive is behind Telegram because writes failed."""
        return set(self._repair)

    @property
    def pending(self) -> tuple[int, int]:
        """(edits, deletions) kept in memory until the archive can be written."""
        return len(self._pending_edits), len(self._pending_deletions)

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next failed write, kept edit or deletion, or finished repair;
        take it before checking, then wait on it (tests, status)."""
        return self._changed

    def _fire(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _write_failed(
        self, exc: BaseException, channel_ids: Sequence[int], *, reconcile: bool = False
    ) -> None:
        self._repair.update(channel_ids)
        if reconcile:
            self._reconcile_after.update(channel_ids)
        self.write_failures += 1
        now = time.monotonic()
        if self.outage_since is None or now - self._outage_logged >= OUTAGE_LOG_EVERY:
            again = self.outage_since is not None
            self.outage_since = self.outage_since or utcnow()
            self._outage_logged = now
            logger.bind(db=str(self.db.path)).error(
                "{what}{still} (failing since {since:%H:%M:%S} UTC)",
                what=describe_unavailable(self.db.path, exc),
                still="; still failing" if again else "",
                since=self.outage_since,
            )
        if self._repair_task is None or self._repair_task.done():
            self._repair_task = asyncio.create_task(self._repair_loop(), name="archive-repair")
        self._fire()

    def _remember_edit(self, post: Post) -> None:
        if len(self._pending_edits) >= PENDING_EDITS_MAX:
            self._reconcile_after.add(self._pending_edits.popleft().channel_id)
        self._pending_edits.append(post)
        self._fire()

    def _remember_deletions(self, channel_id: int, msg_ids: Sequence[int]) -> None:
        for msg_id in msg_ids:
            if len(self._pending_deletions) >= PENDING_DELETIONS_MAX:
                self._reconcile_after.add(self._pending_deletions.popleft()[0])
            self._pending_deletions.append((channel_id, msg_id))
        self._fire()

    async def _repair_loop(self) -> None:
        """Retry, with backoff, until every channel behind is caught up from Telegram."""
        delay = self.repair_first
        while self._repair or self._reconcile_after:
            await asyncio.sleep(delay)  # backoff between attempts
            try:
                fetched = await self._repair_all()
            except DatabaseError as exc:
                if not unavailable(exc):
                    logger.exception("repairing the archive failed; retrying")
                else:
                    self._write_failed(exc, [])
                delay = min(delay * 2, REPAIR_MAX)
                continue
            except Exception:
                logger.exception("catching up after failed writes failed; retrying")
                delay = min(delay * 2, REPAIR_MAX)
                continue
            since = self.outage_since
            self.outage_since = None
            self._fire()
            logger.bind(db=str(self.db.path)).warning(
                "the archive is writable again after {seconds:.0f} s; fetched {n} posts "
                "it could not store",
                seconds=(utcnow() - since).total_seconds() if since else 0,
                n=fetched,
            )

    async def _repair_all(self) -> int:
        fetched = 0
        for channel_id in sorted(self._repair):
            watched = self.channels.get(channel_id)
            if watched is None:  # unwatched meanwhile
                self._repair.discard(channel_id)
                continue
            async with watched.lock:
                fetched += await self._catch_up_locked(watched, "catchup")
                edits = [p for p in self._pending_edits if p.channel_id == channel_id]
                if edits:
                    await self.pipeline.ingest(edits, "live")
                gone = [m for c, m in self._pending_deletions if c == channel_id]
                if gone:
                    await self.pipeline.deleted(channel_id, gone)
                self._pending_edits = deque(
                    p for p in self._pending_edits if p.channel_id != channel_id
                )
                self._pending_deletions = deque(
                    d for d in self._pending_deletions if d[0] != channel_id
                )
                self._repair.discard(channel_id)
        for channel_id in sorted(self._reconcile_after):
            watched = self.channels.get(channel_id)
            if watched is not None:
                await self.reconcile(watched, RECONCILE_DEPTH)
            self._reconcile_after.discard(channel_id)
        return fetched

    async def close(self) -> None:
        """Stop background work (repair after failed writes, run-time catch-ups)."""
        tasks = [t for t in (self._repair_task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- FloodWait -----------------------------------------------------------

    async def _with_flood_wait(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                with self._patient(what):
                    return await call()
            except errors.FloodWaitError as exc:
                await self._wait_out(what, exc)

    def _patient(
        self, what: str, watched: Watched | None = None, *, holding: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Requests made inside wait out FloodWaits at the client's gate (giving up their
        concurrency slot meanwhile) and go on where they were; each FloodWait Telegram
        answers is logged once, naming the channel and what waits."""

        def on_flood_wait(exc: errors.RPCError) -> None:
            request = getattr(exc, "request", None)
            kind = request_kind(request) if isinstance(request, TLRequest) else "request"
            self._note_flood_wait(what, watched, kind, getattr(exc, "seconds", 1), holding)

        return waiting_out_flood_waits(on_flood_wait)

    def _note_flood_wait(
        self, what: str, watched: Watched | None, kind: str, seconds: int, holding: str | None
    ) -> None:
        wait = max(seconds, 1)
        self.flood_waits.append((what, wait))
        self.flood_wait_times.append(utcnow())
        logger.bind(channel=what).warning(
            "FloodWait on {name}: Telegram asked to wait {seconds} s before the next "
            "{kind}; {holding} wait for it, everything else goes on",
            name=label_of(watched.channel) if watched is not None else what,
            seconds=wait,
            kind=kind,
            holding=holding or "this channel's " + _work(kind),
        )

    async def _wait_out(
        self,
        what: str,
        exc: errors.FloodWaitError,
        watched: Watched | None = None,
        *,
        holding: str | None = None,
    ) -> None:
        """Wait until Telegram allows the kind of request that hit `exc` again. Only this
        work waits (its concurrency slot goes to another channel meanwhile); a request
        held back by a wait that is already known and logged waits silently."""
        request = exc.request if isinstance(exc.request, TLRequest) else None
        kind = request_kind(request) if request is not None else "request"
        name = label_of(watched.channel) if watched is not None else what
        if isinstance(exc, HeldForFloodWait):
            logger.bind(channel=what).debug(
                "{name}: waiting {seconds} s more for the FloodWait on {kind}",
                name=name,
                seconds=exc.seconds,
                kind=kind,
            )
        else:
            self._note_flood_wait(what, watched, kind, exc.seconds, holding)
        if self.gate.remaining(kind) <= 0:  # not seen by the client's gate (a bare error)
            self.gate.close(kind, exc.seconds)
        await self.gate.wait(kind)


def _work(kind: str) -> str:
    if kind.endswith("ResolveUsernameRequest"):
        return "resolving"
    if kind.endswith("JoinChannelRequest"):
        return "joining"
    return "catch-up"
