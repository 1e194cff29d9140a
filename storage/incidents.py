"""Incidents in the archive: members with their features and ties, corrections, views.

Grouping itself is decided in `bot/incidents/` (pure); this module stores what it
decided, inside the transaction that archived the posts (`*_in` functions take
that transaction's connection), and reads incidents back for the bot, the CLI,
exports and charts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiosqlite

from storage.db import Database, rows_for_ids
from storage.models import iso, utcnow

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A grouped post as grouping needs it."""

    incident_id: int
    post_id: int
    channel_id: int
    msg_id: int
    date: datetime
    features: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewMember:
    post_id: int
    date: datetime
    features: dict[str, Any]
    score: float
    ties: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    title: str
    place: str | None
    first_post_id: int
    started_at: datetime
    last_at: datetime
    posts: int
    channels: int
    channel_names: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()  # captives claimed, in order, repeats dropped
    labels: dict[str, int] = field(default_factory=dict)  # claim/denial/exchange/none -> posts
    media: dict[str, int] = field(default_factory=dict)  # kind -> items


@dataclass(frozen=True, slots=True)
class Member:
    """One post of an incident's timeline."""

    post_id: int
    channel_id: int
    msg_id: int
    username: str | None
    title: str | None
    date: datetime
    text: str
    label: str | None
    count: int | None
    score: float
    ties: list[dict[str, Any]]
    media: tuple[str, ...]
    fwd_key: str | None
    deleted: bool
    corrected: bool  # an analyst moved it

    @property
    def link(self) -> str:
        if self.username:
            return f"https://t.me/{self.username}/{self.msg_id}"
        return f"https://t.me/c/{self.channel_id}/{self.msg_id}"

    @property
    def channel(self) -> str:
        return self.title or (f"@{self.username}" if self.username else str(self.channel_id))


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- grouping, inside the archiving transaction ----------------------------------


async def grouped_in(conn: aiosqlite.Connection, post_ids: Sequence[int]) -> set[int]:
    """Posts that already have a place (or were removed by an analyst)."""
    sql = "SELECT post_id FROM incident_posts WHERE post_id IN ({marks})"
    return {row[0] for row in await rows_for_ids(conn, sql, list(post_ids))}


async def channels_in(conn: aiosqlite.Connection) -> dict[int, tuple[str | None, str | None]]:
    async with conn.execute("SELECT id, username, title FROM channels") as cursor:
        return {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}


async def members_in(
    conn: aiosqlite.Connection, since: datetime, until: datetime
) -> list[MemberRow]:
    """Members of every incident with a post dated in [since, until]."""
    sql = """SELECT ip.incident_id, ip.post_id, p.channel_id, p.msg_id, ip.date, ip.features
             FROM incident_posts ip JOIN posts p ON p.id = ip.post_id
             WHERE ip.incident_id IN (SELECT DISTINCT incident_id FROM incident_posts
                                      WHERE incident_id IS NOT NULL AND date BETWEEN ? AND ?)
             ORDER BY ip.date"""
    async with conn.execute(sql, (iso(since), iso(until))) as cursor:
        rows = await cursor.fetchall()
    return [MemberRow(r[0], r[1], r[2], r[3], _dt(r[4]), json.loads(r[5])) for r in rows]


async def open_in(
    conn: aiosqlite.Connection, title: str, place: str | None, first: NewMember
) -> int:
    now = iso(utcnow())
    async with conn.execute(
        """INSERT INTO incidents (title, place, first_post_id, started_at, last_at, created_at,
                                  updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id""",
        (title, place, first.post_id, iso(first.date), iso(first.date), now, now),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def add_in(
    conn: aiosqlite.Connection,
    placed: Iterable[tuple[int | None, NewMember]],
    corrected: bool = False,
) -> None:
    """Record members (incident None: kept out of grouping); refresh their incidents."""
    now = iso(utcnow())
    rows = [
        (
            m.post_id,
            incident_id,
            iso(m.date),
            json.dumps(m.features, ensure_ascii=False, separators=(",", ":")),
            m.score,
            json.dumps(m.ties, ensure_ascii=False, separators=(",", ":")),
            int(corrected),
            now,
        )
        for incident_id, m in placed
    ]
    await conn.executemany(
        """INSERT INTO incident_posts (post_id, incident_id, date, features, score, ties,
                                       corrected, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (post_id) DO UPDATE SET incident_id = excluded.incident_id,
               score = excluded.score, ties = excluded.ties, corrected = excluded.corrected""",
        rows,
    )
    await refresh_in(conn, {r[1] for r in rows if r[1] is not None})


async def refresh_in(conn: aiosqlite.Connection, incident_ids: Iterable[int]) -> None:
    """Recount an incident's posts and channels and its first and last dates."""
    now = iso(utcnow())
    for incident_id in sorted(set(incident_ids)):
        await conn.execute(
            """UPDATE incidents SET
                 posts = (SELECT count(*) FROM incident_posts WHERE incident_id = ?1),
                 channels = (SELECT count(DISTINCT p.channel_id) FROM incident_posts ip
                             JOIN posts p ON p.id = ip.post_id WHERE ip.incident_id = ?1),
                 started_at = coalesce((SELECT min(date) FROM incident_posts
                                        WHERE incident_id = ?1), started_at),
                 last_at = coalesce((SELECT max(date) FROM incident_posts
                                     WHERE incident_id = ?1), last_at),
                 first_post_id = coalesce((SELECT post_id FROM incident_posts
                                           WHERE incident_id = ?1 ORDER BY date, post_id
                                           LIMIT 1), first_post_id),
                 updated_at = ?2
               WHERE id = ?1""",
            (incident_id, now),
        )


async def retitle_in(conn: aiosqlite.Connection, incident_id: int, title: str, place: str) -> None:
    """Give a placeless incident the place its first claim with a place named."""
    await conn.execute(
        "UPDATE incidents SET title = ?, place = ? WHERE id = ? AND place IS NULL",
        (title, place, incident_id),
    )


async def told_in(conn: aiosqlite.Connection, stories: Iterable[str]) -> set[tuple[int, str]]:
    """(chat, story) pairs some chat was already alerted to (as an alert or in a thread)."""
    wanted = sorted(set(stories))
    found: set[tuple[int, str]] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = (
            "SELECT chat_id, story FROM alerts WHERE reason IN ('alert', 'incident') "
            f"AND story IN ({marks})"
        )
        async with conn.execute(sql, chunk) as cursor:
            found.update((row[0], row[1]) for row in await cursor.fetchall())
    return found


async def incidents_of_in(conn: aiosqlite.Connection, post_ids: Sequence[int]) -> dict[int, int]:
    """post id -> its incident, for the posts that have one."""
    sql = (
        "SELECT post_id, incident_id FROM incident_posts "
        "WHERE incident_id IS NOT NULL AND post_id IN ({marks})"
    )
    return {row[0]: row[1] for row in await rows_for_ids(conn, sql, list(post_ids))}


async def thread_roots_in(
    conn: aiosqlite.Connection, incident_ids: Iterable[int]
) -> dict[tuple[int, int], int]:
    """(incident, chat) -> the post of the chat's first alert in that incident."""
    ids = sorted(set(incident_ids))
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    sql = f"""SELECT ip.incident_id, a.chat_id, a.post_id FROM alerts a
              JOIN incident_posts ip ON ip.post_id = a.post_id
              WHERE a.reason = 'alert' AND ip.incident_id IN ({marks})
                AND a.status IN ('pending', 'sent', 'digest', 'digested')
              ORDER BY a.id"""
    roots: dict[tuple[int, int], int] = {}
    async with conn.execute(sql, ids) as cursor:
        for incident_id, chat_id, post_id in await cursor.fetchall():
            roots.setdefault((incident_id, chat_id), post_id)
    return roots


async def every_post_chats_in(conn: aiosqlite.Connection) -> set[int]:
    async with conn.execute(
        "SELECT chat_id FROM subscribers WHERE incident_every_post = 1"
    ) as cursor:
        return {row[0] for row in await cursor.fetchall()}


# --- reading ---------------------------------------------------------------------


def _incident(row: sqlite3.Row) -> Incident:
    return Incident(
        id=row["id"],
        title=row["title"],
        place=row["place"],
        first_post_id=row["first_post_id"],
        started_at=_dt(row["started_at"]),
        last_at=_dt(row["last_at"]),
        posts=row["posts"],
        channels=row["channels"],
    )


async def _detailed(db: Database, incident: Incident) -> Incident:
    rows = await db.fetchall(
        """SELECT p.id, p.claim_label, p.claim_count, p.fwd_key,
                  coalesce(c.title, c.username) AS name
           FROM incident_posts ip JOIN posts p ON p.id = ip.post_id
           JOIN channels c ON c.id = p.channel_id
           WHERE ip.incident_id = ? ORDER BY ip.date, p.id""",
        (incident.id,),
    )
    names = tuple(dict.fromkeys(r["name"] or "?" for r in rows))
    counts: list[int] = []
    labels: dict[str, int] = {}
    for r in rows:
        label = r["claim_label"] or "none"
        labels[label] = labels.get(label, 0) + 1
        if (
            r["claim_count"]
            and label in ("claim", "exchange")
            and r["fwd_key"] is None  # a repost repeats a count already claimed
            and (not counts or counts[-1] != r["claim_count"])
        ):
            counts.append(r["claim_count"])
    media_rows = await db.fetchall(
        """SELECT m.kind, count(*) AS n FROM incident_posts ip
           JOIN media m ON m.post_id = ip.post_id WHERE ip.incident_id = ?
           GROUP BY m.kind ORDER BY n DESC""",
        (incident.id,),
    )
    return Incident(
        **{
            **{f: getattr(incident, f) for f in Incident.__dataclass_fields__},
            "channel_names": names,
            "counts": tuple(counts),
            "labels": labels,
            "media": {r["kind"]: r["n"] for r in media_rows},
        }
    )


async def get(db: Database, incident_id: int) -> Incident | None:
    """An incident with its channels, claimed counts and media (a merged one: None)."""
    row = await db.fetchone(
        "SELECT * FROM incidents WHERE id = ? AND merged_into IS NULL", (incident_id,)
    )
    return await _detailed(db, _incident(row)) if row is not None else None


async def merged_into(db: Database, incident_id: int) -> int | None:
    row = await db.fetchone("SELECT merged_into FROM incidents WHERE id = ?", (incident_id,))
    return row["merged_into"] if row is not None else None


async def recent(
    db: Database,
    *,
    since: datetime | None = None,
    channel_id: int | None = None,
    limit: int = 50,
) -> list[Incident]:
    """Incidents, latest activity first, with their details."""
    where = ["merged_into IS NULL", "posts > 0"]
    params: list[Any] = []
    if since is not None:
        where.append("last_at >= ?")
        params.append(iso(since))
    if channel_id is not None:
        where.append(
            "id IN (SELECT ip.incident_id FROM incident_posts ip JOIN posts p ON p.id = ip.post_id"
            " WHERE p.channel_id = ?)"
        )
        params.append(channel_id)
    rows = await db.fetchall(
        f"SELECT * FROM incidents WHERE {' AND '.join(where)} ORDER BY last_at DESC, id DESC"
        " LIMIT ?",
        (*params, limit),
    )
    return [await _detailed(db, _incident(r)) for r in rows]


async def timeline(db: Database, incident_id: int) -> list[Member]:
    rows = await db.fetchall(
        """SELECT p.id, p.channel_id, p.msg_id, c.username, c.title, p.date, p.text,
                  p.claim_label, p.claim_count, ip.score, ip.ties, p.fwd_key, p.deleted_at,
                  ip.corrected,
                  (SELECT group_concat(kind, ',') FROM media m WHERE m.post_id = p.id) AS kinds
           FROM incident_posts ip JOIN posts p ON p.id = ip.post_id
           JOIN channels c ON c.id = p.channel_id
           WHERE ip.incident_id = ? ORDER BY ip.date, p.id""",
        (incident_id,),
    )
    return [
        Member(
            post_id=r["id"],
            channel_id=r["channel_id"],
            msg_id=r["msg_id"],
            username=r["username"],
            title=r["title"],
            date=_dt(r["date"]),
            text=r["text"],
            label=r["claim_label"],
            count=r["claim_count"],
            score=r["score"],
            ties=json.loads(r["ties"]),
            media=tuple(r["kinds"].split(",")) if r["kinds"] else (),
            fwd_key=r["fwd_key"],
            deleted=r["deleted_at"] is not None,
            corrected=bool(r["corrected"]),
        )
        for r in rows
    ]


async def post_ids(db: Database, incident_id: int) -> list[int]:
    rows = await db.fetchall(
        "SELECT post_id FROM incident_posts WHERE incident_id = ? ORDER BY date, post_id",
        (incident_id,),
    )
    return [r[0] for r in rows]


async def of_post(db: Database, post_id: int) -> Incident | None:
    """The incident a post is in, with its details (for an alert)."""
    row = await db.fetchone(
        "SELECT incident_id FROM incident_posts WHERE post_id = ? AND incident_id IS NOT NULL",
        (post_id,),
    )
    return await get(db, row[0]) if row is not None else None


async def alerted_chats(db: Database, incident_id: int) -> set[int]:
    """Chats that were alerted about a post of the incident (the rule owners)."""
    rows = await db.fetchall(
        """SELECT DISTINCT a.chat_id FROM alerts a JOIN incident_posts ip ON ip.post_id = a.post_id
           WHERE ip.incident_id = ? AND a.reason IN ('alert', 'incident')""",
        (incident_id,),
    )
    return {r[0] for r in rows}


async def daily_counts(
    db: Database, since: datetime, until: datetime
) -> list[tuple[str, str, int, int]]:
    """(day, channel name, posts, claims) per day and channel, for charts."""
    rows = await db.fetchall(
        """SELECT substr(p.date, 1, 10) AS day, coalesce(c.title, c.username, c.id) AS channel,
                  count(*) AS posts, sum(p.claim_label = 'claim') AS claims
           FROM posts p JOIN channels c ON c.id = p.channel_id
           WHERE p.date >= ? AND p.date <= ? GROUP BY day, p.channel_id ORDER BY day""",
        (iso(since), iso(until)),
    )
    return [(r["day"], str(r["channel"]), r["posts"], r["claims"] or 0) for r in rows]


# --- analysts' corrections ----------------------------------------------------------


async def merge_in(
    conn: aiosqlite.Connection, keep: int, gone: int, chat_id: int | None = None
) -> None:
    """Move every post of `gone` into `keep`; `gone` remains as a pointer to `keep`."""
    now = iso(utcnow())
    if chat_id is None:
        await conn.execute(
            "UPDATE incident_posts SET incident_id = ? WHERE incident_id = ?", (keep, gone)
        )
    else:
        await conn.execute(
            "UPDATE incident_posts SET incident_id = ?, corrected = 1 WHERE incident_id = ?",
            (keep, gone),
        )
    await conn.execute(
        "UPDATE incidents SET merged_into = ?, posts = 0, channels = 0, updated_at = ? "
        "WHERE id = ? OR merged_into = ?",
        (keep, now, gone, gone),
    )
    await refresh_in(conn, [keep])


async def split_apart_in(conn: aiosqlite.Connection, a: int, b: int) -> bool:
    """Whether an analyst split these two incidents apart (grouping must not rejoin them)."""
    async with conn.execute(
        """SELECT 1 FROM incident_corrections WHERE action = 'split'
           AND ((incident_id = ?1 AND other_id = ?2) OR (incident_id = ?2 AND other_id = ?1))""",
        (a, b),
    ) as cursor:
        return await cursor.fetchone() is not None


async def merge(db: Database, keep: int, gone: int, chat_id: int) -> None:
    """An analyst's merge: every post of `gone` into `keep`."""
    async with db.transaction() as conn:
        await merge_in(conn, keep, gone, chat_id)
        await _record(conn, chat_id, "merge", keep, gone, None)


async def split(db: Database, incident_id: int, post_id: int, chat_id: int) -> int:
    """Move `post_id` and every later post of the incident into a new incident."""
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT date FROM incident_posts WHERE post_id = ? AND incident_id = ?",
            (post_id, incident_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise ValueError("the post is not in this incident")
        async with conn.execute(
            "SELECT title, place FROM incidents WHERE id = ?", (incident_id,)
        ) as cursor:
            head = await cursor.fetchone()
        assert head is not None
        now = iso(utcnow())
        title = f"{head[0]} (split)"
        async with conn.execute(
            """INSERT INTO incidents (title, place, first_post_id, started_at, last_at, created_at,
                                      updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            (title, head[1], post_id, row[0], row[0], now, now),
        ) as cursor:
            created = await cursor.fetchone()
        assert created is not None
        new_id = int(created[0])
        await conn.execute(
            """UPDATE incident_posts SET incident_id = ?, corrected = 1
               WHERE incident_id = ? AND (date > ? OR (date = ? AND post_id >= ?))""",
            (new_id, incident_id, row[0], row[0], post_id),
        )
        await refresh_in(conn, [incident_id, new_id])
        await _record(conn, chat_id, "split", incident_id, new_id, post_id)
    return new_id


async def remove(db: Database, incident_id: int, post_id: int, chat_id: int) -> None:
    """Take a post out of the incident; grouping will not place it again."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE incident_posts SET incident_id = NULL, corrected = 1 "
            "WHERE post_id = ? AND incident_id = ?",
            (post_id, incident_id),
        )
        await refresh_in(conn, [incident_id])
        await _record(conn, chat_id, "remove", incident_id, None, post_id)


async def _record(
    conn: aiosqlite.Connection,
    chat_id: int,
    action: str,
    incident_id: int,
    other_id: int | None,
    post_id: int | None,
) -> None:
    await conn.execute(
        """INSERT INTO incident_corrections (chat_id, action, incident_id, other_id, post_id,
                                             created_at) VALUES (?, ?, ?, ?, ?, ?)""",
        (chat_id, action, incident_id, other_id, post_id, iso(utcnow())),
    )


async def corrections(db: Database, incident_id: int) -> list[sqlite3.Row]:
    return await db.fetchall(
        "SELECT * FROM incident_corrections WHERE incident_id = ? OR other_id = ? ORDER BY id",
        (incident_id, incident_id),
    )
