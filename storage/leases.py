"""Who does what when several watchers share one PostgreSQL archive.

One process delivers alerts: the one holding the session advisory lock
"chanwatch:deliver" on a connection of its own. PostgreSQL releases the lock the
moment that connection ends (the process died, was killed, or lost the server),
so another watcher, trying every few seconds, takes delivery over. No table and
no clock: the server is the referee. Each watcher's connections carry its name
as `application_name` (`chanwatch:<name>`), which is how `holders()` says who
holds what.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import asyncpg

from storage.db import Database
from storage.pg import connect, lock_key, talking

DELIVER = "chanwatch:deliver"
APP_PREFIX = "chanwatch:"


@dataclass(frozen=True, slots=True)
class Holder:
    watcher: str
    lock: str
    since: str  # when its connection started, ISO


class Lease:
    """A named lock held on a dedicated connection while this process lives."""

    def __init__(self, url: str, name: str, watcher: str) -> None:
        self.url = url
        self.name = name
        self.watcher = watcher
        self._conn: asyncpg.Connection | None = None

    async def try_acquire(self) -> bool:
        """True when this process holds the lock now (it may have held it already)."""
        if await self.held():
            return True
        await self.release()
        with talking(self.url, self._forget):
            self._conn = await connect(self.url, application=f"{APP_PREFIX}{self.watcher}")
            if await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(self.name)):
                return True
        await self.release()
        return False

    async def held(self) -> bool:
        """Whether the lock's connection is still alive (so the lock is still ours)."""
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    def _forget(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError,
                                     asyncpg.InterfaceError):  # fmt: skip
                await conn.close(timeout=5)
            if not conn.is_closed():
                conn.terminate()


async def holders(db: Database) -> list[Holder]:
    """Which watcher holds which lock (PostgreSQL archives only)."""
    if db.dialect != "postgresql":
        return []
    names = {lock_key(DELIVER): DELIVER}
    rows = await db.fetchall(
        """SELECT a.application_name, l.objid, a.backend_start::text AS since
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
               SELECT oid FROM pg_database WHERE datname = current_database())
           ORDER BY a.application_name""",
    )
    return [
        Holder(row[0].removeprefix(APP_PREFIX), names.get(int(row[1]), str(row[1])), row[2])
        for row in rows
        if int(row[1]) in names
    ]
