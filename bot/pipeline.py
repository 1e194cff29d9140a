"""One entry for every post, whatever brought it: live event, catch-up, reconcile, import.

Post -> analyze (lemmas for search) -> archive -> detect (claim verdict and
keyword rules) -> plan alerts into the outbox, all in one transaction per call:
a post is never archived without its alerts, nor alerted without being archived.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from loguru import logger

from bot import incident_join
from bot.alerts import audience
from bot.alerts import policy as alerts
from bot.alerts.audience import Audience
from bot.alerts.policy import Claim, Policy, Subject
from bot.detection import Analysis, analyze
from bot.detection.claims import ClaimResult, detect_claim
from storage import archive, outbox
from storage.archive import Archived
from storage.db import Connection, Database, unavailable
from storage.models import Post, iso, utcnow

Source = Literal["live", "catchup", "reconcile", "poll", "import"]
Clock = Callable[[], datetime]


def lemma_text(analysis: Analysis) -> str:
    """Every lemma of every word, in order, for the FTS `lemmas` column: a search
    looks a word up by any lemma a keyword rule would match it by."""
    return " ".join(
        " ".join(token.lemmas) if token.lemmas else token.norm for token in analysis.tokens
    )


def claim_of(result: ClaimResult) -> Claim:
    spans = tuple((e.start, e.end) for e in result.evidence if e.kind in alerts.HIGHLIGHT_EVIDENCE)
    return Claim(result.label, result.score, result.count, result.unverified, spans)


def detection_row(result: ClaimResult, analysis: Analysis, now: str, post_id: int) -> tuple:
    evidence = [
        {"kind": e.kind, "text": e.text, "start": e.start, "end": e.end, "rule": e.rule}
        for e in result.evidence
    ]
    return (
        analysis.lang,
        result.label,
        round(result.score, 4),
        result.count,
        int(result.unverified),
        json.dumps(evidence, ensure_ascii=False) if evidence else None,
        now,
        post_id,
    )


@dataclass(frozen=True, slots=True)
class Ingested:
    archived: list[Archived]
    source: Source
    alerts: int = 0  # outbox rows planned


Listener = Callable[[Ingested], Awaitable[None]]


class Pipeline:
    def __init__(
        self,
        db: Database,
        *,
        policy: Policy | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.db = db
        self.policy = policy or Policy()
        self.clock = clock
        self._listeners: list[Listener] = []
        self._alert_hooks: list[Callable[[], None]] = []
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._changed = asyncio.Event()
        self._audience: Audience | None = None

    @property
    def changed(self) -> asyncio.Event:
        """Set by the next committed write; take it before checking, then wait on it."""
        return self._changed

    async def wait_until(self, check: Callable[[], Awaitable[bool]]) -> None:
        """Wait until `check()` holds, re-checking after each committed write (the
        caller bounds the wait with a timeout)."""
        while True:
            changed = self._changed
            if await check():
                return
            await changed.wait()

    def subscribe(self, listener: Listener) -> None:
        """Called after each committed ingest (metrics, status, tests)."""
        self._listeners.append(listener)

    def on_alerts(self, hook: Callable[[], None]) -> None:
        """Called (synchronously) after a commit that planned outbox rows: wakes the notifier."""
        self._alert_hooks.append(hook)

    def audience_changed(self) -> None:
        """Rules or subscribers changed: reload them before the next post."""
        self._audience = None

    async def audience(self) -> Audience:
        if self._audience is None:
            self._audience = await audience.load(self.db)
        return self._audience

    async def ingest(
        self, posts: Sequence[Post], source: Source, *, alert: bool | None = None
    ) -> list[Archived]:
        """Archive posts, store their detection results and plan their alerts.

        `alert`: None plans alerts for every source but "import"; True plans them for
        imports too (marked delayed, subject to the maximum age); False never."""
        if not posts:
            return []
        analyses: dict[str, Analysis] = {}
        items = []
        for post in posts:
            analysis = analyses.get(post.text)
            if analysis is None:
                analysis = _analyze(post)
                if analysis is not None:
                    analyses[post.text] = analysis
            items.append((post, lemma_text(analysis) if analysis is not None else ""))
        who = await self.audience()
        try:
            async with self._tracked(), self.db.transaction() as conn:
                result = await archive.archive_posts_in(conn, items)
                planned = await self._detect_and_plan(conn, result, analyses, source, who, alert)
        except Exception as exc:
            if unavailable(exc) or len(posts) == 1:
                raise
            # one poison post must not keep the rest of its batch out of the archive
            return await self._one_by_one(posts, source, alert, exc)
        log = logger.bind(source=source, channel=posts[0].channel_id)
        changed = sum(1 for a in result if a.status in ("new", "edited"))
        if changed:
            log.debug("archived {changed} of {n} posts", changed=changed, n=len(posts))
        if planned:
            log.info("planned {n} alerts", n=planned)
            self._wake()
        await self._notify(Ingested(result, source, planned))
        return result

    async def _detect_and_plan(
        self,
        conn: Connection,
        result: Sequence[Archived],
        analyses: dict[str, Analysis],
        source: Source,
        who: Audience,
        alert: bool | None = None,
    ) -> int:
        touched = [a for a in result if a.status in ("new", "edited")]
        if not touched:
            return 0
        now = self.clock()
        stamp = iso(now)
        usernames = await archive.usernames_in(conn, {a.post.channel_id for a in touched})
        edited = [a.post_id for a in touched if a.status == "edited"]
        alerted = await outbox.alerted_in(conn, edited) if edited else {}
        rows = []
        planned = []
        grouping: list[incident_join.Item] = []
        for item in touched:
            analysis = analyses.get(item.post.text)
            if analysis is None:
                continue  # the text could not be analysed (logged): archived as it is
            try:
                verdict = detect_claim(analysis)
            except Exception:
                logger.bind(channel=item.post.channel_id, msg_id=item.post.msg_id).exception(
                    "claim detection failed on a post; archived without a verdict or alerts"
                )
                continue
            rows.append(detection_row(verdict, analysis, stamp, item.post_id))
            grouping.append((item.post_id, item.post, analysis, verdict))
            silent = source in alerts.SILENT_SOURCES if alert is None else not alert
            if not who.subscribers or silent:
                continue
            channel: list[str | int] = [item.post.channel_id]
            if name := usernames.get(item.post.channel_id):
                channel.append(name)
            subject = Subject(
                post_id=item.post_id,
                post=item.post,
                status=item.status,
                source=source,
                claim=claim_of(verdict),
                hits=who.hits(analysis, channel),
                alerted=alerted.get(item.post_id, {}),
                revision=(
                    await outbox.revision_count_in(conn, item.post_id)
                    if item.status == "edited"
                    else 0
                ),
                forced=bool(alert),
            )
            planned.extend(alerts.plan(subject, who.subscribers, self.policy, now))
        await archive.save_detections_in(conn, rows)
        incident_of = await incident_join.join_in(conn, grouping)
        forwarded = {i[0] for i in grouping if i[1].fwd_from is not None}
        planned = await incident_join.thread_in(conn, planned, incident_of, forwarded)
        return await outbox.add_in(conn, planned)

    async def _one_by_one(
        self, posts: Sequence[Post], source: Source, alert: bool | None, error: Exception
    ) -> list[Archived]:
        logger.bind(source=source, channel=posts[0].channel_id).warning(
            "archiving a batch of {n} posts failed ({error}); archiving them one by one",
            n=len(posts),
            error=error.__class__.__name__,
        )
        result: list[Archived] = []
        for post in posts:
            try:
                result.extend(await self.ingest([post], source, alert=alert))
            except Exception as exc:
                if unavailable(exc):
                    raise
                _skipped(post, source)
        return result

    async def deleted(
        self, channel_id: int, msg_ids: Sequence[int], when: datetime | None = None
    ) -> list[int]:
        async with self._tracked(), self.db.transaction() as conn:
            marked = await archive.mark_deleted_in(conn, channel_id, msg_ids, when or utcnow())
            planned = 0
            if marked:
                told = await outbox.alerted_in(conn, marked)
                stories = await outbox.stories_in(conn, list(told))
                rows = [
                    row
                    for post_id, chats in told.items()
                    for row in alerts.plan_deleted(post_id, stories[post_id], chats)
                ]
                planned = await outbox.add_in(conn, rows)
        if marked:
            logger.bind(channel=channel_id).info(
                "marked {n} posts deleted (text kept)", n=len(marked)
            )
        if planned:
            self._wake()
        return marked

    def _wake(self) -> None:
        for hook in self._alert_hooks:
            hook()

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


def _analyze(post: Post) -> Analysis | None:
    try:
        return analyze(post.text)
    except Exception:
        logger.bind(channel=post.channel_id, msg_id=post.msg_id).exception(
            "could not analyse a post's text; archived without lemmas, detection or alerts"
        )
        return None


def _skipped(post: Post, source: Source) -> None:
    logger.bind(source=source, channel=post.channel_id, msg_id=post.msg_id).exception(
        "could not archive post {msg_id}; skipped, the rest of its batch is archived",
        msg_id=post.msg_id,
    )
