"""The outbox: alerts planned with the post that caused them, delivered at least once.

A row is keyed by (chat, post, reason), and an 'alert' row also by (chat, story),
so planning the same alert twice — a post seen again by catch-up, a forwarded
copy in another watched channel, a replay after a crash — inserts nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import aiosqlite
import orjson

from storage import incidents
from storage.db import Database, insert_rows, rows_for_ids
from storage.incidents import Incident
from storage.models import iso, utcnow

OUTBOX_CHANNEL = "chanwatch_outbox"  # PostgreSQL only: the delivering watcher listens on it

Status = Literal["pending", "sent", "digest", "digested", "muted", "skipped", "failed"]
_CHUNK = 500


class NewAlert(NamedTuple):
    """One planned row; `reason` is 'alert', 'edited:<revision>' or 'deleted'. A tuple:
    a batch can plan thousands (a frozen dataclass costs several times more to make)."""

    chat_id: int
    post_id: int
    reason: str
    story: str
    payload: dict[str, Any]
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """A row waiting for delivery."""

    id: int
    chat_id: int
    post_id: int
    reason: str
    story: str
    payload: dict[str, Any]
    batch: int | None
    attempts: int
    not_before: datetime | None
    created_at: datetime

    @property
    def is_followup(self) -> bool:
        return self.reason != "alert"

    @property
    def is_thread(self) -> bool:
        """A later post of an incident, replying to the chat's first alert in it."""
        return self.reason == "incident"

    @property
    def original_post(self) -> int:
        """The post whose alert a follow-up replies to."""
        return int(self.payload.get("thread", self.post_id))


@dataclass(frozen=True, slots=True)
class Place:
    """Where a post (or a copy of it) appeared."""

    channel_id: int
    msg_id: int
    title: str | None
    username: str | None


@dataclass(frozen=True, slots=True)
class AlertView:
    """Everything needed to write one alert message."""

    alert: Queued
    place: Place
    date: datetime
    text: str  # the post's text when the alert was planned (payload "rev"), else current
    deleted: bool
    grouped_id: int | None
    media: tuple[str, ...]  # media kinds of the post, or of its whole album
    also_in: tuple[Place, ...]
    reply_to: int | None  # the chat's message of the original alert (follow-ups)
    shared: bool = False  # that message carried several alerts (a burst)
    incident: Incident | None = None  # the incident the post is in


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _queued(row: sqlite3.Row) -> Queued:
    return Queued(
        id=row["id"],
        chat_id=row["chat_id"],
        post_id=row["post_id"],
        reason=row["reason"],
        story=row["story"],
        payload=json.loads(row["payload"]),
        batch=row["batch"],
        attempts=row["attempts"],
        not_before=_dt(row["not_before"]),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


# --- planning (inside the archiving transaction) --------------------------------


# the same text as json.dumps(payload, ensure_ascii=False, separators=(",", ":")), built
# once: json.dumps with options builds an encoder per call
_json_payload = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def payload_json(payload: dict[str, Any]) -> str:
    """A row's payload as compact JSON. A batch can plan thousands of rows, and orjson
    encodes one several times faster than json; what orjson refuses (an integer past
    64 bits, say) goes through json."""
    try:
        return orjson.dumps(payload).decode()
    except orjson.JSONEncodeError:
        return _json_payload(payload)


async def add_in(conn: aiosqlite.Connection, alerts: Iterable[NewAlert]) -> int:
    """Insert planned rows, ignoring any already planned; returns how many are new."""
    now = iso(utcnow())
    # rows often share one payload (every chat a post's claim alone alerts): encoded
    # once per object, kept here with its text so that no id is reused meanwhile
    encoded: dict[int, tuple[dict[str, Any], str]] = {}
    rows = []
    for a in alerts:
        seen = encoded.get(id(a.payload))
        if seen is None:
            seen = encoded[id(a.payload)] = (a.payload, payload_json(a.payload))
        text = seen[1]
        not_before = iso(a.not_before) if a.not_before else None
        rows.append((a.chat_id, a.post_id, a.reason, a.story, text, not_before, now))
    if not rows:
        return 0
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        # one statement for the batch (a batch of 100 posts can plan thousands of rows):
        # the same rows in the same order, each skipped if it is already planned
        columns = [list(column) for column in zip(*rows, strict=True)]
        async with conn.execute(_ADD_ALL, columns) as cursor:
            added = max(cursor.rowcount, 0)
        if added:
            # delivered at commit, to the watcher that delivers if it is another process
            await conn.execute("SELECT pg_notify(?, '')", [OUTBOX_CHANNEL])
        return added
    before = conn.total_changes
    await insert_rows(
        conn,
        """INSERT OR IGNORE INTO alerts (chat_id, post_id, reason, story, payload, not_before,
                                         created_at)""",
        rows,
    )
    return conn.total_changes - before


_ADD_ALL = """INSERT INTO alerts (chat_id, post_id, reason, story, payload, not_before, created_at)
    SELECT chat_id, post_id, reason, story, payload, not_before, created_at
    FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
         WITH ORDINALITY AS t(chat_id, post_id, reason, story, payload, not_before, created_at, n)
    ORDER BY n
    ON CONFLICT DO NOTHING"""


async def alerted_in(
    conn: aiosqlite.Connection, post_ids: Sequence[int]
) -> dict[int, dict[int, str]]:
    """post id -> {chat id: status} of the 'alert' rows of those posts."""
    found: dict[int, dict[int, str]] = {}
    sql = (
        "SELECT post_id, chat_id, status FROM alerts "
        "WHERE reason = 'alert' AND post_id IN ({marks})"
    )
    for row in await rows_for_ids(conn, sql, list(post_ids)):
        found.setdefault(row["post_id"], {})[row["chat_id"]] = row["status"]
    return found


async def stories_in(conn: aiosqlite.Connection, post_ids: Sequence[int]) -> dict[int, str]:
    """post id -> its story: the forward origin 'channel/msg', or the post's own key."""
    found: dict[int, str] = {}
    ids = list(post_ids)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = (
            "SELECT id, coalesce(fwd_key, channel_id || '/' || msg_id) AS story FROM posts "
            f"WHERE id IN ({marks})"
        )
        async with conn.execute(sql, chunk) as cursor:
            found.update({row["id"]: row["story"] for row in await cursor.fetchall()})
    return found


async def revision_counts_in(conn: aiosqlite.Connection, post_ids: Sequence[int]) -> dict[int, int]:
    """post id -> how many earlier texts it has (posts without any are left out)."""
    sql = "SELECT post_id, count(*) FROM post_revisions WHERE post_id IN ({marks}) GROUP BY post_id"
    return {row[0]: row[1] for row in await rows_for_ids(conn, sql, list(post_ids))}


# --- delivery -------------------------------------------------------------------


async def due(db: Database, limit: int = 1000) -> list[Queued]:
    """Pending rows in planning order (the notifier keeps that order per chat)."""
    rows = await db.fetchall(
        """SELECT * FROM alerts WHERE status = 'pending' ORDER BY id LIMIT ?""", (limit,)
    )
    return [_queued(r) for r in rows]


async def due_for(db: Database, chat_id: int, limit: int = 200) -> list[Queued]:
    """One chat's pending rows, in planning order."""
    rows = await db.fetchall(
        "SELECT * FROM alerts WHERE status = 'pending' AND chat_id = ? ORDER BY id LIMIT ?",
        (chat_id, limit),
    )
    return [_queued(r) for r in rows]


async def chats_due(db: Database, now: datetime) -> list[int]:
    """Chats whose oldest pending row may go out now (rows behind it wait their turn)."""
    rows = await db.fetchall(
        """SELECT a.chat_id FROM alerts a
           JOIN (SELECT min(id) AS first FROM alerts WHERE status = 'pending'
                 GROUP BY chat_id) f ON a.id = f.first
           WHERE a.not_before IS NULL OR a.not_before <= ? ORDER BY a.id""",
        (iso(now),),
    )
    return [r["chat_id"] for r in rows]


async def next_wakeup(db: Database, now: datetime) -> datetime | None:
    """The earliest time a pending row that is not due yet becomes due."""
    row = await db.fetchone(
        "SELECT min(not_before) FROM alerts WHERE status = 'pending' AND not_before > ?",
        (iso(now),),
    )
    return _dt(row[0]) if row else None


async def pending_count(db: Database) -> int:
    row = await db.fetchone("SELECT count(*) FROM alerts WHERE status = 'pending'")
    return int(row[0]) if row else 0


async def assign_batch(db: Database, ids: Sequence[int]) -> int:
    """Record which rows go out in one message, before sending it (so a resend after
    a crash sends the same rows under the same random id). Returns the batch id."""
    batch = min(ids)
    marks = ",".join("?" * len(ids))
    await db.execute(
        f"UPDATE alerts SET batch = ?, attempts = attempts + 1 WHERE id IN ({marks})",
        (batch, *ids),
    )
    return batch


async def mark_sent(
    db: Database, ids: Sequence[int], tg_msg_id: int | None, when: datetime | None = None
) -> None:
    marks = ",".join("?" * len(ids))
    await db.execute(
        f"""UPDATE alerts SET status = 'sent', tg_msg_id = ?, delivered_at = ?, error = NULL
            WHERE id IN ({marks}) AND status = 'pending'""",
        (tg_msg_id, iso(when or utcnow()), *ids),
    )


async def mark_digested(db: Database, ids: Sequence[int], when: datetime) -> None:
    marks = ",".join("?" * len(ids))
    await db.execute(
        f"UPDATE alerts SET status = 'digested', delivered_at = ? WHERE id IN ({marks})",
        (iso(when), *ids),
    )


async def mark(db: Database, ids: Sequence[int], status: Status, error: str | None = None) -> None:
    marks = ",".join("?" * len(ids))
    await db.execute(
        f"UPDATE alerts SET status = ?, error = ? WHERE id IN ({marks})",
        (status, error, *ids),
    )


async def defer(db: Database, ids: Sequence[int], until: datetime, error: str) -> None:
    marks = ",".join("?" * len(ids))
    await db.execute(
        f"UPDATE alerts SET not_before = ?, error = ? WHERE id IN ({marks})",
        (iso(until), error, *ids),
    )


async def skip_pending_of(db: Database, chat_id: int, reason: str) -> int:
    """Stop delivering to a chat (it blocked the bot, or was revoked)."""
    return await db.execute(
        "UPDATE alerts SET status = 'skipped', error = ? WHERE chat_id = ? AND status = 'pending'",
        (reason, chat_id),
    )


async def original_of(db: Database, chat_id: int, post_id: int) -> tuple[str, int | None] | None:
    """(status, chat message id) of the 'alert' row a follow-up refers to."""
    row = await db.fetchone(
        "SELECT status, tg_msg_id FROM alerts WHERE chat_id = ? AND post_id = ? "
        "AND reason = 'alert'",
        (chat_id, post_id),
    )
    return (row["status"], row["tg_msg_id"]) if row else None


async def digest_rows(db: Database, chat_id: int) -> list[Queued]:
    rows = await db.fetchall(
        "SELECT * FROM alerts WHERE chat_id = ? AND status = 'digest' ORDER BY id", (chat_id,)
    )
    return [_queued(r) for r in rows]


async def stats(db: Database, since: datetime) -> dict[str, int]:
    """Rows per status planned since `since`, plus everything still pending."""
    rows = await db.fetchall(
        "SELECT status, count(*) AS n FROM alerts WHERE created_at >= ? GROUP BY status",
        (iso(since),),
    )
    result = {r["status"]: r["n"] for r in rows}
    result["queue"] = await pending_count(db)
    return result


# --- what a message needs -------------------------------------------------------


async def views(db: Database, alerts: Sequence[Queued]) -> list[AlertView]:
    """Load the post, its channel, album media, other appearances and the original
    alert's message for each row (rows whose post vanished are left out)."""
    result: list[AlertView] = []
    for alert in alerts:
        row = await db.fetchone(
            """SELECT p.id, p.channel_id, p.msg_id, p.date, p.text, p.deleted_at, p.grouped_id,
                      c.title, c.username
               FROM posts p JOIN channels c ON c.id = p.channel_id WHERE p.id = ?""",
            (alert.post_id,),
        )
        if row is None:
            continue
        place = Place(row["channel_id"], row["msg_id"], row["title"], row["username"])
        reply_to = None
        shared = False
        if alert.is_followup:
            original = await original_of(db, alert.chat_id, alert.original_post)
            reply_to = original[1] if original else None
            if reply_to is not None:
                together = await db.fetchone(
                    "SELECT count(*) FROM alerts WHERE chat_id = ? AND tg_msg_id = ? "
                    "AND reason = 'alert'",
                    (alert.chat_id, reply_to),
                )
                shared = bool(together and together[0] > 1)
        result.append(
            AlertView(
                alert=alert,
                place=place,
                date=datetime.fromisoformat(row["date"]),
                text=await _text_when_planned(db, alert, row["text"]),
                deleted=row["deleted_at"] is not None,
                grouped_id=row["grouped_id"],
                media=await _media_kinds(db, row["id"], row["channel_id"], row["grouped_id"]),
                also_in=await _also_in(db, alert.story, row["id"]),
                reply_to=reply_to,
                shared=shared,
                incident=await incidents.of_post(db, row["id"]),
            )
        )
    return result


async def _text_when_planned(db: Database, alert: Queued, current: str) -> str:
    """The text the alert's spans point into: revision `rev` of the post (the text it
    had after `rev` edits) if it has been edited since, else its current text."""
    rev = alert.payload.get("rev")
    if not isinstance(rev, int) or "text" in alert.payload:
        return current
    row = await db.fetchone(
        "SELECT text FROM post_revisions WHERE post_id = ? ORDER BY id LIMIT 1 OFFSET ?",
        (alert.post_id, rev),
    )
    return row["text"] if row is not None else current


async def _media_kinds(
    db: Database, post_id: int, channel_id: int, grouped_id: int | None
) -> tuple[str, ...]:
    if grouped_id is None:
        rows = await db.fetchall(
            "SELECT kind FROM media WHERE post_id = ? ORDER BY idx", (post_id,)
        )
    else:
        rows = await db.fetchall(
            """SELECT m.kind FROM posts p JOIN media m ON m.post_id = p.id
               WHERE p.channel_id = ? AND p.grouped_id = ? ORDER BY p.msg_id, m.idx""",
            (channel_id, grouped_id),
        )
    return tuple(r["kind"] for r in rows)


async def _also_in(db: Database, story: str, post_id: int) -> tuple[Place, ...]:
    """Other archived copies of the story: the origin itself and every forward of it."""
    channel, _, msg = story.partition("/")
    if not (channel.isdigit() and msg.isdigit()):
        return ()
    rows = await db.fetchall(
        """SELECT p.channel_id, p.msg_id, c.title, c.username FROM posts p
           JOIN channels c ON c.id = p.channel_id
           WHERE (p.fwd_key = ? OR (p.channel_id = ? AND p.msg_id = ?)) AND p.id != ?
           ORDER BY p.id LIMIT 20""",
        (story, int(channel), int(msg), post_id),
    )
    return tuple(Place(r["channel_id"], r["msg_id"], r["title"], r["username"]) for r in rows)
