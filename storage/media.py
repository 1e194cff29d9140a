"""The media download queue and what was downloaded: rows of `media`, never files.

The queue is the archive itself: media rows of the wanted kinds and sizes without
`downloaded_at`, so a restart resumes where the last run stopped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database
from storage.models import iso


@dataclass(frozen=True, slots=True)
class Queued:
    """One media item waiting to be downloaded."""

    post_id: int
    idx: int
    kind: str
    mime: str | None
    size: int
    file_name: str | None
    tg_id: int
    channel_id: int
    msg_id: int


async def pending(
    db: Database, kinds: Collection[str], max_size: int, channel_ids: Collection[int], limit: int
) -> list[Queued]:
    """The next media to download, newest posts first, of the given channels."""
    if not channel_ids or not kinds:
        return []
    kind_list, channels = sorted(kinds), sorted(channel_ids)
    sql = f"""SELECT m.post_id, m.idx, m.kind, m.mime, m.size, m.file_name, m.tg_id,
                     p.channel_id, p.msg_id
              FROM media m JOIN posts p ON p.id = m.post_id
              WHERE m.downloaded_at IS NULL AND m.download_error IS NULL
                AND m.tg_id IS NOT NULL AND m.size IS NOT NULL AND m.size <= ?
                AND m.kind IN ({",".join("?" * len(kind_list))})
                AND p.deleted_at IS NULL AND p.channel_id IN ({",".join("?" * len(channels))})
              ORDER BY m.post_id DESC, m.idx LIMIT ?"""
    rows = await db.fetchall(sql, (max_size, *kind_list, *channels, limit))
    return [Queued(*row) for row in rows]


async def downloaded_copy(db: Database, tg_id: int) -> tuple[str, str] | None:
    """(sha256, local_path) of a file with this Telegram id already downloaded, if any."""
    row = await db.fetchone(
        """SELECT sha256, local_path FROM media WHERE tg_id = ? AND local_path IS NOT NULL
           AND sha256 IS NOT NULL LIMIT 1""",
        (tg_id,),
    )
    return (row["sha256"], row["local_path"]) if row else None


async def record_download(
    db: Database, post_id: int, idx: int, sha256: str, local_path: str, when: datetime
) -> None:
    await db.execute(
        """UPDATE media SET sha256 = ?, local_path = ?, downloaded_at = ?, download_error = NULL
           WHERE post_id = ? AND idx = ?""",
        (sha256, local_path, iso(when), post_id, idx),
    )


async def give_up(db: Database, post_id: int, idx: int, why: str) -> None:
    """Take an item off the queue for good, saying why."""
    await db.execute(
        "UPDATE media SET download_error = ? WHERE post_id = ? AND idx = ?", (why, post_id, idx)
    )


async def count_try(db: Database, post_id: int, idx: int) -> int | None:
    """Count one more failed try; returns the tries so far (None: the row is gone)."""
    rows = await db.execute_returning(
        """UPDATE media SET download_tries = download_tries + 1 WHERE post_id = ? AND idx = ?
           RETURNING download_tries""",
        (post_id, idx),
    )
    return int(rows[0][0]) if rows else None


async def files_downloaded_before(db: Database, cutoff: datetime) -> list[str]:
    """Local files whose newest download is older than `cutoff`."""
    rows = await db.fetchall(
        """SELECT local_path FROM media WHERE local_path IS NOT NULL
           GROUP BY local_path HAVING max(downloaded_at) < ?""",
        (iso(cutoff),),
    )
    return [row["local_path"] for row in rows]


async def forget_files(db: Database, names: Sequence[str]) -> None:
    """The files are gone: rows keep their metadata and SHA-256, `local_path` becomes NULL."""
    await db.executemany(
        "UPDATE media SET local_path = NULL WHERE local_path = ?", [(n,) for n in names]
    )


async def record_file_hashes(db: Database, hashes: Sequence[tuple[str, int, int]]) -> None:
    """(sha256, post_id, idx) of files an import read; a known hash is kept."""
    async with db.transaction() as conn:
        await conn.executemany(
            "UPDATE media SET sha256 = ? WHERE post_id = ? AND idx = ? AND sha256 IS NULL", hashes
        )
