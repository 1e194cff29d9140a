"""Copy a whole archive to another backend (SQLite file -> PostgreSQL), and compare them.

Every table is streamed in key order, in batches, each batch one transaction
written as an upsert on the table's primary key: an interrupted copy is run
again and goes on, rewriting at most what it had already written, and rows
that changed in the source since are brought up to date. The comparison counts
the rows of every table on both sides and hashes the posts of every channel
(message id, text, edit and deletion time, raw record hash) in the same order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from storage.db import Database

# Parents before children (foreign keys), with each table's primary key.
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("channels", ("id",)),
    ("unresolved_channels", ("ref",)),
    ("posts", ("id",)),
    ("post_revisions", ("id",)),
    ("media", ("post_id", "idx")),
    ("metrics", ("post_id", "taken_at")),
    ("subscribers", ("chat_id",)),
    ("invites", ("code",)),
    ("strangers", ("user_id",)),
    ("rules", ("id",)),
    ("alerts", ("id",)),
    ("incidents", ("id",)),
    ("incident_posts", ("post_id",)),
    ("incident_corrections", ("id",)),
)
# Tables whose ids the target numbers itself afterwards (identity columns).
_NUMBERED = ("post_revisions", "rules", "alerts", "incidents", "incident_corrections")
BATCH = 2_000
_POST_FIELDS = ("msg_id", "text", "edit_date", "deleted_at", "raw_sha256")


@dataclass(slots=True)
class Comparison:
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (source, target)
    channels_differing: list[int] = field(default_factory=list)
    channels_compared: int = 0

    @property
    def equal(self) -> bool:
        return not self.channels_differing and all(a == b for a, b in self.counts.values())


async def _count(db: Database, table: str) -> int:
    row = await db.fetchone(f"SELECT count(*) FROM {table}")
    return int(row[0]) if row else 0


async def total_rows(db: Database) -> int:
    known = set(await db.tables())
    return sum([await _count(db, table) for table, _ in TABLES if table in known])


def _upsert(table: str, key: tuple[str, ...], columns: list[str]) -> str:
    rest = [c for c in columns if c not in key]
    action = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest) if rest else "DO NOTHING"
    )
    marks = ", ".join("?" * len(columns))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) {action}"
    )


async def copy_archive(
    source: Database,
    target: Database,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Copy every row of `source` into `target`; returns the rows copied per table."""
    copied: dict[str, int] = {}
    known = set(await source.tables())
    for table, key in TABLES:
        if table not in known:  # an archive from before that table existed
            continue
        wanted = set(await target.columns(table))
        columns = [c for c in await source.columns(table) if c in wanted]
        sql = _upsert(table, key, columns)
        order = ", ".join(key)
        after: tuple[object, ...] | None = None
        copied[table] = 0
        while True:
            if after is None:
                where, params = "", ()
            else:  # keyset pagination on the primary key, row-value comparison
                where = f"WHERE ({order}) > ({', '.join('?' * len(key))})"
                params = after
            rows = await source.fetchall(
                f"SELECT {', '.join(columns)} FROM {table} {where} ORDER BY {order} LIMIT ?",
                (*params, batch),
            )
            if not rows:
                break
            async with target.transaction() as conn:
                await conn.executemany(sql, [tuple(row) for row in rows])
            copied[table] += len(rows)
            if progress is not None:
                progress(len(rows))
            after = tuple(rows[-1][c] for c in key)
            if len(rows) < batch:
                break
    if target.dialect == "postgresql":
        for table in _NUMBERED:  # the next id the target hands out follows the copied ones
            await target.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
    return copied


async def _channel_digests(db: Database) -> dict[int, str]:
    digests: dict[int, str] = {}
    for row in await db.fetchall("SELECT id FROM channels ORDER BY id"):
        sha = hashlib.sha256()
        after = -1
        while True:
            rows = await db.fetchall(
                f"SELECT {', '.join(_POST_FIELDS)} FROM posts WHERE channel_id = ? "
                "AND msg_id > ? ORDER BY msg_id LIMIT ?",
                (row[0], after, BATCH),
            )
            for post in rows:
                sha.update(repr(tuple(post)).encode("utf-8"))
            if len(rows) < BATCH:
                break
            after = rows[-1]["msg_id"]
        digests[row[0]] = sha.hexdigest()
    return digests


async def compare(source: Database, target: Database) -> Comparison:
    result = Comparison()
    known = set(await source.tables())
    for table, _ in TABLES:
        if table in known:
            result.counts[table] = (await _count(source, table), await _count(target, table))
    mine, theirs = await _channel_digests(source), await _channel_digests(target)
    result.channels_compared = len(mine)
    result.channels_differing = sorted(
        cid for cid in set(mine) | set(theirs) if mine.get(cid) != theirs.get(cid)
    )
    return result
