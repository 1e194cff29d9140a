"""Downloading media files in the background, and dropping old ones.

The queue is the archive itself: media rows of the wanted kinds and sizes without
`downloaded_at`, so a restart resumes where the last run stopped. Each file is stored
once per content, named by its SHA-256 (`<media dir>/ab/abcdef….jpg`); `local_path`
is relative to the media directory. A file Telegram already gave us (a forward of the
same document) is reused without downloading it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from loguru import logger
from telethon import errors

from bot.watch.telegram import to_media
from bot.watch.watcher import Watcher
from storage import media as media_rows
from storage import private
from storage.db import Database
from storage.media import Queued

MAX_TRIES = 3
PARTIAL_DIR = ".partial"
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class TooLarge(Exception):
    """The file grew past the size limit while downloading."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """Which media to download."""

    kinds: frozenset[str]
    max_size: int


def file_name_for(sha256: str, mime: str | None, file_name: str | None) -> str:
    """`ab/abcdef….ext`: named by content, fanned out by the first two hex digits."""
    suffix = ""
    if mime:
        suffix = mimetypes.guess_extension(mime, strict=False) or ""
    if not suffix and file_name:
        suffix = Path(file_name).suffix.lower()
    if not _SUFFIX.match(suffix):
        suffix = ""
    return f"{sha256[:2]}/{sha256}{suffix}"


class _HashingFile:
    """A write target for Telethon that hashes, counts and caps what it writes."""

    def __init__(self, target: IO[bytes], limit: int) -> None:
        self.target = target
        self.limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    async def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise TooLarge(f"more than {self.limit} bytes")
        self.sha256.update(chunk)
        return await asyncio.to_thread(self.target.write, chunk)

    def flush(self) -> None:
        self.target.flush()


async def queue(db: Database, wanted: Wanted, channel_ids: set[int], limit: int) -> list[Queued]:
    """The next media to download, newest posts first, of channels being watched."""
    return await media_rows.pending(db, wanted.kinds, wanted.max_size, channel_ids, limit)


class MediaDownloader:
    def __init__(self, watcher: Watcher, db: Database, media_dir: Path, wanted: Wanted) -> None:
        self.watcher = watcher
        self.db = db
        self.media_dir = media_dir
        self.wanted = wanted
        self.downloaded = 0
        self.reused = 0
        self._swept = False

    async def run(self, now: datetime, limit: int) -> int:
        """Download up to `limit` queued files; returns how many were recorded.
        A FloodWait ends the run (the queue is still there next time)."""
        if not self.watcher.client.is_connected():
            return 0
        if not self._swept:  # files a crash left half-written are started over
            await asyncio.to_thread(_sweep, self.media_dir / PARTIAL_DIR)
            self._swept = True
        done = 0
        items = await queue(self.db, self.wanted, set(self.watcher.channels), limit)
        for item in items:
            log = logger.bind(channel=item.channel_id, msg_id=item.msg_id)
            try:
                if await self._one(item, now):
                    done += 1
            except errors.FloodWaitError as exc:
                self.watcher.flood_waits.append((f"media:{item.channel_id}", exc.seconds))
                self.watcher.flood_wait_times.append(now)
                log.warning(
                    "FloodWait while downloading media: {seconds} s; downloads resume later",
                    seconds=exc.seconds,
                )
                break
            except (ConnectionError, TimeoutError) as exc:
                log.warning("media download interrupted: {error}", error=repr(exc))
                break
            except OSError as exc:  # the media directory: full, read-only, missing
                log.error(
                    "cannot write media to {dir}: {error}", dir=str(self.media_dir), error=str(exc)
                )
                break
            except errors.RPCError as exc:
                await self._failed(item, exc.__class__.__name__)
        return done

    async def _one(self, item: Queued, now: datetime) -> bool:
        log = logger.bind(channel=item.channel_id, msg_id=item.msg_id)
        same = await media_rows.downloaded_copy(self.db, item.tg_id)
        if same is not None and (self.media_dir / same[1]).is_file():
            await self._record(item, same[0], same[1], now)
            self.reused += 1
            return True
        watched = self.watcher.channels.get(item.channel_id)
        if watched is None:
            return False
        message = await self.watcher.client.get_messages(watched.entity, ids=item.msg_id)
        found = to_media(getattr(message, "media", None)) if message is not None else ()
        if not found or found[0].kind != item.kind:
            await self._give_up(item, "the post no longer has this media")
            return False
        if found[0].size is not None and found[0].size > self.wanted.max_size:
            await self._give_up(item, "larger than the size limit")
            return False
        partial = self.media_dir / PARTIAL_DIR / f"{item.post_id}-{item.idx}"
        private.make_dir(partial.parent)
        try:
            with private.replace_partial(partial) as target:
                sink = _HashingFile(target, self.wanted.max_size)
                await self.watcher.client.download_media(message, file=sink)
                await asyncio.to_thread(os.fsync, target.fileno())
        except TooLarge:
            partial.unlink(missing_ok=True)
            await self._give_up(item, "larger than the size limit")
            return False
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        sha = sink.sha256.hexdigest()
        name = file_name_for(sha, item.mime, item.file_name)
        final = self.media_dir / name
        private.make_dir(final.parent)
        if final.is_file():
            partial.unlink()  # same content from another post: keep one file
            self.reused += 1
        else:
            os.replace(partial, final)
            self.downloaded += 1
        await self._record(item, sha, name, now)
        log.debug(
            "downloaded {kind} ({size} bytes) as {name}", kind=item.kind, size=sink.size, name=name
        )
        return True

    async def _record(self, item: Queued, sha: str, name: str, now: datetime) -> None:
        await media_rows.record_download(self.db, item.post_id, item.idx, sha, name, now)

    async def _give_up(self, item: Queued, why: str) -> None:
        logger.bind(channel=item.channel_id, msg_id=item.msg_id).info(
            "not downloading {kind}: {why}", kind=item.kind, why=why
        )
        await media_rows.give_up(self.db, item.post_id, item.idx, why)

    async def _failed(self, item: Queued, error: str) -> None:
        tries = await media_rows.count_try(self.db, item.post_id, item.idx) or MAX_TRIES
        logger.bind(channel=item.channel_id, msg_id=item.msg_id).warning(
            "media download failed ({error}), try {tries} of {max}",
            error=error,
            tries=tries,
            max=MAX_TRIES,
        )
        if tries >= MAX_TRIES:
            await self._give_up(item, f"failed {tries} times: {error}")


async def prune_media(db: Database, media_dir: Path, now: datetime, older_than: timedelta) -> int:
    """Delete downloaded files whose newest download is older than `older_than`; the rows
    keep their metadata and SHA-256 (local_path becomes NULL). Posts are never touched.
    Returns the number of files removed."""
    names = await media_rows.files_downloaded_before(db, now - older_than)
    removed = await asyncio.to_thread(_delete_files, media_dir, names)
    await media_rows.forget_files(db, names)
    if names:
        logger.info(
            "media retention: deleted {n} files older than {days} days",
            n=removed,
            days=older_than.days,
        )
    return removed


def _delete_files(media_dir: Path, names: list[str]) -> int:
    root = media_dir.resolve()
    removed = 0
    for name in names:
        path = (media_dir / name).resolve()
        if not path.is_relative_to(root):
            logger.warning("not deleting {path}: outside the media directory", path=str(path))
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def _sweep(partial_dir: Path) -> None:
    if partial_dir.is_dir():
        for leftover in partial_dir.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
