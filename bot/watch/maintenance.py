"""Scheduled re-reads of the channels: reconcile (missed posts, edits and deletions)
and metrics snapshots (how a post spread: views, forwards, replies, reactions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from loguru import logger
from telethon import errors

from bot.clients import HeldForFloodWait
from bot.watch.telegram import to_post
from bot.watch.watcher import BATCH, Watched, Watcher
from storage import archive
from storage.models import Post


@dataclass(frozen=True, slots=True)
class Reconciled:
    channels: int = 0
    new: int = 0  # posts found above the archive head (lost live posts)
    reread: int = 0
    deleted: int = 0


async def reconcile_channels(watcher: Watcher, depth: int) -> Reconciled:
    """For every channel: fetch what is above the archive head, then re-read the newest
    `depth` posts below it to record edits and deletions Telegram never pushed.

    One channel failing (lost access, a bad post) does not stop the others.
    """
    if not watcher.client.is_connected():
        logger.debug("reconcile skipped: not connected")
        return Reconciled()
    channels = new = reread = deleted = 0
    for watched in list(watcher.channels.values()):
        if watched.id not in watcher.channels:  # unwatched meanwhile
            continue
        log = logger.bind(channel=watched.id)
        try:
            before = await archive.find_channel(watcher.db, watched.id) or watched.channel
            head = before.last_msg_id
            new += await watcher.catch_up(watched, "catchup")
            if head:
                got, gone = await watcher.reconcile(watched, depth, up_to=head)
                reread += got
                deleted += gone
            channels += 1
        except (ConnectionError, TimeoutError):
            raise  # the connection is gone: the reconnect catch-up takes over
        except Exception:
            log.exception("reconciling the channel failed; the next run retries")
    result = Reconciled(channels, new, reread, deleted)
    if new or deleted:
        logger.info(
            "reconcile: {new} posts were missing, {deleted} newly deleted, {reread} re-read "
            "in {channels} channels",
            new=new,
            deleted=deleted,
            reread=reread,
            channels=channels,
        )
    return result


async def snapshot_metrics(watcher: Watcher, now: datetime, window: timedelta) -> int:
    """Record views, forwards, replies and reactions of every post of the last `window`
    (one `metrics` row per post per snapshot); the posts' own counters and any edit
    seen on the way are archived too. Returns the rows written."""
    if not watcher.client.is_connected():
        logger.debug("metrics snapshot skipped: not connected")
        return 0
    written = 0
    for watched in list(watcher.channels.values()):
        ids = await archive.post_ids_since(watcher.db, watched.id, now - window)
        msg_ids = list(ids)
        for start in range(0, len(msg_ids), BATCH):
            chunk = msg_ids[start : start + BATCH]
            try:
                posts = await _read(watcher, watched, chunk)
            except HeldForFloodWait as exc:  # a wait other work hit, logged there
                logger.bind(channel=watched.id).debug(
                    "metrics snapshot stopped: {seconds} s left of a FloodWait", seconds=exc.seconds
                )
                return written
            except errors.FloodWaitError as exc:
                watcher.flood_waits.append((f"metrics:{watched.id}", exc.seconds))
                watcher.flood_wait_times.append(now)
                logger.bind(channel=watched.id).warning(
                    "FloodWait during the metrics snapshot ({seconds} s); the rest waits for "
                    "the next one",
                    seconds=exc.seconds,
                )
                return written
            except errors.RPCError as exc:
                logger.bind(channel=watched.id).warning(
                    "could not read metrics: {error}", error=exc.__class__.__name__
                )
                break
            if not posts:
                continue
            async with watched.lock:
                await watcher.pipeline.ingest(posts, "reconcile")
            async with watcher.db.transaction() as conn:
                await archive.record_metrics_in(conn, [(ids[p.msg_id], now, p) for p in posts])
            written += len(posts)
    logger.debug("metrics: {n} snapshots recorded", n=written)
    return written


async def _read(watcher: Watcher, watched: Watched, msg_ids: list[int]) -> list[Post]:
    messages = await watcher.client.get_messages(watched.entity, ids=msg_ids)
    posts = []
    for message in messages:
        try:
            post = to_post(message, watched.id) if message is not None else None
        except Exception:  # one unreadable message must not stop the snapshot
            logger.bind(channel=watched.id, msg_id=getattr(message, "id", None)).exception(
                "could not read a message for metrics"
            )
            continue
        if post is not None:
            posts.append(post)
    return posts
