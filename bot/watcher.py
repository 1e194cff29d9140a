"""The user client's side: resolve and join channels, live events, catch-up.

The archive keeps its own truth: at start and after every reconnect each
channel's history above the last archived id is fetched before live events
are relied on, because Telethon does not fetch missed channel posts itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from loguru import logger
from telethon import TelegramClient, errors, events, functions, types, utils

from bot.pipeline import Pipeline, Source
from bot.telegram import channel_id_of, to_post
from config.settings import Backfill, ChannelSpec
from storage import archive, watchlist
from storage.db import Database
from storage.models import Channel, Post, utcnow

BATCH = 100
RECONCILE_DEPTH = 100
T = TypeVar("T")
MAX_FLOOD_WAIT = 3600


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


class Watcher:
    def __init__(
        self,
        client: TelegramClient,
        db: Database,
        pipeline: Pipeline,
        specs: Sequence[ChannelSpec],
        *,
        backfill: Backfill | None = None,
        page_wait: float | None = None,
    ) -> None:
        self.client = client
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
        self._handlers_added = False

    # --- resolving -----------------------------------------------------------

    async def resolve_all(self) -> None:
        for spec in self.specs:
            try:
                watched = await self._resolve(spec)
            except ChannelUnavailable as exc:
                if self.unavailable.get(spec.label) != str(exc):
                    logger.bind(channel=spec.label).error(
                        "cannot watch {channel}: {reason}", channel=spec.label, reason=str(exc)
                    )
                self.unavailable[spec.label] = str(exc)
                await archive.record_unresolved(self.db, spec.label, str(exc))
                continue
            self.unavailable.pop(spec.label, None)
            self.channels[watched.id] = watched

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
        self.channels[watched.id] = watched
        self.specs = [s for s in self.specs if s.ref != spec.ref] + [spec]
        await watchlist.mark(self.db, watched.id, "added")
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
        if watched is None:
            return
        self.specs = [s for s in self.specs if s.ref not in (watched.id, watched.channel.username)]
        if watched.channel.mode == "live":
            try:
                await self.client(functions.channels.LeaveChannelRequest(watched.entity))
            except errors.RPCError as exc:
                logger.bind(channel=channel_id).warning(
                    "could not leave the channel: {error}", error=exc.__class__.__name__
                )

    def watched(self) -> list[Channel]:
        return [w.channel for w in self.channels.values()]

    def unavailable_channels(self) -> dict[str, str]:
        return dict(self.unavailable)

    def flood_waits_since(self, since: datetime) -> int:
        return sum(1 for when in self.flood_wait_times if when >= since)

    async def _resolve(self, spec: ChannelSpec) -> Watched:
        known = await archive.find_channel(self.db, spec.ref)
        if known is not None and known.access_hash is not None:
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
            return Watched(known, types.InputPeerChannel(known.id, known.access_hash))
        entity = await self._lookup(spec)
        channel = Channel(
            id=entity.id,
            access_hash=entity.access_hash,
            username=(entity.username or "").lower() or None,
            title=entity.title,
            mode=spec.mode,
        )
        await archive.save_channel(self.db, channel)
        await archive.forget_unresolved(self.db, spec.label)
        stored = await archive.find_channel(self.db, channel.id)
        assert stored is not None
        logger.bind(channel=spec.label).info(
            "resolved {label} to {title} (id {id})",
            label=spec.label,
            title=channel.title,
            id=channel.id,
        )
        return Watched(stored, types.InputPeerChannel(channel.id, channel.access_hash or 0))

    async def _lookup(self, spec: ChannelSpec) -> types.Channel:
        try:
            if isinstance(spec.ref, int):
                try:
                    entity = await self.client.get_entity(types.PeerChannel(spec.ref))
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
            logger.bind(channel=watched.id).warning(
                "could not join {title}: {error}; it will be polled",
                title=watched.channel.title,
                error=exc.__class__.__name__,
            )

    # --- catch-up ------------------------------------------------------------

    async def catch_up_all(self, reconcile_depth: int = RECONCILE_DEPTH) -> int:
        """Fetch every channel's history above the archive head, then re-read its
        newest archived posts for edits and deletions missed meanwhile."""
        async with self._catchup_lock:
            total = 0
            for watched in list(self.channels.values()):
                before = await self._head(watched)
                total += await self.catch_up(watched)
                if reconcile_depth and before:
                    await self.reconcile(watched, reconcile_depth, up_to=before)
            return total

    async def _head(self, watched: Watched) -> int:
        current = await archive.find_channel(self.db, watched.id)
        return current.last_msg_id if current else 0

    async def catch_up(self, watched: Watched, source: Source = "catchup") -> int:
        log = logger.bind(channel=watched.id)
        async with watched.lock:
            head = await self._head(watched)
            while True:
                try:
                    if head == 0:
                        head = await self._backfill_start(watched)
                    seen = await self._fetch_above(watched, head, source)
                except errors.FloodWaitError as exc:
                    await self._pause(str(watched.id), exc.seconds)
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
        batch: list[Post] = []
        seen = 0
        async for message in self.client.iter_messages(
            watched.entity, min_id=min_id, max_id=below, reverse=True, wait_time=self.page_wait
        ):
            post = to_post(message, watched.id)
            if post is not None:
                batch.append(post)
            if len(batch) >= BATCH:
                await self.pipeline.ingest(batch, source)
                seen += len(batch)
                batch = []
        if batch:
            await self.pipeline.ingest(batch, source)
            seen += len(batch)
        return seen

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
            posts = [p for p in (to_post(m, watched.id) for m in messages) if p is not None]
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
                messages = await self.client.get_messages(watched.entity, ids=msg_ids)
                break
            except errors.FloodWaitError as exc:
                await self._pause(str(watched.id), exc.seconds)
        posts: list[Post] = []
        gone: list[int] = []
        for msg_id, message in zip(msg_ids, messages, strict=True):
            post = to_post(message, watched.id) if message is not None else None
            if post is None:
                gone.append(msg_id)
            else:
                posts.append(post)
        async with watched.lock:
            await self.pipeline.ingest(posts, "reconcile")
            deleted = await self.pipeline.deleted(watched.id, gone) if gone else []
        return (len(posts), len(deleted))

    # --- live events ---------------------------------------------------------

    def add_handlers(self) -> None:
        if self._handlers_added:
            return
        self.client.add_event_handler(self._on_message, events.NewMessage())
        self.client.add_event_handler(self._on_message, events.MessageEdited())
        self.client.add_event_handler(self._on_deleted, events.MessageDeleted())
        self._handlers_added = True

    async def _on_message(self, event: events.NewMessage.Event) -> None:
        watched = self.channels.get(channel_id_of(event.message) or 0)
        if watched is None:
            return
        try:
            post = to_post(event.message, watched.id)
            if post is None:
                return
            async with watched.lock:
                head = await self._head(watched)
                if isinstance(event, events.NewMessage.Event) and post.msg_id > head + 1:
                    # Ids jumped: posts in between may never be pushed (Telethon only
                    # notices a gap once it knows the channel's pts), so fetch them.
                    await self._fetch_above(watched, head, "catchup", below=post.msg_id)
                await self.pipeline.ingest([post], "live")
        except Exception:
            # one poison post must not stop the others; reconcile retries it later
            logger.bind(channel=watched.id, msg_id=event.message.id).exception(
                "could not archive a live post"
            )

    async def _on_deleted(self, event: events.MessageDeleted.Event) -> None:
        # Telethon's MessageDeleted event carries the channel only as a marked chat id
        if event.chat_id is None:
            return
        real_id, peer_type = utils.resolve_id(event.chat_id)
        watched = self.channels.get(real_id) if peer_type is types.PeerChannel else None
        if watched is None:
            return
        async with watched.lock:
            await self.pipeline.deleted(watched.id, event.deleted_ids)

    # --- FloodWait -----------------------------------------------------------

    async def _with_flood_wait(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await call()
            except errors.FloodWaitError as exc:
                await self._pause(what, exc.seconds)

    async def _pause(self, what: str, seconds: int) -> None:
        wait = min(max(seconds, 1), MAX_FLOOD_WAIT)
        self.flood_waits.append((what, wait))
        self.flood_wait_times.append(utcnow())
        logger.bind(channel=what).warning(
            "FloodWait: Telegram asked to wait {seconds} s; pausing this work", seconds=wait
        )
        await asyncio.sleep(wait)
