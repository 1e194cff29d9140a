"""Scheduled jobs as plain async functions, and the scheduler that runs them.

The functions take what they need and the current time, so tests call them
directly with a fixed clock; `build_scheduler()` only decides how often.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from bot.alerts import charts
from bot.alerts import format as fmt
from bot.alerts.notifier import Notifier, SendError
from bot.alerts.policy import digest_due, zone
from storage import incidents, outbox, subscribers
from storage.db import Database

DIGEST_CHECK_SECONDS = 60
CHART_DAYS = 14
CHART_INCIDENTS = 5
CHART_CAPTION = "📈 posts and claims per day per channel, and the digest's incidents over time"


async def digest_chart(
    db: Database, views: Sequence[outbox.AlertView], now: datetime
) -> bytes | None:
    """The digest's PNG: the last two weeks per channel, and its incidents' timelines
    (None when there is nothing to draw or drawing failed: the digest goes out anyway)."""
    try:
        days = await incidents.daily_counts(db, now - timedelta(days=CHART_DAYS), now)
        seen: dict[int, incidents.Incident] = {}
        for view in views:
            if view.incident is not None:
                seen.setdefault(view.incident.id, view.incident)
        shown = sorted(seen.values(), key=lambda i: -i.posts)[:CHART_INCIDENTS]
        timelines = [(i, await incidents.timeline(db, i.id)) for i in shown]
        if not days and not timelines:
            return None
        return await asyncio.to_thread(charts.activity_png, days, timelines, title="chanwatch")
    except Exception:
        logger.exception("could not draw the digest chart; the digest goes without it")
        return None


async def send_digests(db: Database, notifier: Notifier, now: datetime) -> int:
    """Send the daily digest to every digest chat whose digest time has come.

    Each digest message has a random id derived from the chat and the local day,
    so a digest resent after a crash is not shown twice. Returns digests sent.
    """
    sent = 0
    for sub in await subscribers.list_all(db, active_only=True):
        if not digest_due(sub, now):
            continue
        rows = await outbox.digest_rows(db, sub.chat_id)
        views = await outbox.views(db, rows)
        day = now.astimezone(zone(sub.tz)).strftime("%Y-%m-%d")
        log = logger.bind(chat=sub.chat_id)
        try:
            for part, html in enumerate(fmt.digest(views, sub.tz, now)):
                await notifier.send(sub, html, key=f"digest:{sub.chat_id}:{day}:{part}")
            if views and (png := await digest_chart(db, views, now)) is not None:
                key = f"digest:{sub.chat_id}:{day}:chart"
                await notifier.send(sub, CHART_CAPTION, key=key, photo=png)
        except SendError as exc:
            log.warning("digest not sent now: {error}", error=str(exc) or exc.__class__.__name__)
            continue
        if rows:
            await outbox.mark_digested(db, [r.id for r in rows], now)
        await subscribers.mark_digest_sent(db, sub.chat_id, now)
        log.info("digest sent with {n} alerts", n=len(rows))
        sent += 1
    return sent


def build_scheduler(
    db: Database, notifier: Notifier, clock: Callable[[], datetime]
) -> AsyncIOScheduler:
    """Digests are checked every minute (each chat has its own local time)."""
    scheduler = AsyncIOScheduler(timezone="UTC")

    async def digests() -> None:
        try:
            await send_digests(db, notifier, clock())
        except Exception:
            logger.exception("digest job failed; it runs again in a minute")

    scheduler.add_job(
        digests,
        "interval",
        seconds=DIGEST_CHECK_SECONDS,
        id="digests",
        max_instances=1,
        coalesce=True,
    )
    return scheduler
