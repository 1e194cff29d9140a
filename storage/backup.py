"""Backups of the archive: a consistent copy by VACUUM INTO, dated, owner-only, rotated.

The copy is made through its own read-only connection in a worker thread, so the
service keeps reading and writing the archive meanwhile (WAL lets a reader see one
consistent snapshot while writers carry on).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger

BACKUP_TIMEOUT = timedelta(hours=2)


def backup_name(db_path: Path, day: datetime) -> str:
    return f"{db_path.stem}-{day:%Y-%m-%d}.db"


def _pattern(db_path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(db_path.stem) + r"-\d{4}-\d{2}-\d{2}\.db")


def existing_backups(db_path: Path, backup_dir: Path) -> list[Path]:
    """This archive's backups in `backup_dir`, oldest first."""
    if not backup_dir.is_dir():
        return []
    pattern = _pattern(db_path)
    return sorted(p for p in backup_dir.iterdir() if pattern.fullmatch(p.name))


class _Vacuum:
    """VACUUM INTO on a connection of its own, which another thread may interrupt."""

    def __init__(self, source: Path, target: Path) -> None:
        self.source = source
        self.target = target
        self.conn: sqlite3.Connection | None = None

    def run(self) -> None:
        uri = self.source.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self.conn = conn
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("VACUUM INTO ?", (str(self.target),))
        finally:
            self.conn = None
            conn.close()

    def interrupt(self) -> None:
        conn = self.conn
        if conn is not None:
            with contextlib.suppress(sqlite3.ProgrammingError):
                conn.interrupt()


def _prepare(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # VACUUM INTO accepts an existing empty file and keeps its mode: owner-only from the start
    os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return partial


def _finish(partial: Path, target: Path) -> int:
    os.chmod(partial, 0o600)
    with open(partial, "rb") as done:
        os.fsync(done.fileno())
    os.replace(partial, target)
    return target.stat().st_size


def _rotate(db_path: Path, backup_dir: Path, keep: int) -> list[Path]:
    backups = existing_backups(db_path, backup_dir)
    removed = backups[: max(0, len(backups) - keep)]
    for old in removed:
        old.unlink(missing_ok=True)
    return removed


async def backup_database(
    db_path: Path,
    backup_dir: Path,
    now: datetime,
    keep: int,
    *,
    limit: timedelta = BACKUP_TIMEOUT,
) -> Path:
    """Copy the archive to `<backup_dir>/<name>-YYYY-MM-DD.db` (mode 0600), replacing a
    copy from the same day, and keep only the newest `keep` copies. Returns the copy.
    Past `limit` (or when cancelled) the copy is interrupted and removed."""
    target = backup_dir / backup_name(db_path, now)
    partial = await asyncio.to_thread(_prepare, target)
    vacuum = _Vacuum(db_path, partial)
    work = asyncio.ensure_future(asyncio.to_thread(vacuum.run))
    try:
        async with asyncio.timeout(limit.total_seconds()):
            await asyncio.shield(work)
    except BaseException:
        # timed out or cancelled (shutdown): stop SQLite, let the thread end, clean up
        vacuum.interrupt()
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(30):
                await asyncio.shield(work)
        partial.unlink(missing_ok=True)
        raise
    size = await asyncio.to_thread(_finish, partial, target)
    removed = await asyncio.to_thread(_rotate, db_path, backup_dir, keep)
    logger.info(
        "backed up the archive to {path} ({size} bytes); removed {n} older backups",
        path=str(target),
        size=size,
        n=len(removed),
    )
    return target
