"""Full-text search over the archive (FTS5 over text and lemmas)."""

from __future__ import annotations

import sqlite3

from storage.db import Database


async def match(
    db: Database, fts_query: str, *, include_deleted: bool = False, limit: int = 50
) -> list[sqlite3.Row]:
    """Posts whose text or lemmas match an FTS5 query, newest first.

    The posts rowid follows post time, so ORDER BY rowid is newest-first without
    sorting every hit.
    """
    deleted = "" if include_deleted else "AND p.deleted_at IS NULL"
    return await db.fetchall(
        f"""SELECT p.* FROM posts_fts JOIN posts p ON p.id = posts_fts.rowid
            WHERE posts_fts MATCH ? {deleted}
            ORDER BY posts_fts.rowid DESC LIMIT ?""",
        (fts_query, limit),
    )
