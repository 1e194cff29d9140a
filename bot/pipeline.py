"""One entry for every post, whatever brought it: live event, catch-up, reconcile, import.

Post -> analyze (lemmas for search) -> archive -> detect (claim verdict and
keyword rules) -> plan alerts into the outbox, all in one transaction per call:
a post is never archived without its alerts, nor alerted without being archived.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import pickle
import traceback
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Literal, NamedTuple

from loguru import logger

from bot import incident_join
from bot.alerts import audience
from bot.alerts import policy as alerts
from bot.alerts.audience import Audience
from bot.alerts.policy import Claim, Hit, Policy, Subject
from bot.detection import Analysis, analyze
from bot.detection import load as load_dictionaries
from bot.detection.claims import ClaimResult, detect_claim
from bot.detection.keywords import Matcher, Rule, WordsMatch, compile_rules
from bot.incidents import TextFeatures, text_features, with_signatures
from bot.pool import DetectionPool
from storage import archive, outbox
from storage.archive import Archived
from storage.db import Connection, Database, unavailable
from storage.models import Post, iso, utcnow

Source = Literal["live", "catchup", "reconcile", "poll", "import"]
# Sources whose batches may go to the worker processes (live and polled posts stay
# in-process for latency); a batch with fewer distinct texts is not worth the trip.
BULK_SOURCES = frozenset({"catchup", "reconcile", "import"})
POOL_MIN_TEXTS = 32
Clock = Callable[[], datetime]
# While a bulk stream runs, the garbage collector's youngest generation waits for this
# many new containers instead of Python's 700: a batch makes tens of thousands of them
# (detection results, alert payloads, rows), and with 700 the collector ran dozens of
# times a batch, moving what the batch still held into older generations to walk again.
BULK_GC_THRESHOLD = 50_000
# A stream's batches already waiting behind the one taken are written with it, up to
# this many posts in one transaction: when the source outruns the pipeline (a catch-up
# on a fast link, an import), a commit, its FTS segment and a batch's fixed work are
# paid for four pages instead of one; when the source is slower, each batch goes alone.
JOIN_POSTS = 400
JOIN_WAITING = 4  # batches read ahead of the pipeline, to be joined
READ_AHEAD_TASK = "stream read-ahead"
_bulk_streams = 0
_saved_gc_threshold = gc.get_threshold()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's first threshold while any bulk stream runs (process-wide:
    restored when the last one ends)."""
    global _bulk_streams, _saved_gc_threshold
    if _bulk_streams == 0:
        _saved_gc_threshold = first, *older = gc.get_threshold()
        gc.set_threshold(max(first, BULK_GC_THRESHOLD), *older)
    _bulk_streams += 1
    try:
        yield
    finally:
        _bulk_streams -= 1
        if _bulk_streams == 0:
            gc.set_threshold(*_saved_gc_threshold)


async def _joined(batches: AsyncIterable[Sequence[Post]], limit: int) -> AsyncIterator[list[Post]]:
    """Each batch of `batches` with those already waiting behind it, up to `limit`
    posts. A task reads ahead (JOIN_WAITING batches); what went wrong reading is raised
    after the batches read before it."""
    # the reader's last item: StopAsyncIteration at the end, or what went wrong
    waiting: asyncio.Queue[list[Post] | Exception] = asyncio.Queue(JOIN_WAITING)

    async def read() -> None:
        try:
            async for posts in batches:
                if posts:
                    await waiting.put(list(posts))
        except asyncio.CancelledError:
            if reader.cancelling():
                raise  # the stream stopped reading
            # something the source awaited was cancelled (Telethon cancels the requests
            # in flight when its client disconnects): the stream must not wait forever
            await waiting.put(ConnectionError("reading the stream was cancelled"))
            return
        except Exception as exc:
            await waiting.put(exc)
            return
        await waiting.put(StopAsyncIteration())

    reader = asyncio.create_task(read(), name=READ_AHEAD_TASK)
    try:
        item = await waiting.get()
        while isinstance(item, list):
            joined, last = item, None
            while last is None and len(joined) < limit and not waiting.empty():
                taken = waiting.get_nowait()
                if isinstance(taken, list):
                    joined += taken
                else:
                    last = taken
            yield joined
            item = last if last is not None else await waiting.get()
        if not isinstance(item, StopAsyncIteration):
            raise item
    finally:
        reader.cancel()  # the pipeline stopped early; its own cancellation still passes
        await asyncio.wait([reader])


def lemma_text(analysis: Analysis) -> str:
    """Every lemma of every word, in order, for the FTS `lemmas` column: a search
    looks a word up by any lemma a keyword rule would match it by."""
    return " ".join(
        " ".join(token.lemmas) if token.lemmas else token.norm for token in analysis.tokens
    )


def claim_of(result: ClaimResult) -> Claim:
    spans = tuple((e.start, e.end) for e in result.evidence if e.kind in alerts.HIGHLIGHT_EVIDENCE)
    return Claim(result.label, result.score, result.count, result.unverified, spans)


def evidence_json(result: ClaimResult) -> str | None:
    evidence = [
        {"kind": e.kind, "text": e.text, "start": e.start, "end": e.end, "rule": e.rule}
        for e in result.evidence
    ]
    return json.dumps(evidence, ensure_ascii=False) if evidence else None


def detection_row(result: ClaimResult, lang: str, now: str, post_id: int) -> tuple:
    return Verdict.of(result).row(lang, now, post_id)


class Verdict(NamedTuple):
    """A claim verdict as stored and alerted on (plain values: cheap to send between
    processes, unlike the detector's nested dataclasses)."""

    label: str
    score: float
    count: int | None
    unverified: bool
    evidence: str | None  # JSON, as stored in posts.claim_evidence
    spans: tuple[tuple[int, int], ...]  # evidence worth highlighting

    @classmethod
    def of(cls, result: ClaimResult) -> Verdict:
        claim = claim_of(result)
        return cls(
            result.label, result.score, result.count, result.unverified,
            evidence_json(result), claim.spans,
        )  # fmt: skip

    def claim(self) -> Claim:
        return Claim(self.label, self.score, self.count, self.unverified, self.spans)

    def row(self, lang: str, now: str, post_id: int) -> tuple:
        score = round(self.score, 4)
        return (lang, self.label, score, self.count, int(self.unverified), self.evidence, now,
                post_id)  # fmt: skip


class Detected(NamedTuple):
    """What detection found in one text, computed once per distinct text (and
    channel, when some rule is limited to channels) of a batch."""

    lemmas: str = ""
    lang: str = "other"
    verdict: Verdict | None = None
    matches: tuple[WordsMatch, ...] = ()
    analysis_error: str | None = None  # traceback: archived without lemmas or detection
    claim_error: str | None = None  # traceback: archived without a verdict or alerts
    features: TextFeatures | None = None  # for incident grouping, from a worker
    # in-process: kept for grouping, which takes its features only if the post is compared
    analysis: Analysis | None = None


def detect_text(
    text: str,
    matcher: Matcher | None = None,
    channel: Sequence[str | int] = (),
    *,
    grouped: bool = False,
    keep_analysis: bool = False,
) -> Detected:
    """Detection of one text; `grouped`: with what incident grouping takes from it
    (a worker does that work beside the rest); `keep_analysis`: with the analysis
    (in-process, where grouping takes its features only if needed)."""
    try:
        analysis = analyze(text)
    except Exception:
        return Detected(analysis_error=traceback.format_exc())
    lemmas = lemma_text(analysis)
    try:
        verdict = Verdict.of(detect_claim(analysis))
    except Exception:
        return Detected(lemmas, analysis.lang, claim_error=traceback.format_exc())
    matches: tuple[WordsMatch, ...] = ()
    if matcher is not None:
        matches = tuple(matcher.match_words(analysis, channel=channel))
    features = None
    if grouped:
        # on failure grouping computes them again in its own error boundary, which logs;
        # detect_chunk signs them, all of its chunk's at once
        with contextlib.suppress(Exception):
            features = text_features(analysis)
    kept = analysis if keep_analysis else None
    return Detected(lemmas, analysis.lang, verdict, matches, features=features, analysis=kept)


def _features_given(found: TextFeatures) -> TextFeatures:
    return found


def _features_of(analysis: Analysis) -> TextFeatures:
    # signed here, once, rather than per incident the post is compared with
    return text_features(analysis, signed=True)


def _features_of_text(text: str) -> TextFeatures:
    return _features_of(analyze(text))


# In a worker process: the last rule set it was sent, compiled once.
_worker_matcher: tuple[int, Matcher | None] = (0, None)


def detect_chunk(
    items: Sequence[tuple[str, tuple[str | int, ...]]],
    version: int,
    rules: bytes,
    grouped: bool = False,
    matching: bool = True,
) -> list[Detected]:
    """detect_text over (text, channel) pairs, run in a worker process. `rules` is the
    pickled rule set `version`: unpickled and compiled only when the version changes.
    `matching` False: the texts are not matched against it (nor is it compiled)."""
    global _worker_matcher
    if matching and _worker_matcher[0] != version:
        compiled: tuple[Rule, ...] = pickle.loads(rules) if rules else ()
        _worker_matcher = (version, compile_rules(compiled) if compiled else None)
    matcher = _worker_matcher[1] if matching else None
    found = [detect_text(text, matcher, channel, grouped=grouped) for text, channel in items]
    return _signed(found) if grouped else found


def _signed(found: list[Detected]) -> list[Detected]:
    """The MinHash signatures of the texts' features, in one numpy pass (a third of
    the cost of one signature at a time); left for grouping to compute on failure."""
    todo = {i: d.features for i, d in enumerate(found) if d.features is not None}
    with contextlib.suppress(Exception):
        for i, features in zip(todo, with_signatures(list(todo.values())), strict=True):
            found[i] = found[i]._replace(features=features)
    return found


def _seed_worker_matcher(version: int, matcher: Matcher | None) -> None:
    """The rule set `version`, already compiled here, for worker processes forked
    after this call: they skip unpickling and compiling it (~0.15 s for 1,000 rules)."""
    global _worker_matcher
    _worker_matcher = (version, matcher)


def pickled_rules(rules: tuple[Rule, ...]) -> bytes:
    return pickle.dumps(rules, protocol=pickle.HIGHEST_PROTOCOL)


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
        pool: DetectionPool | None = None,
    ) -> None:
        self.db = db
        self.pool = pool  # bulk batches are detected there; None: always in-process
        self._pickled_rules: dict[int, bytes] = {}
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
        return await self._write(posts, source, alert, await self._prepare(posts, source, alert))

    async def ingest_stream(
        self,
        batches: AsyncIterable[Sequence[Post]],
        source: Source,
        *,
        alert: bool | None = None,
        done: Callable[[Sequence[Post], list[Archived]], None] | None = None,
    ) -> int:
        """ingest() each batch in order, detecting the next batch (and fetching it:
        `batches` is read ahead meanwhile) while the previous one is written. Each batch
        is one transaction, committed in order, joined with the batches already read
        behind it (up to JOIN_POSTS posts) on bulk paths. `done` is called with each
        written batch and its result. Returns the number of posts ingested."""
        # a polled stream stays in-process, for latency: its pages are not joined
        limit = JOIN_POSTS if source in BULK_SOURCES else 0
        with fewer_collections():
            async with contextlib.aclosing(_joined(batches, limit)) as joined:
                return await self._stream(joined, source, alert, done)

    async def _stream(
        self,
        batches: AsyncIterable[Sequence[Post]],
        source: Source,
        alert: bool | None,
        done: Callable[[Sequence[Post], list[Archived]], None] | None,
    ) -> int:
        writing: asyncio.Task[list[Archived]] | None = None
        written: Sequence[Post] = ()
        count = 0

        def report(result: list[Archived]) -> None:
            if done is not None:
                done(written, result)

        try:
            async for posts in batches:  # never empty: _joined drops empty batches
                prepared = await self._prepare(posts, source, alert)
                if writing is not None:
                    previous, writing = writing, None
                    report(await previous)
                writing = asyncio.create_task(self._write(posts, source, alert, prepared))
                written = posts
                count += len(posts)
        except BaseException:
            if writing is not None:
                # what went wrong fetching or detecting the next batch is what the caller
                # handles; the batch already being written still commits (or fails alone)
                with contextlib.suppress(Exception):
                    report(await writing)
            raise
        if writing is not None:
            report(await writing)
        return count

    async def _prepare(
        self, posts: Sequence[Post], source: Source, alert: bool | None
    ) -> _Prepared:
        who = await self.audience()
        # keyword matches only serve alerts: a silent batch (an import) is not matched
        matching = who.matcher is not None and not _silent(source, alert)
        channels = await self._channel_names(posts) if who.scoped and matching else {}
        # a post re-read as it was archived is archived again without being analysed
        # (its row keeps its lemmas and verdict); live posts are new or edited
        same = await archive.unchanged(self.db, posts) if source != "live" else set()
        todo = [post for post in posts if _ident(post) not in same] if same else posts
        found = await self._detect(todo, source, who, channels, matching) if todo else {}
        return _Prepared(who, channels, found, same, matching)

    async def _confirmed(
        self, conn: Connection, posts: Sequence[Post], prepared: _Prepared
    ) -> dict[object, Detected]:
        """What detection found, with the posts that were not analysed as unchanged
        and have changed since (archived or edited meanwhile) analysed here."""
        found = prepared.found
        skipped = [post for post in posts if _ident(post) in prepared.same]
        if not skipped:
            return found
        still = await archive.unchanged_in(conn, skipped)
        matcher = prepared.who.matcher if prepared.matching else None
        found = dict(found)
        for post in skipped:
            key = _key(post, prepared.channels)
            if _ident(post) not in still and key not in found:
                channel = prepared.channels.get(post.channel_id, ())
                found[key] = detect_text(post.text, matcher, channel, keep_analysis=True)
        return found

    async def _write(
        self, posts: Sequence[Post], source: Source, alert: bool | None, prepared: _Prepared
    ) -> list[Archived]:
        who, channels = prepared.who, prepared.channels
        now = self.clock()
        stamp = iso(now)
        try:
            async with self._tracked(), self.db.transaction() as conn:
                found = await self._confirmed(conn, posts, prepared)
                items = []
                detections = []  # stored in a new post's row (an edited one's in _detect_and_plan)
                for post in posts:
                    detected = found.get(_key(post, channels))
                    if detected is None:  # unchanged: its row keeps lemmas and verdict
                        items.append((post, ""))
                        detections.append(None)
                        continue
                    if detected.analysis_error is not None:
                        logger.bind(channel=post.channel_id, msg_id=post.msg_id).error(
                            "could not analyse a post's text; archived without lemmas, "
                            "detection or alerts\n{error}",
                            error=detected.analysis_error,
                        )
                    items.append((post, detected.lemmas))
                    verdict = detected.verdict
                    detections.append(
                        verdict.row(detected.lang, stamp, 0)[:-1] if verdict else None
                    )
                result = await archive.archive_posts_in(conn, items, detections)
                planned = await self._detect_and_plan(
                    conn, result, found, channels, source, who, alert, now
                )
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

    async def _channel_names(self, posts: Sequence[Post]) -> dict[int, tuple[str | int, ...]]:
        """channel id -> (id, username): what channel-limited rules are matched against."""
        ids = {post.channel_id for post in posts}
        names = await archive.channel_usernames(self.db, ids)
        return {i: (i, names[i]) if i in names else (i,) for i in ids}

    async def _detect(
        self,
        posts: Sequence[Post],
        source: Source,
        who: Audience,
        channels: dict[int, tuple[str | int, ...]],
        matching: bool,
    ) -> dict[object, Detected]:
        """Detection once per distinct text of the batch; a bulk batch in the workers.
        `matching`: whether the audience's keyword rules are matched too."""
        todo: dict[object, tuple[str, tuple[str | int, ...]]] = {}
        for post in posts:
            key = _key(post, channels)
            if key not in todo:
                todo[key] = (post.text, channels.get(post.channel_id, ()))
        items = list(todo.values())
        pool = self.pool
        if (
            pool is not None
            and pool.enabled
            and source in BULK_SOURCES
            and len(items) >= POOL_MIN_TEXTS
        ):
            if not pool.running:
                # the workers are forked from this process: loaded here first, the
                # dictionaries are loaded once and shared instead of once per worker
                # (this process needs them too, to group claims into incidents), and
                # the workers start with the current rules compiled
                load_dictionaries()
                _seed_worker_matcher(who.version, who.matcher)
            rules = self._pickled_rules.get(who.version)
            if rules is None:
                self._pickled_rules = {who.version: (rules := pickled_rules(who.rules))}
            results = await pool.map(
                detect_chunk, pool.chunks(items), who.version, rules, True, matching
            )
        else:
            matcher = who.matcher if matching else None
            results = [
                detect_text(text, matcher, channel, keep_analysis=True) for text, channel in items
            ]
        return dict(zip(todo, results, strict=True))

    async def _detect_and_plan(
        self,
        conn: Connection,
        result: Sequence[Archived],
        found: dict[object, Detected],
        channels: dict[int, tuple[str | int, ...]],
        source: Source,
        who: Audience,
        alert: bool | None,
        now: datetime,
    ) -> int:
        touched = [a for a in result if a.status in ("new", "edited")]
        if not touched:
            return 0
        stamp = iso(now)
        edited = [a.post_id for a in touched if a.status == "edited"]
        alerted = await outbox.alerted_in(conn, edited) if edited else {}
        revisions = await outbox.revision_counts_in(conn, edited) if edited else {}
        planning = bool(who.subscribers) and not _silent(source, alert)
        hits: dict[object, dict[int, list[Hit]]] = {}
        rows = []
        planned = []
        grouping: list[incident_join.Item] = []
        for item in touched:
            key = _key(item.post, channels)
            detected = found.get(key)
            if detected is None or detected.analysis_error is not None:
                continue  # the text could not be analysed (logged): archived as it is
            verdict = detected.verdict
            if verdict is None:
                logger.bind(channel=item.post.channel_id, msg_id=item.post.msg_id).error(
                    "claim detection failed on a post; archived without a verdict or alerts"
                    "\n{error}",
                    error=detected.claim_error,
                )
                continue
            if item.status == "edited":  # a new post's row was written with them
                rows.append(verdict.row(detected.lang, stamp, item.post_id))
            # computed only if grouping needs them (a claim, or a post near an incident)
            # and no worker did: from the analysis detection kept, else analysed again
            if detected.features is not None:
                features = partial(_features_given, detected.features)
            elif detected.analysis is not None:
                features = partial(_features_of, detected.analysis)
            else:
                features = partial(_features_of_text, item.post.text)
            grouping.append((item.post_id, item.post, features, verdict))
            if not planning:
                continue
            chat_hits = hits.get(key)
            if chat_hits is None:
                chat_hits = hits[key] = who.hits_of(detected.matches)
            subject = Subject(
                post_id=item.post_id,
                post=item.post,
                status=item.status,
                source=source,
                claim=verdict.claim(),
                hits=chat_hits,
                alerted=alerted.get(item.post_id, {}),
                revision=revisions.get(item.post_id, 0),
                forced=bool(alert),
            )
            planned.extend(alerts.plan(subject, who.subscribers, self.policy, now))
        if rows:
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


class _Prepared(NamedTuple):
    who: Audience
    channels: dict[int, tuple[str | int, ...]]
    found: dict[object, Detected]
    same: set[tuple[int, int]]  # posts not analysed: archived with this very text
    matching: bool


def _ident(post: Post) -> tuple[int, int]:
    return (post.channel_id, post.msg_id)


def _silent(source: Source, alert: bool | None) -> bool:
    """Whether a batch plans no alerts: `alert` None leaves it to the source."""
    return source in alerts.SILENT_SOURCES if alert is None else not alert


def _key(post: Post, channels: dict[int, tuple[str | int, ...]]) -> object:
    """What detection of a post depends on: its text, and its channel when some rule
    is limited to channels (`channels` is then filled)."""
    if channels:
        return (post.text, post.channel_id)
    return post.text


def _skipped(post: Post, source: Source) -> None:
    logger.bind(source=source, channel=post.channel_id, msg_id=post.msg_id).exception(
        "could not archive post {msg_id}; skipped, the rest of its batch is archived",
        msg_id=post.msg_id,
    )
