"""One entry for every post, whatever brought it: live event, catch-up, reconcile, import.

Post -> analyze (lemmas for search) -> archive, in one transaction per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from loguru import logger

from bot.detection import Analysis, analyze
from storage import archive
from storage.archive import Archived
from storage.db import Database
from storage.models import Post, utcnow

Source = Literal["live", "catchup", "reconcile", "poll", "import"]


def lemma_text(analysis: Analysis) -> str:
    """The most likely lemma of every word, in order, for the FTS `lemmas` column."""
    return " ".join(token.lemmas[0] if token.lemmas else token.norm for token in analysis.tokens)


@dataclass(frozen=True, slots=True)
class Ingested:
    archived: list[Archived]
    source: Source


Listener = Callable[[Ingested], Awaitable[None]]


class Pipeline:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Listener] = []
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        """Set by the next committed write; take it before checking, then wait on it."""
        return self._changed

    def subscribe(self, listener: Listener) -> None:
        """Called after each committed ingest (metrics, status, tests)."""
        self._listeners.append(listener)

    async def ingest(self, posts: Sequence[Post], source: Source) -> list[Archived]:
        if not posts:
            return []
        items = [(post, lemma_text(analyze(post.text))) for post in posts]
        async with self._tracked(), self.db.transaction() as conn:
            result = await archive.archive_posts_in(conn, items)
        log = logger.bind(source=source, channel=posts[0].channel_id)
        changed = sum(1 for a in result if a.status in ("new", "edited"))
        if changed:
            log.debug("archived {changed} of {n} posts", changed=changed, n=len(posts))
        await self._notify(Ingested(result, source))
        return result

    async def deleted(
        self, channel_id: int, msg_ids: Sequence[int], when: datetime | None = None
    ) -> list[int]:
        async with self._tracked(), self.db.transaction() as conn:
            marked = await archive.mark_deleted_in(conn, channel_id, msg_ids, when or utcnow())
        if marked:
            logger.bind(channel=channel_id).info(
                "marked {n} posts deleted (text kept)", n=len(marked)
            )
        return marked

    @asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        self._inflight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def drain(self) -> None:
        """Wait until no write is in flight (clean shutdown)."""
        await self._idle.wait()

    async def _notify(self, ingested: Ingested) -> None:
        for listener in self._listeners:
            await listener(ingested)
