"""Nightly backups: a consistent, owner-only copy by VACUUM INTO, dated and rotated."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import archive
from storage.backup import backup_database, existing_backups
from storage.db import open_database
from storage.models import Post

DAY = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path):
    database = await open_database(tmp_path / "chanwatch.db")
    await database.execute(
        "INSERT INTO channels (id, username, title, added_at) VALUES (1, 'rdk', 'РДК', ?)",
        (DAY.isoformat(),),
    )
    await archive.archive_post(database, Post(channel_id=1, msg_id=1, date=DAY, text="пост"))
    yield database
    await database.close()


def posts_in(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [row[0] for row in conn.execute("SELECT text FROM posts ORDER BY msg_id")]
    finally:
        conn.close()


async def test_backup_is_a_consistent_owner_only_copy_while_the_service_writes(db, tmp_path: Path):
    backups = tmp_path / "backups"
    path = await backup_database(db.path, backups, DAY, keep=7)
    assert path == backups / "chanwatch-2024-06-01.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    assert posts_in(path) == ["пост"]
    # the service keeps writing; the same day's backup is replaced by the newer copy
    await archive.archive_post(db, Post(channel_id=1, msg_id=2, date=DAY, text="ещё"))
    again = await backup_database(db.path, backups, DAY + timedelta(hours=5), keep=7)
    assert again == path and posts_in(path) == ["пост", "ещё"]
    assert [p.name for p in backups.iterdir()] == [path.name]


async def test_only_the_newest_backups_are_kept(db, tmp_path: Path):
    backups = tmp_path / "backups"
    backups.mkdir()
    unrelated = backups / "notes.txt"
    unrelated.write_text("keep me")
    for day in range(5):
        await backup_database(db.path, backups, DAY + timedelta(days=day), keep=3)
    names = [p.name for p in existing_backups(db.path, backups)]
    assert names == [
        "chanwatch-2024-06-03.db",
        "chanwatch-2024-06-04.db",
        "chanwatch-2024-06-05.db",
    ]
    assert unrelated.exists()


async def test_a_backup_past_its_time_limit_leaves_nothing_behind(db, tmp_path: Path):
    backups = tmp_path / "backups"
    with pytest.raises(TimeoutError):
        await backup_database(db.path, backups, DAY, keep=3, limit=timedelta(0))
    assert list(backups.iterdir()) == []
