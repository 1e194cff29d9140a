"""The archive cannot be written, or cannot be opened: clear errors, nothing lost, no damage.

How the faults are made:

* **disk full** — a real 8 MiB tmpfs holds the database, and a ballast file fills it
  to the last byte (needs root to mount; skipped elsewhere). SQLite then fails the
  way it does on a full disk (SQLITE_FULL), at a statement or at COMMIT.
* **read-only while running** — ``PRAGMA query_only`` on the service's own
  connection: every write fails with SQLITE_READONLY, exactly as on a file or mount
  that turned read-only. ``chmod`` cannot do it: root ignores file modes, and an
  open file descriptor keeps its write access anyway. This test runs everywhere.
* **read-only at start** — the tmpfs remounted read-only (root only).
* **corrupt** — a file of garbage, and a real archive whose schema page is clobbered.
* **locked** — another process holds SQLite's exclusive lock (``locking_mode =
  EXCLUSIVE`` and a write, as `sqlite3` in a shell would).

While writes fail the service keeps running, logs one clear error naming the file
and the fix (repeated every few minutes while it lasts), keeps no new posts in
memory (the archive head stays put, so they are fetched again from Telegram), keeps
pushed edits and deletions up to a bound, retries with backoff, and once a write
succeeds archives everything it missed and delivers its alerts.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from bot.service.app import App
from bot.simulator import Simulator
from storage import archive
from storage.db import open_database
from tests.bot_helpers import add_rule, bot_settings, received, service, settled
from tests.fault_helpers import ended, service_env, start
from tests.watch_helpers import TIMEOUT

# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def analyst(sim: Simulator):
    return sim.add_user(phone="+15550002", first_name="Analyst")


@pytest.fixture
def channel(sim: Simulator):
    return sim.add_channel(username="rdk_channel", title="РДК")


@contextmanager
def small_disk(path: Path, size: str = "8M") -> Iterator[Path]:
    """A real tmpfs of `size` at `path` (root only; the test is skipped otherwise)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the read-only test covers recovery")
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Fill the file system to its last byte with a ballast file."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return ballast


def check_intact(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.execute("INSERT INTO posts_fts(posts_fts) VALUES ('integrity-check')")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


async def until_watcher(app: App, check) -> None:
    """Wait until `check()` holds, re-checking at each archive write or failed write."""
    assert app.watcher is not None and app.pipeline is not None
    async with asyncio.timeout(TIMEOUT):
        while True:
            waits = {
                asyncio.ensure_future(app.watcher.changed.wait()),
                asyncio.ensure_future(app.pipeline.changed.wait()),
            }
            try:
                if await check():
                    return
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()


# --- writes fail while the service runs --------------------------------------------------


async def _outage_and_recovery(
    sim, monitor, bot, analyst, channel, settings, errors_logged, *, fail, restore, cause
):
    """Posts, an edit and a deletion arrive while writes fail; all are archived after."""
    early = [sim.post(channel, f"сводка {i}: без происшествий") for i in range(3)]
    sim.dedup_random_ids = True
    async with service(sim, monitor, bot, settings) as app:
        assert app.watcher is not None and app.db is not None
        app.watcher.repair_first = 0.1
        await add_rule(app, analyst, "Шебекино")
        sim.post(channel, "Шебекино: до сбоя")
        await received(sim, analyst, bot, 1)

        await fail(app)
        during = [sim.post(channel, f"Шебекино, сбой {i}") for i in range(5)]
        during.append(sim.post(channel, "пост без ключевого слова"))
        await until_watcher(app, lambda: _is_behind(app, channel.id))
        sim.edit(channel, early[0], "сводка 0: исправлено во время сбоя")
        sim.delete(channel, [early[1]])
        await until_watcher(app, lambda: _kept(app, (1, 1)))
        # the service is up, the posts are not in memory, and nothing moved the head
        assert not app.task.done()  # type: ignore[attr-defined]
        head = await archive.find_channel(app.db, channel.id)
        assert head is not None and head.last_msg_id == during[0] - 1
        failures = app.watcher.write_failures
        assert failures >= 1

        await restore(app)
        await until_watcher(app, lambda: _recovered(app, channel.id, during, early))
        await received(sim, analyst, bot, 2)  # the outage's five alerts, combined
        await settled(app, lambda: _all_sent(app))
    texts = [m.text for m in sim.messages_to(analyst, from_=bot)]
    for i in range(5):
        assert sum(f"Шебекино, сбой {i}" in t for t in texts) == 1
    check_intact(settings.db_path)
    outage_errors = [line for line in errors_logged if "cannot write to the archive" in line]
    assert outage_errors, errors_logged
    assert cause in outage_errors[0] and str(settings.db_path) in outage_errors[0]
    assert "Nothing is lost" in outage_errors[0]
    assert len(outage_errors) <= 2  # not one line per failed write or retry
    return texts


async def _is_behind(app: App, channel_id: int) -> bool:
    assert app.watcher is not None
    return channel_id in app.watcher.behind


async def _kept(app: App, counts: tuple[int, int]) -> bool:
    assert app.watcher is not None
    return app.watcher.pending == counts


async def _recovered(app: App, channel_id: int, during: list[int], early: list[int]) -> bool:
    assert app.watcher is not None and app.db is not None
    if app.watcher.behind or app.watcher.pending != (0, 0):
        return False
    for msg_id in during:
        if await archive.get_post(app.db, channel_id, msg_id) is None:
            return False
    edited = await archive.get_post(app.db, channel_id, early[0])
    deleted = await archive.get_post(app.db, channel_id, early[1])
    return (
        edited["text"] == "сводка 0: исправлено во время сбоя"
        and len(await archive.post_revisions(app.db, edited["id"])) == 1
        and deleted["deleted_at"] is not None
    )


async def _all_sent(app: App) -> bool:
    assert app.db is not None
    rows = await app.db.fetchall("SELECT status FROM alerts")
    return bool(rows) and all(r["status"] == "sent" for r in rows)


async def test_read_only_archive_while_running_loses_nothing(
    sim, monitor, bot, analyst, channel, tmp_path: Path, errors_logged
):
    settings = bot_settings(tmp_path, bot, [analyst], "rdk_channel")

    async def fail(app):
        await app.db.execute("PRAGMA query_only = ON")

    async def restore(app):
        await app.db.execute("PRAGMA query_only = OFF")

    await _outage_and_recovery(
        sim,
        monitor,
        bot,
        analyst,
        channel,
        settings,
        errors_logged,
        fail=fail,
        restore=restore,
        cause="the database is read-only",
    )


async def test_disk_full_while_running_loses_nothing_and_recovers(
    sim, monitor, bot, analyst, channel, tmp_path: Path, errors_logged
):
    with small_disk(tmp_path / "disk") as disk:
        settings = bot_settings(tmp_path, bot, [analyst], "rdk_channel", db_path=disk / "a.db")
        ballast: list[Path] = []

        async def fail(app):
            # after a checkpoint the WAL is empty: the next write needs new space
            await app.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            ballast.append(fill(disk))

        async def restore(app):
            ballast[0].unlink()

        await _outage_and_recovery(
            sim,
            monitor,
            bot,
            analyst,
            channel,
            settings,
            errors_logged,
            fail=fail,
            restore=restore,
            cause="the disk is full",
        )


async def test_a_failed_commit_is_rolled_back_and_the_next_transaction_works(tmp_path: Path):
    """COMMIT itself can fail (a full disk when the WAL grows, a deferred constraint);
    the transaction must not stay open, or every later write would fail."""
    db = await open_database(tmp_path / "a.db")
    try:
        with pytest.raises(sqlite3.IntegrityError):
            async with db.transaction() as conn:
                await conn.execute("PRAGMA defer_foreign_keys = ON")
                await conn.execute(
                    "INSERT INTO media (post_id, idx, kind) VALUES (424242, 0, 'photo')"
                )  # no such post: refused at COMMIT
        assert not db.conn.in_transaction
        async with db.transaction() as conn:  # the next write works
            await conn.execute("INSERT INTO unresolved_channels VALUES ('x', 'e', 't')")
        row = await db.fetchone("SELECT count(*) FROM media")
        assert row is not None and row[0] == 0  # nothing of the failed one is kept
    finally:
        await db.close()


# --- the archive cannot be opened ---------------------------------------------------------


async def _run_on(db: Path, sim: Simulator, monitor, tmp_path: Path) -> tuple[int, str]:
    env = service_env(sim, tmp_path / "state", ["rdk_channel"], monitor=monitor, db=str(db))
    log = tmp_path / "run.log"
    proc = await start(env, log=log)
    code = await ended(proc)
    return code, log.read_text(errors="replace")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _real_archive(path: Path) -> None:
    db = await open_database(path)
    await db.close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize("damage", ["garbage", "schema page"])
async def test_a_corrupt_archive_stops_run_with_the_file_and_the_fix(
    sim, monitor, channel, tmp_path: Path, damage: str
):
    db = tmp_path / "archive.db"
    if damage == "garbage":
        db.write_bytes(os.urandom(64 * 1024))
    else:
        await _real_archive(db)
        data = bytearray(db.read_bytes())
        data[100:4096] = os.urandom(4096 - 100)  # sqlite_schema lives on page 1
        db.write_bytes(bytes(data))
    before = _sha(db)
    code, log = await _run_on(db, sim, monitor, tmp_path)
    assert code == 3, log
    assert str(db) in log and "Restore it from the latest backup" in log
    assert "Traceback" not in log
    assert _sha(db) == before  # the damaged file is left as it was, for recovery


async def test_an_archive_locked_by_another_process_stops_run_with_the_fix(
    sim, monitor, channel, tmp_path: Path
):
    db = tmp_path / "archive.db"
    await _real_archive(db)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('PRAGMA locking_mode = EXCLUSIVE')\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "c.execute(\"INSERT INTO unresolved_channels VALUES ('x', 'e', 't')\")\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            assert await holder.stdout.readline() == b"locked\n"
        code, log = await _run_on(db, sim, monitor, tmp_path)
    finally:
        holder.kill()
        await ended(holder)
    assert code == 3, log
    assert f"{db} is locked by another process" in log
    assert "Stop the other chanwatch instance or tool holding it" in log
    assert "Traceback" not in log
    check_intact(db)


async def test_an_archive_on_a_read_only_mount_stops_run_with_the_fix(
    sim, monitor, channel, tmp_path: Path
):
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "archive.db"
        await _real_archive(db)
        remount_read_only(disk)
        code, log = await _run_on(db, sim, monitor, tmp_path)
    assert code == 3, log
    assert str(db) in log and "Traceback" not in log
    assert "this user may write to it" in log or "read-only" in log
