"""Drains the outbox into analysts' chats: at least once, in order per chat, rate limited.

One worker per chat sends that chat's rows in planning order. Before a message
goes out, the rows it carries are recorded as one batch, and the message is sent
with a random id derived from that batch: Telegram refuses a second message with
the same random id (RANDOM_ID_DUPLICATE), so resending after a crash between the
send and the "sent" mark does not show the analyst a second copy. A server that
ignores random ids would show at most one duplicate per message that was in
flight at the crash.

A backlog of several alerts for one chat (a burst, a catch-up after an outage)
goes out as a few combined messages instead of one message a second; follow-ups
(edits, deletions) waiting among them go into the same messages, in planning
order, so each post's alert still comes before its follow-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from loguru import logger

from bot.alerts import format as fmt
from bot.alerts.policy import Decision, decide
from bot.alerts.ratelimit import RateLimiter
from storage import outbox, subscribers
from storage.db import Database, DatabaseError, unavailable
from storage.models import utcnow
from storage.outbox import Queued
from storage.subscribers import Subscriber

Buttons = Sequence[Sequence[tuple[str, bytes]]]


# --- what a sender may report ------------------------------------------------------


class SendError(Exception):
    """A message could not be sent."""


class FloodWait(SendError):
    def __init__(self, seconds: int) -> None:
        super().__init__(f"FloodWait {seconds} s")
        self.seconds = seconds


class Blocked(SendError):
    """The user blocked the bot (or deleted their account): stop writing to them."""


class AlreadySent(SendError):
    """The server already has a message with this random id: it was delivered."""


class Undeliverable(SendError):
    """A permanent problem with this message or chat; retrying will not help."""


class Transient(SendError):
    """Network trouble or a server error: retry later."""


class Postponed(SendError):
    """The chat cannot be served now (blocked the bot, undeliverable, or retry later)."""


class Sender(Protocol):
    async def send(
        self,
        chat: Subscriber,
        html: str,
        *,
        random_id: int,
        reply_to: int | None = None,
        silent: bool = False,
        buttons: Buttons | None = None,
        photo: bytes | None = None,
    ) -> int:
        """Send one HTML message (the caption of `photo`, when given); returns its id."""
        ...


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message that reached a chat, and the outbox rows it carried."""

    chat_id: int
    message_id: int | None
    alert_ids: tuple[int, ...]
    post_ids: tuple[int, ...]
    kind: str  # alert | burst | followup | digest
    at: datetime


CLOSE_GRACE = 5.0  # seconds a clean stop waits for messages being sent
HOLD_MAX = 60.0  # longest pause for a chat whose worker keeps failing

DeliveredListener = Callable[[Delivered], Awaitable[None] | None]


def random_id_for(key: str) -> int:
    """A stable signed 64-bit random id for one message (same key, same id)."""
    digest = hashlib.sha256(("chanwatch:" + key).encode()).digest()
    return int.from_bytes(digest[:8], "little", signed=True)


@dataclass
class NotifierOptions:
    burst_after: int = 4  # this many alerts waiting for one chat go out combined
    max_attempts: int = 8
    retry_base: float = 2.0  # seconds; doubles per attempt, at most retry_max
    retry_max: float = 600.0
    idle_check: float = 30.0  # seconds between outbox checks when nothing woke us


class Notifier:
    def __init__(
        self,
        db: Database,
        sender: Sender,
        limiter: RateLimiter | None = None,
        *,
        options: NotifierOptions | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_blocked: Callable[[int], None] | None = None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.limiter = limiter or RateLimiter()
        self.options = options or NotifierOptions()
        self.clock = clock
        self.on_blocked = on_blocked
        self.listeners: list[DeliveredListener] = []
        self.flood_waits: deque[tuple[datetime, int]] = deque(maxlen=1000)
        self._wake = asyncio.Event()
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._failures: dict[int, int] = {}
        self._held_until: dict[int, float] = {}  # time.monotonic() deadlines
        self._changed = asyncio.Event()
        self._closing = False

    @property
    def changed(self) -> asyncio.Event:
        """Set after the next outbox rows are handled (sent, muted, held for the digest...);
        take it before checking, then wait on it."""
        return self._changed

    def _fire(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- the loop -------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; what is pending at start goes out first."""
        try:
            while not self._closing:
                self._wake.clear()
                try:
                    await self._dispatch()
                    timeout = await self._idle_timeout()
                except Exception as exc:
                    if isinstance(exc, DatabaseError) and unavailable(exc):
                        logger.warning(
                            "notifier: cannot read the outbox ({error}); retrying", error=str(exc)
                        )
                    else:
                        logger.exception("notifier: outbox check failed; retrying")
                    timeout = self.options.retry_base
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            if not self._closing:  # cancelled: a crash or a hard stop
                await self._cancel_workers()

    async def _cancel_workers(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _dispatch(self) -> None:
        for chat_id in await outbox.chats_due(self.db, self.clock()):
            worker = self._workers.get(chat_id)
            if worker is not None and not worker.done():
                continue
            if self._held_until.get(chat_id, 0.0) > time.monotonic():
                continue  # its last worker failed: wait out the backoff
            task = asyncio.create_task(self._serve(chat_id), name=f"notify-{chat_id}")
            self._workers[chat_id] = task
            task.add_done_callback(lambda t, c=chat_id: self._worker_done(c, t))

    def _worker_done(self, chat_id: int, task: asyncio.Task[None]) -> None:
        if self._workers.get(chat_id) is task:
            del self._workers[chat_id]
        error = None if task.cancelled() else task.exception()
        if error is None:
            self._failures.pop(chat_id, None)
            self._held_until.pop(chat_id, None)
        else:
            # Hold the chat with a growing pause: an archive that cannot be written
            # (disk full, read-only) must not turn into a hot loop of retries.
            failures = self._failures[chat_id] = self._failures.get(chat_id, 0) + 1
            delay = min(self.options.retry_base * 2 ** (failures - 1), HOLD_MAX)
            self._held_until[chat_id] = time.monotonic() + delay
            log = logger.bind(chat=chat_id)
            if isinstance(error, DatabaseError):
                log.warning(
                    "notifier: the archive cannot be written ({error}); retrying this chat "
                    "in {delay:.0f} s",
                    error=str(error),
                    delay=delay,
                )
            else:
                log.opt(exception=error).error(
                    "notifier: delivery to a chat failed unexpectedly; retrying in {delay:.0f} s",
                    delay=delay,
                )
        self.wake()  # rows may have arrived while the worker was finishing

    async def _idle_timeout(self) -> float:
        wakeup = await outbox.next_wakeup(self.db, self.clock())
        timeout = self.options.idle_check
        if wakeup is not None:
            timeout = min(timeout, max(0.05, (wakeup - self.clock()).total_seconds()))
        if self._held_until:
            soonest = min(self._held_until.values()) - time.monotonic()
            timeout = min(timeout, max(0.05, soonest))
        return timeout

    async def close(self) -> None:
        """Stop taking new work; let messages being sent finish (for a few seconds)."""
        self._closing = True
        self.wake()
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers, timeout=CLOSE_GRACE)
        await self._cancel_workers()

    # --- one chat -------------------------------------------------------------------

    async def _serve(self, chat_id: int) -> None:
        log = logger.bind(chat=chat_id)
        while not self._closing:
            if not await outbox.due_for(self.db, chat_id, limit=1):
                return
            # wait for the chat's slot before reading: the message shows the freshest state
            await self.limiter.ready(chat_id)
            if self._closing:
                return
            rows = await outbox.due_for(self.db, chat_id)
            now = self.clock()
            ready = []
            for row in rows:
                if row.not_before is not None and row.not_before > now:
                    break  # later rows wait too: order per chat is kept
                ready.append(row)
            if not ready:
                return
            sub = await subscribers.get(self.db, chat_id)
            try:
                await self._handle(sub, ready, now)
            except Postponed as stop:
                log.debug("notifier: pausing this chat ({reason})", reason=str(stop))
                return
            except Exception as exc:
                if isinstance(exc, DatabaseError) and unavailable(exc):
                    raise  # the chat is held with a growing pause (_worker_done)
                # a bug or an unexpected answer: hold this chat's head a while, not in a loop
                log.exception("notifier: could not deliver; retrying later")
                until = now + timedelta(seconds=self.options.retry_max / 10)
                await outbox.defer(self.db, [ready[0].id], until, "unexpected error")
                return
            finally:
                self._fire()

    async def _handle(self, sub: Subscriber | None, rows: list[Queued], now: datetime) -> None:
        head = rows[0]
        decision = decide(sub, now, followup=head.is_followup and not head.is_thread)
        if decision is Decision.SKIP:
            await outbox.mark(self.db, [r.id for r in rows], "skipped", "not a subscriber")
            return
        if decision is Decision.MUTED:
            await outbox.mark(self.db, [r.id for r in rows], "muted")
            return
        if decision is Decision.DIGEST:
            run = _leading(rows, lambda r: not r.is_followup or r.is_thread)
            await outbox.mark(self.db, [r.id for r in run], "digest")
            return
        assert sub is not None
        silent = decision is Decision.SEND_SILENTLY
        if head.batch is not None:  # sent (perhaps) before a crash: resend the same rows
            group = [r for r in rows if r.batch == head.batch]
            if len(group) > 1:
                kind = "burst"
            else:
                kind = "followup" if head.is_followup else "alert"
            await self._send_group(sub, group, kind, silent)
            return
        # A backlog (a burst, the drain after an outage) goes out combined, follow-ups
        # among the alerts in planning order: an edit in between does not split it.
        run = _leading(
            rows,
            lambda r: r.batch is None and decide(sub, now, followup=r.is_followup) is decision,
        )
        if len(run) >= self.options.burst_after:
            await self._send_burst(sub, run, silent)
        elif head.is_followup:
            await self._send_followup(sub, head, silent)
        else:
            await self._send_group(sub, [head], "alert", silent)

    async def _send_followup(self, sub: Subscriber, row: Queued, silent: bool) -> None:
        original = await outbox.original_of(self.db, sub.chat_id, row.original_post)
        if (original is None or original[0] != "sent") and row.is_thread:
            await self._send_group(sub, [row], "alert", silent)  # no alert to reply to
            return
        if original is None or original[0] != "sent":
            await outbox.mark(self.db, [row.id], "skipped", "original alert was not sent")
            return
        await self._send_group(sub, [row], "followup", silent)

    async def _send_burst(self, sub: Subscriber, rows: list[Queued], silent: bool) -> None:
        # a follow-up needs its alert: sent before, or going out in this run ahead of it
        alerted = {r.post_id for r in rows if not r.is_followup}
        orphans: list[int] = []
        for row in rows:
            if row.is_followup and row.post_id not in alerted:
                original = await outbox.original_of(self.db, sub.chat_id, row.post_id)
                if original is None or original[0] != "sent":
                    orphans.append(row.id)
        if orphans:
            await outbox.mark(self.db, orphans, "skipped", "original alert was not sent")
            rows = [r for r in rows if r.id not in set(orphans)]
        views = await outbox.views(self.db, rows)
        await self._drop_missing(rows, views)
        if not views:
            return
        for message, group in fmt.burst_parts(views, sub.tz):  # each message its own batch
            await self._deliver(sub, [views[i].alert for i in group], message, "burst", silent)

    async def _send_group(
        self, sub: Subscriber, rows: list[Queued], kind: str, silent: bool
    ) -> None:
        views = await outbox.views(self.db, rows)
        await self._drop_missing(rows, views)
        if not views:
            return
        if kind == "followup":
            html = fmt.followup(views[0], sub.tz)
            reply_to = views[0].reply_to
        elif len(views) == 1:
            html, reply_to = fmt.alert(views[0], sub.tz), None
        else:  # a combined message resent after a crash: the same rows, one message
            html, reply_to = fmt.combined(views, sub.tz), None
        await self._deliver(sub, [v.alert for v in views], html, kind, silent, reply_to)

    async def _drop_missing(
        self, rows: Sequence[Queued], views: Sequence[outbox.AlertView]
    ) -> None:
        found = {v.alert.id for v in views}
        missing = [r.id for r in rows if r.id not in found]
        if missing:
            await outbox.mark(self.db, missing, "failed", "post missing from the archive")

    # --- sending --------------------------------------------------------------------

    async def _deliver(
        self,
        sub: Subscriber,
        rows: Sequence[Queued],
        html: str,
        kind: str,
        silent: bool,
        reply_to: int | None = None,
    ) -> None:
        ids = [r.id for r in rows]
        batch = await outbox.assign_batch(self.db, ids)
        attempts = max(r.attempts for r in rows) + 1
        message_id = await self.send(
            sub,
            html,
            key=f"alert-batch:{batch}",
            reply_to=reply_to,
            silent=silent,
            attempts=attempts,
            on_retry=lambda until, why: outbox.defer(self.db, ids, until, why),
            on_give_up=lambda why: outbox.mark(self.db, ids, "failed", why),
        )
        await outbox.mark_sent(self.db, ids, message_id, self.clock())
        await self._emit(
            Delivered(
                sub.chat_id,
                message_id,
                tuple(ids),
                tuple(r.post_id for r in rows),
                kind,
                self.clock(),
            )
        )

    async def send(
        self,
        sub: Subscriber,
        html: str,
        *,
        key: str,
        reply_to: int | None = None,
        silent: bool = False,
        buttons: Buttons | None = None,
        attempts: int = 1,
        on_retry: Callable[[datetime, str], Awaitable[None]] | None = None,
        on_give_up: Callable[[str], Awaitable[None]] | None = None,
        photo: bytes | None = None,
    ) -> int | None:
        """Send one message through the limiter, waiting out FloodWaits.

        Returns the message id (None when the server says it already has it).
        Raises Postponed when the chat must not be served now (blocked, retry later).
        """
        log = logger.bind(chat=sub.chat_id)
        random_id = random_id_for(key)
        while True:
            await self.limiter.acquire(sub.chat_id, sub.is_group)
            try:
                message_id = await self.sender.send(
                    sub,
                    html,
                    random_id=random_id,
                    reply_to=reply_to,
                    silent=silent,
                    buttons=buttons,
                    photo=photo,
                )
            except FloodWait as exc:
                self.flood_waits.append((self.clock(), exc.seconds))
                log.warning("FloodWait sending to a chat: waiting {seconds} s", seconds=exc.seconds)
                self.limiter.pause(exc.seconds, sub.chat_id)
                continue
            except AlreadySent:
                log.info("message {key} was already delivered: the resend was refused", key=key)
                return None
            except Blocked:
                log.warning("the analyst blocked the bot; marking them inactive")
                await subscribers.deactivate(self.db, sub.chat_id, "blocked the bot")
                await outbox.skip_pending_of(self.db, sub.chat_id, "blocked the bot")
                if self.on_blocked is not None:
                    self.on_blocked(sub.chat_id)
                raise Postponed("blocked") from None
            except Undeliverable as exc:
                log.error("cannot deliver to this chat: {error}", error=str(exc))
                if on_give_up is not None:
                    await on_give_up(str(exc))
                raise Postponed("undeliverable") from None
            except Transient as exc:
                if attempts >= self.options.max_attempts:
                    log.error("giving up after {n} attempts: {error}", n=attempts, error=str(exc))
                    if on_give_up is not None:
                        await on_give_up(str(exc))
                    raise Postponed("gave up") from None
                delay = min(self.options.retry_max, self.options.retry_base * 2 ** (attempts - 1))
                log.warning(
                    "sending failed ({error}); retrying in {delay:.0f} s",
                    error=str(exc),
                    delay=delay,
                )
                if on_retry is not None:
                    await on_retry(self.clock() + timedelta(seconds=delay), str(exc))
                raise Postponed("retry later") from None
            return message_id

    async def _emit(self, delivered: Delivered) -> None:
        for listener in self.listeners:
            try:
                result = listener(delivered)
                if result is not None:
                    await result
            except Exception:
                logger.exception("a delivered-alert listener failed")

    def flood_waits_since(self, since: datetime) -> int:
        return sum(1 for when, _ in self.flood_waits if when >= since)


def _leading(rows: Sequence[Queued], keep: Callable[[Queued], bool]) -> list[Queued]:
    run = []
    for row in rows:
        if not keep(row):
            break
        run.append(row)
    return run
