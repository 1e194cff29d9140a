"""Channels, posts, revisions, deletions, media and metrics.

Functions that take `conn` run inside the caller's transaction, so the
pipeline can archive a post and plan its alerts atomically.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import aiosqlite

from storage.db import Database, insert_rows, lock_in
from storage.models import Channel, Media, Post, canonical_json, iso, utcnow

Status = Literal["new", "edited", "unchanged", "stale"]
_CHUNK = 500
KEY_BITS = 20


@dataclass(frozen=True, slots=True)
class Archived:
    """What archiving one post did."""

    post_id: int
    status: Status
    post: Post
    previous_text: str | None = None


def post_key(date: datetime, channel_id: int, msg_id: int) -> int:
    """A rowid that sorts by post time: seconds since epoch, then a 20-bit spread
    (room for a million posts in one second before two keys can meet)."""
    spread = (channel_id * 7919 + msg_id) & ((1 << KEY_BITS) - 1)
    return (int(date.timestamp()) << KEY_BITS) | spread


# --- channels -----------------------------------------------------------------


def _channel(row: sqlite3.Row) -> Channel:
    return Channel(
        id=row["id"],
        access_hash=row["access_hash"],
        username=row["username"],
        title=row["title"],
        mode=row["mode"],
        last_msg_id=row["last_msg_id"],
        active=bool(row["active"]),
    )


async def save_channel(db: Database, channel: Channel) -> None:
    """Insert or refresh a resolved channel; its archive position is kept."""
    now = iso(utcnow())
    async with db.transaction() as conn:
        if channel.username:  # a username moved to another channel id
            await conn.execute(
                "UPDATE channels SET username = NULL WHERE username = ? AND id != ?",
                (channel.username, channel.id),
            )
        await conn.execute(
            """INSERT INTO channels (id, access_hash, username, title, mode, active,
                                     added_at, resolved_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (id) DO UPDATE SET
                 access_hash = excluded.access_hash, username = excluded.username,
                 title = excluded.title, mode = excluded.mode, active = excluded.active,
                 resolved_at = excluded.resolved_at, last_error = NULL""",
            (
                channel.id,
                channel.access_hash,
                channel.username,
                channel.title,
                channel.mode,
                int(channel.active),
                now,
                now,
            ),
        )


async def find_channel(db: Database, ref: str | int) -> Channel | None:
    """A known channel by numeric id or username (case-insensitive, no @)."""
    if isinstance(ref, int):
        row = await db.fetchone("SELECT * FROM channels WHERE id = ?", (ref,))
    else:
        row = await db.fetchone(
            "SELECT * FROM channels WHERE username = ?", (ref.removeprefix("@"),)
        )
    return _channel(row) if row else None


async def list_channels(db: Database, *, active_only: bool = False) -> list[Channel]:
    sql = "SELECT * FROM channels" + (" WHERE active = 1" if active_only else "")
    return [_channel(row) for row in await db.fetchall(sql + " ORDER BY id")]


async def channel_usernames(db: Database, channel_ids: Iterable[int]) -> dict[int, str]:
    """channel id -> username, for the channels that have one."""
    ids = sorted(set(channel_ids))
    found: dict[int, str] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT id, username FROM channels WHERE id IN ({marks}) AND username IS NOT NULL"
        found.update({row[0]: row[1] for row in await db.fetchall(sql, chunk)})
    return found


async def set_channel_active(db: Database, channel_id: int, active: bool) -> None:
    await db.execute("UPDATE channels SET active = ? WHERE id = ?", (int(active), channel_id))


async def set_channel_error(db: Database, channel_id: int, error: str | None) -> None:
    await db.execute("UPDATE channels SET last_error = ? WHERE id = ?", (error, channel_id))


async def record_unresolved(db: Database, ref: str, error: str) -> None:
    await db.execute(
        """INSERT INTO unresolved_channels (ref, error, checked_at) VALUES (?, ?, ?)
           ON CONFLICT (ref) DO UPDATE SET error = excluded.error,
                                           checked_at = excluded.checked_at""",
        (ref, error, iso(utcnow())),
    )


async def unresolved_error(db: Database, ref: str) -> str | None:
    row = await db.fetchone("SELECT error FROM unresolved_channels WHERE ref = ?", (ref,))
    return row["error"] if row else None


async def forget_unresolved(db: Database, ref: str) -> None:
    await db.execute("DELETE FROM unresolved_channels WHERE ref = ?", (ref,))


# --- posts --------------------------------------------------------------------


def _entities_json(post: Post) -> str | None:
    return canonical_json(list(post.entities)) if post.entities else None


def _raw(post: Post) -> tuple[str, str]:
    """The raw record's canonical JSON and its SHA-256 (`Post.raw_sha256()`), the JSON
    built once: it is most of a post's row-building time."""
    raw = post.raw_json()
    return raw, hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _post_row(post: Post, post_id: int, lemmas: str, now: str) -> tuple[object, ...]:
    fwd = post.fwd_from
    raw, sha = _raw(post)
    return (
        post_id,
        post.channel_id,
        post.msg_id,
        iso(post.date),
        iso(post.edit_date) if post.edit_date else None,
        post.text,
        lemmas,
        _entities_json(post),
        post.grouped_id,
        canonical_json(_forward_dict(post)) if fwd else None,
        fwd.key if fwd else None,
        post.reply_to,
        post.post_author,
        post.views,
        post.forwards,
        post.replies,
        canonical_json(post.reactions) if post.reactions else None,
        raw,
        sha,
        now,
        now,
    )


def _forward_dict(post: Post) -> dict[str, object]:
    fwd = post.fwd_from
    assert fwd is not None
    return {
        "channel_id": fwd.channel_id,
        "msg_id": fwd.msg_id,
        "from_name": fwd.from_name,
        "user_id": fwd.user_id,
        "date": iso(fwd.date) if fwd.date else None,
    }


_INSERT_POST = """INSERT INTO posts (id, channel_id, msg_id, date, edit_date, text, lemmas,
    entities, grouped_id, fwd_from, fwd_key, reply_to, post_author, views, forwards, replies,
    reactions, raw, raw_sha256, captured_at, updated_at)"""

_INSERT_MEDIA = """INSERT INTO media (post_id, idx, kind, mime, size, width, height, duration,
    file_name, tg_id, access_hash, dc_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (post_id, idx) DO UPDATE SET kind = excluded.kind, mime = excluded.mime,
      size = excluded.size, width = excluded.width, height = excluded.height,
      duration = excluded.duration, file_name = excluded.file_name, tg_id = excluded.tg_id,
      access_hash = excluded.access_hash, dc_id = excluded.dc_id"""


def _media_rows(post_id: int, media: Sequence[Media]) -> list[tuple[object, ...]]:
    return [
        (
            post_id,
            idx,
            m.kind,
            m.mime,
            m.size,
            m.width,
            m.height,
            m.duration,
            m.file_name,
            m.tg_id,
            m.access_hash,
            m.dc_id,
        )
        for idx, m in enumerate(media)
    ]


Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[sqlite3.Row]]]


def _fetch_in(conn: aiosqlite.Connection) -> Fetch:
    """Rows of a query on the caller's connection (inside its transaction)."""

    async def fetch(sql: str, params: Sequence[Any]) -> Sequence[sqlite3.Row]:
        async with conn.execute(sql, params) as cursor:
            return await cursor.fetchall()

    return fetch


async def _existing(
    fetch: Fetch, channel_id: int, msg_ids: Sequence[int]
) -> dict[int, sqlite3.Row]:
    found: dict[int, sqlite3.Row] = {}
    for i in range(0, len(msg_ids), _CHUNK):
        chunk = msg_ids[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = (
            "SELECT id, msg_id, text, entities, edit_date, raw_sha256 FROM posts "
            f"WHERE channel_id = ? AND msg_id IN ({marks})"
        )
        for row in await fetch(sql, (channel_id, *chunk)):
            found[row["msg_id"]] = row
    return found


def _by_channel(posts: Iterable[Post]) -> dict[int, list[Post]]:
    found: dict[int, list[Post]] = {}
    for post in posts:
        found.setdefault(post.channel_id, []).append(post)
    return found


async def _unchanged(fetch: Fetch, posts: Iterable[Post]) -> set[tuple[int, int]]:
    same: set[tuple[int, int]] = set()
    differ: set[tuple[int, int]] = set()  # a copy in the same batch with another text
    for channel_id, some in _by_channel(posts).items():
        rows = await _existing(fetch, channel_id, [p.msg_id for p in some])
        for post in some:
            row = rows.get(post.msg_id)
            if (
                row is not None
                and row["text"] == post.text
                and row["entities"] == _entities_json(post)
            ):
                same.add((channel_id, post.msg_id))
            else:
                differ.add((channel_id, post.msg_id))
    return same - differ


async def unchanged(db: Database, posts: Iterable[Post]) -> set[tuple[int, int]]:
    """(channel id, msg id) of the posts archived with this very text and these
    entities: archiving them again changes at most their counters, so detection has
    nothing new to say about them (reconcile and metrics snapshots re-read mostly
    such posts). Read outside any transaction: `unchanged_in` confirms it in
    the one that archives them."""
    return await _unchanged(db.fetchall, posts)


async def unchanged_in(
    conn: aiosqlite.Connection, posts: Iterable[Post]
) -> set[tuple[int, int]]:
    """`unchanged` inside the caller's transaction, under the lock that
    `archive_posts_in` takes (another watcher must not change them in between)."""
    await lock_in(conn, "posts")
    return await _unchanged(_fetch_in(conn), posts)


async def _free_keys(conn: aiosqlite.Connection, wanted: list[int]) -> list[int]:
    """Resolve rowid collisions (same second, same spread) by probing upwards."""
    taken: set[int] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(f"SELECT id FROM posts WHERE id IN ({marks})", chunk) as cur:
            taken.update(row[0] for row in await cur.fetchall())
    keys = []
    for key in wanted:
        while key in taken:
            key += 1
            async with conn.execute("SELECT 1 FROM posts WHERE id = ?", (key,)) as cur:
                if await cur.fetchone():
                    taken.add(key)
        taken.add(key)
        keys.append(key)
    return keys


# What detection said about a post, stored with it: lang, claim_label, claim_score,
# claim_count, claim_unverified, claim_evidence, detected_at.
Detection = tuple[str, str, float, int | None, int, str | None, str]
_NO_DETECTION = (None,) * 7

_INSERT_DETECTED_POST = """INSERT INTO posts (id, channel_id, msg_id, date, edit_date, text,
    lemmas, entities, grouped_id, fwd_from, fwd_key, reply_to, post_author, views, forwards,
    replies, reactions, raw, raw_sha256, captured_at, updated_at, lang, claim_label, claim_score,
    claim_count, claim_unverified, claim_evidence, detected_at)"""


async def archive_posts_in(
    conn: aiosqlite.Connection,
    items: Sequence[tuple[Post, str]],
    detections: Sequence[Detection | None] | None = None,
) -> list[Archived]:
    """Archive (post, lemmas) pairs inside the caller's transaction.

    `detections` (one per item, or None) are stored with the posts that are new, in
    the same row: the caller stores them for edited posts itself.

    Idempotent: a post seen again with the same text changes only its counters;
    a changed text keeps the earlier one as a revision; an older version arriving
    after a newer one (by edit date) is ignored as stale.
    """
    now = iso(utcnow())
    await lock_in(conn, "posts")  # several watchers on one PostgreSQL archive
    results: list[Archived] = []
    by_channel = {
        channel_id: [p.msg_id for p in some]
        for channel_id, some in _by_channel(post for post, _ in items).items()
    }
    fetch = _fetch_in(conn)
    existing: dict[tuple[int, int], sqlite3.Row] = {}
    for channel_id, msg_ids in by_channel.items():
        for msg_id, row in (await _existing(fetch, channel_id, msg_ids)).items():
            existing[(channel_id, msg_id)] = row

    fresh: dict[tuple[int, int], tuple[Post, str]] = {}
    found: dict[tuple[int, int], Detection | None] = {}
    writes = _Updates()
    for index, (post, lemmas) in enumerate(items):
        ident = (post.channel_id, post.msg_id)
        if ident in existing:
            results.append(_update_post(writes, existing[ident], post, lemmas, now))
        else:
            fresh[ident] = (post, lemmas)  # a later copy in the same batch wins
            if detections is not None:
                found[ident] = detections[index]
    if writes.revisions:
        await conn.executemany(_INSERT_REVISION, writes.revisions)
    if writes.posts:
        await conn.executemany(_UPDATE_POST, writes.posts)
    if writes.media:
        await conn.executemany(_INSERT_MEDIA, writes.media)

    if fresh:
        pending = list(fresh.values())
        keys = await _free_keys(
            conn, [post_key(p.date, p.channel_id, p.msg_id) for p, _ in pending]
        )
        if detections is None:
            rows = [
                _post_row(p, k, lemmas, now) for (p, lemmas), k in zip(pending, keys, strict=True)
            ]
            await insert_rows(conn, _INSERT_POST, rows)
        else:
            rows = [
                (*_post_row(p, k, lemmas, now), *(found[ident] or _NO_DETECTION))
                for ident, (p, lemmas), k in zip(fresh, pending, keys, strict=True)
            ]
            await insert_rows(conn, _INSERT_DETECTED_POST, rows)
        media = [
            row for (p, _), k in zip(pending, keys, strict=True) for row in _media_rows(k, p.media)
        ]
        if media:
            await conn.executemany(_INSERT_MEDIA, media)
        results.extend(Archived(k, "new", p) for (p, _), k in zip(pending, keys, strict=True))

    for channel_id, msg_ids in by_channel.items():
        await conn.execute(
            "UPDATE channels SET last_msg_id = max(last_msg_id, ?) WHERE id = ?",
            (max(msg_ids), channel_id),
        )
    return results


_INSERT_REVISION = """INSERT INTO post_revisions (post_id, text, entities, edit_date, raw_sha256,
    replaced_at) VALUES (?, ?, ?, ?, ?, ?)"""

_UPDATE_POST = """UPDATE posts SET text = ?, lemmas = CASE WHEN ? = 1 THEN ? ELSE lemmas END,
    entities = ?, edit_date = coalesce(?, edit_date), views = coalesce(?, views),
    forwards = coalesce(?, forwards), replies = coalesce(?, replies),
    reactions = coalesce(?, reactions), raw = ?, raw_sha256 = ?, updated_at = ?
    WHERE id = ?"""


@dataclass(slots=True)
class _Updates:
    """Rows for posts seen before, written with one executemany per table."""

    revisions: list[tuple[object, ...]] = field(default_factory=list)
    posts: list[tuple[object, ...]] = field(default_factory=list)
    media: list[tuple[object, ...]] = field(default_factory=list)


def _update_post(writes: _Updates, old: sqlite3.Row, post: Post, lemmas: str, now: str) -> Archived:
    post_id = old["id"]
    entities = _entities_json(post)
    changed = post.text != old["text"] or entities != old["entities"]
    edit_date = iso(post.edit_date) if post.edit_date else None
    if changed and old["edit_date"] and (edit_date is None or edit_date < old["edit_date"]):
        return Archived(post_id, "stale", post)
    raw, sha = _raw(post)
    if not changed and sha == old["raw_sha256"]:
        return Archived(post_id, "unchanged", post)
    if changed:
        writes.revisions.append(
            (post_id, old["text"], old["entities"], old["edit_date"], old["raw_sha256"], now)
        )
    writes.posts.append(
        (
            post.text,
            int(changed),
            lemmas,
            entities,
            edit_date,
            post.views,
            post.forwards,
            post.replies,
            canonical_json(post.reactions) if post.reactions else None,
            raw,
            sha,
            now,
            post_id,
        )
    )
    if post.media:
        writes.media.extend(_media_rows(post_id, post.media))
    if changed:
        return Archived(post_id, "edited", post, previous_text=old["text"])
    return Archived(post_id, "unchanged", post)


async def archive_posts(db: Database, items: Iterable[tuple[Post, str]]) -> list[Archived]:
    """Archive a batch in one transaction."""
    batch = list(items)
    if not batch:
        return []
    async with db.transaction() as conn:
        return await archive_posts_in(conn, batch)


async def archive_post(db: Database, post: Post, lemmas: str = "") -> Archived:
    return (await archive_posts(db, [(post, lemmas)]))[0]


async def mark_deleted_in(
    conn: aiosqlite.Connection, channel_id: int, msg_ids: Iterable[int], when: datetime
) -> list[int]:
    """Mark posts deleted (text kept); returns the ids of posts newly marked."""
    marked: list[int] = []
    ids = sorted(set(msg_ids))
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = (
            f"UPDATE posts SET deleted_at = ?, updated_at = ? WHERE channel_id = ? "
            f"AND msg_id IN ({marks}) AND deleted_at IS NULL RETURNING id"
        )
        stamp = iso(when)
        async with conn.execute(sql, (stamp, stamp, channel_id, *chunk)) as cursor:
            marked.extend(row[0] for row in await cursor.fetchall())
    return marked


async def mark_deleted(
    db: Database, channel_id: int, msg_ids: Iterable[int], when: datetime | None = None
) -> list[int]:
    async with db.transaction() as conn:
        return await mark_deleted_in(conn, channel_id, msg_ids, when or utcnow())


async def get_post(db: Database, channel_id: int, msg_id: int) -> sqlite3.Row | None:
    return await db.fetchone(
        "SELECT * FROM posts WHERE channel_id = ? AND msg_id = ?", (channel_id, msg_id)
    )


async def post_revisions(db: Database, post_id: int) -> list[sqlite3.Row]:
    return await db.fetchall(
        "SELECT * FROM post_revisions WHERE post_id = ? ORDER BY id", (post_id,)
    )


async def post_media(db: Database, post_id: int) -> list[sqlite3.Row]:
    return await db.fetchall("SELECT * FROM media WHERE post_id = ? ORDER BY idx", (post_id,))


async def recent_msg_ids(
    db: Database, channel_id: int, limit: int, up_to: int | None = None
) -> list[int]:
    """The newest archived, not deleted message ids of a channel (for reconcile)."""
    rows = await db.fetchall(
        """SELECT msg_id FROM posts WHERE channel_id = ? AND deleted_at IS NULL
           AND msg_id <= ? ORDER BY msg_id DESC LIMIT ?""",
        (channel_id, up_to if up_to is not None else 2**62, limit),
    )
    return [row[0] for row in rows]


async def record_metrics_in(
    conn: aiosqlite.Connection, rows: Iterable[tuple[int, datetime, Post]]
) -> None:
    await conn.executemany(
        """INSERT INTO metrics (post_id, taken_at, views, forwards, replies, reactions)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (post_id, taken_at) DO UPDATE SET views = excluded.views,
             forwards = excluded.forwards, replies = excluded.replies,
             reactions = excluded.reactions""",
        [
            (
                post_id,
                iso(when),
                post.views,
                post.forwards,
                post.replies,
                json.dumps(post.reactions, ensure_ascii=False) if post.reactions else None,
            )
            for post_id, when, post in rows
        ],
    )


async def create_unwatched_channel(db: Database, channel_id: int, title: str | None) -> bool:
    """A channel row for posts imported from an export (not watched until configured).

    A known channel keeps its username, access hash and settings; returns whether
    the row was created."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            """INSERT INTO channels (id, username, title, mode, active, added_at)
               VALUES (?, NULL, ?, 'live', 0, ?) ON CONFLICT (id) DO NOTHING""",
            (channel_id, title, iso(utcnow())),
        )
        created = cursor.rowcount > 0
        await cursor.close()
    return created


async def active_channel_id(db: Database, name: str) -> int | None:
    """The id of a watched channel named by username or numeric id (as text)."""
    row = await db.fetchone(
        "SELECT id FROM channels WHERE (username = ? OR CAST(id AS TEXT) = ?) AND active = 1",
        (name, name),
    )
    return int(row["id"]) if row else None


async def usernames_in(conn: aiosqlite.Connection, channel_ids: set[int]) -> dict[int, str]:
    """Usernames of the channels that have one."""
    marks = ",".join("?" * len(channel_ids))
    sql = f"SELECT id, username FROM channels WHERE id IN ({marks}) AND username IS NOT NULL"
    async with conn.execute(sql, sorted(channel_ids)) as cursor:
        return {int(row[0]): row[1] for row in await cursor.fetchall()}


async def post_ids_since(db: Database, channel_id: int, since: datetime) -> dict[int, int]:
    """{msg_id: post id} of a channel's posts not deleted, posted since `since`."""
    rows = await db.fetchall(
        """SELECT id, msg_id FROM posts WHERE channel_id = ? AND deleted_at IS NULL
           AND date >= ? ORDER BY msg_id""",
        (channel_id, iso(since)),
    )
    return {row["msg_id"]: row["id"] for row in rows}


async def recent_post_dates(db: Database, channel_id: int, limit: int) -> list[datetime]:
    """When a channel's newest `limit` posts were posted, newest first."""
    rows = await db.fetchall(
        "SELECT date FROM posts WHERE channel_id = ? ORDER BY msg_id DESC LIMIT ?",
        (channel_id, limit),
    )
    return [datetime.fromisoformat(row["date"]) for row in rows]


_SAVE_DETECTION = """UPDATE posts SET lang = ?, claim_label = ?, claim_score = ?, claim_count = ?,
    claim_unverified = ?, claim_evidence = ?, detected_at = ? WHERE id = ?"""

DetectionRow = tuple[str | None, str, float, int | None, int, str | None, str, int]


async def save_detections_in(conn: aiosqlite.Connection, rows: Sequence[DetectionRow]) -> None:
    """Store verdicts: (lang, label, score, count, unverified, evidence JSON, when, post id)."""
    await conn.executemany(_SAVE_DETECTION, rows)


async def save_detections(db: Database, rows: Sequence[DetectionRow]) -> None:
    async with db.transaction() as conn:
        await save_detections_in(conn, rows)


async def count_posts_after(db: Database, post_id: int) -> int:
    row = await db.fetchone("SELECT count(*) FROM posts WHERE id > ?", (post_id,))
    return int(row[0]) if row else 0


async def texts_after(db: Database, post_id: int, limit: int) -> list[tuple[int, str, str | None]]:
    """(id, text, claim label) of the next `limit` posts after `post_id`, in id order."""
    rows = await db.fetchall(
        "SELECT id, text, claim_label FROM posts WHERE id > ? ORDER BY id LIMIT ?",
        (post_id, limit),
    )
    return [(int(row["id"]), row["text"], row["claim_label"]) for row in rows]


async def save_lemmas_in(conn: aiosqlite.Connection, lemmas: Sequence[tuple[str, int]]) -> int:
    """Rewrite posts' `lemmas` (lemmas, post id) inside the caller's transaction, where
    they changed (the FTS index follows by trigger); how many changed."""
    cursor = await conn.executemany(
        "UPDATE posts SET lemmas = ? WHERE id = ? AND lemmas IS NOT ?",
        [(text, post_id, text) for text, post_id in lemmas],
    )
    return max(cursor.rowcount, 0)


async def save_redetection(
    db: Database, detections: Sequence[DetectionRow], lemmas: Sequence[tuple[str, int]]
) -> int:
    """New verdicts and lemmas of a batch of posts, in one transaction; how many
    posts' lemmas changed."""
    async with db.transaction() as conn:
        await save_detections_in(conn, detections)
        return await save_lemmas_in(conn, lemmas)
