"""Read-only summaries of the archive for status lines, /status, /channels, /recent and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import Database
from storage.models import iso


@dataclass(frozen=True, slots=True)
class Totals:
    posts: int
    revisions: int
    deleted: int
    claims: int


@dataclass(frozen=True, slots=True)
class ChannelActivity:
    """One watched channel: its newest post and when that post was archived."""

    id: int
    username: str | None
    title: str | None
    mode: str
    last_post: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class ChannelCount:
    posts: int
    last_post: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RecentPost:
    channel_id: int
    username: str | None
    title: str | None
    msg_id: int
    date: datetime
    text: str
    deleted: bool


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def post_count(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM posts")
    return int(row[0]) if row else 0


async def totals(db: Database) -> Totals:
    row = await db.fetchone(
        """SELECT (SELECT count(*) FROM posts),
                  (SELECT count(*) FROM post_revisions),
                  (SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL),
                  (SELECT count(*) FROM posts WHERE claim_label = 'claim')"""
    )
    return Totals(*(int(v) for v in row)) if row else Totals(0, 0, 0, 0)


async def newest_capture(db: Database) -> tuple[datetime, datetime] | None:
    """(posted, archived) of the post archived last."""
    row = await db.fetchone(
        "SELECT date, captured_at FROM posts ORDER BY captured_at DESC, id DESC LIMIT 1"
    )
    if row is None:
        return None
    return datetime.fromisoformat(row["date"]), datetime.fromisoformat(row["captured_at"])


async def channel_activity(db: Database) -> list[ChannelActivity]:
    """Every watched channel with its newest post, ordered by title."""
    rows = await db.fetchall(
        """SELECT c.id, c.username, c.title, c.mode, max(p.date) AS last_post,
                  max(p.captured_at) AS last_seen
           FROM channels c LEFT JOIN posts p ON p.channel_id = c.id
           WHERE c.active = 1 GROUP BY c.id ORDER BY c.title"""
    )
    return [
        ChannelActivity(
            row["id"],
            row["username"],
            row["title"],
            row["mode"],
            _when(row["last_post"]),
            _when(row["last_seen"]),
        )
        for row in rows
    ]


async def channel_count(db: Database, channel_id: int) -> ChannelCount:
    row = await db.fetchone(
        """SELECT count(p.id) AS n, max(p.date) AS last, c.last_error AS error
           FROM channels c LEFT JOIN posts p ON p.channel_id = c.id WHERE c.id = ?
           GROUP BY c.id, c.last_error""",
        (channel_id,),
    )
    if row is None:
        return ChannelCount(0, None, None)
    return ChannelCount(int(row["n"]), _when(row["last"]), row["error"])


async def recent_posts(db: Database, channel_id: int, count: int) -> list[RecentPost]:
    """A channel's newest `count` posts, newest first, deleted ones included."""
    rows = await db.fetchall(
        """SELECT p.msg_id, p.date, p.text, p.deleted_at, c.username, c.title, c.id AS cid
           FROM posts p JOIN channels c ON c.id = p.channel_id
           WHERE p.channel_id = ? ORDER BY p.msg_id DESC LIMIT ?""",
        (channel_id, count),
    )
    return [
        RecentPost(
            row["cid"],
            row["username"],
            row["title"],
            row["msg_id"],
            datetime.fromisoformat(row["date"]),
            row["text"],
            row["deleted_at"] is not None,
        )
        for row in rows
    ]


async def alerts_sent_since(db: Database, since: datetime) -> int:
    row = await db.fetchone(
        "SELECT count(*) FROM alerts WHERE status = 'sent' AND delivered_at >= ?", (iso(since),)
    )
    return int(row[0]) if row else 0
