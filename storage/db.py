"""Open the archive: one SQLite file (WAL, migrations by PRAGMA user_version), or a
PostgreSQL database when the archive setting is a postgresql:// URL (storage/pg.py).

Every storage module talks to a `Database` and writes one SQL dialect (SQLite's,
with `?` placeholders); the PostgreSQL backend translates it (storage/sqlpg.py).
What differs in meaning, not only in spelling, asks `db.dialect`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
from loguru import logger

from storage import private
from storage.shared import DatabaseUnavailable, ServerRefused, SharedConnection, StorageError

__all__ = ["DatabaseUnavailable", "StorageError"]  # re-exported: callers import them here

BUSY_TIMEOUT_MS = 5_000


Connection = aiosqlite.Connection  # what a transaction hands to `*_in` functions


# Everything a statement on either backend can raise about the database (not the data's
# meaning): what the service catches around archive writes.
DB_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, ServerRefused, DatabaseUnavailable)
DatabaseError = DB_ERRORS  # what a failed statement raises, whatever the cause or backend

ArchiveTarget = Path | str  # a SQLite file, or a postgresql:// URL


def archive_target(value: str | Path) -> ArchiveTarget:
    """A `--db` / CHANWATCH_DB value: a postgresql:// URL stays a string, anything else
    is a file path."""
    text = str(value)
    if text.split("://", 1)[0].lower() in ("postgresql", "postgres") and "://" in text:
        return text
    return Path(text).expanduser()


def is_postgres(target: ArchiveTarget) -> bool:
    return isinstance(target, str)


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with the package: (version, name, sql)."""
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise RuntimeError(f"migration {name} is out of sequence (expected {expected:04d})")
    return found


SCHEMA_VERSION = len(migrations())


class Database(SharedConnection):
    """An aiosqlite connection in autocommit mode with explicit transactions.

    One connection is shared by every task (watcher, pipeline, notifier, bot
    commands), so access is serialized by a lock: a transaction holds it from
    BEGIN to COMMIT, and a statement outside a transaction waits for it. Without
    that, a second task's BEGIN fails ("cannot start a transaction within a
    transaction") and its single statements would silently join, and roll back
    with, another task's transaction. The task that holds a transaction may run
    statements through these methods freely.
    """

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        super().__init__()
        self.conn = conn
        self.path = path

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._owner.get():
            raise RuntimeError("nested transaction on the same connection")
        async with self._lock:
            token = self._owner.set(True)
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    await self.conn.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full, I/O error) leaves the transaction open, and
                    # SQLite may already have rolled back a statement that hit a full disk:
                    # roll back only what is still open, and never let that hide the cause.
                    if self.conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            await self.conn.execute("ROLLBACK")
                    raise
            finally:
                self._owner.reset(token)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._access(), self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._access(), self.conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own implicit transaction; returns rows changed."""
        async with self._access(), self.conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def execute_returning(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one statement with a RETURNING clause; returns its rows."""
        async with self._access(), self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._access():
            await self.conn.executemany(sql, rows)

    async def columns(self, table: str) -> list[str]:
        rows = await self.fetchall("SELECT name FROM pragma_table_info(?)", (table,))
        return [row[0] for row in rows]

    async def tables(self) -> list[str]:
        rows = await self.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        return [row[0] for row in rows]

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        async with self._lock:
            await self.conn.close()


async def lock_in(conn: Any, name: str) -> None:
    """Serialize, across processes, the transactions that read then write `name`.

    SQLite's BEGIN IMMEDIATE already lets one writer in at a time; on PostgreSQL
    several watchers write at once, so a transaction that checks what exists before
    inserting takes an advisory lock first.
    """
    lock = getattr(conn, "advisory_lock", None)
    if lock is not None:
        await lock(name)


# Result codes that mean "the database cannot be written now" (not "this data is bad"):
# the service keeps running, retries, and catches up from Telegram once writes succeed.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
    }
)


# PostgreSQL error classes that mean "not now" rather than "bad data": insufficient
# resources (disk full), operator intervention (shutdown), system errors, lock and
# serialization conflicts, a read-only server, and missing rights (as SQLITE_READONLY).
_PG_UNAVAILABLE_CLASSES = ("53", "57", "58", "08", "40", "55")
_PG_UNAVAILABLE_STATES = frozenset({"25006", "42501"})


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the archive cannot be written now (disk full, read-only,
    I/O error, locked, server gone) rather than that one record or query is bad."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    state = getattr(exc, "sqlstate", None)
    if state is not None and not isinstance(exc, sqlite3.Error):
        return state[:2] in _PG_UNAVAILABLE_CLASSES or state in _PG_UNAVAILABLE_STATES
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _UNAVAILABLE_CODES
    text = str(exc)
    return any(
        cue in text for cue in ("disk is full", "readonly", "disk I/O", "locked", "unable to open")
    )


def describe_unavailable(path: Path | str, exc: BaseException) -> str:
    """One line for the log: what failed, on which file, and what the operator can do."""
    text = str(exc)
    if isinstance(exc, DatabaseUnavailable) or getattr(exc, "sqlstate", None):
        return _describe_pg(path, exc)
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        cause = "the disk is full; free space on it"
    elif code == sqlite3.SQLITE_READONLY or "readonly" in text:
        cause = "the database is read-only; check the file's permissions and the mount"
    elif code == sqlite3.SQLITE_IOERR or "I/O" in text:
        cause = "the disk reported an I/O error; check the disk (dmesg, SMART)"
    elif code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        cause = "another process holds a write lock on it; stop that process"
    else:
        cause = "check that the file and its directory are writable"
    return (
        f"cannot write to the archive {path} ({text}): {cause}. Nothing is lost: "
        "chanwatch retries and fetches the posts it could not store from Telegram again"
    )


def _describe_pg(where: Path | str, exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", "") or ""
    if isinstance(exc, DatabaseUnavailable):
        cause = str(exc)
    elif state == "42501":
        cause = f"this role lacks rights on the archive {where} ({exc}); grant them"
    elif state.startswith("53"):
        cause = f"the PostgreSQL server {where} is out of resources ({exc}); free disk space"
    else:
        cause = f"the PostgreSQL archive {where} refused the write ({exc})"
    return (
        f"cannot write to the archive: {cause}. Nothing is lost: chanwatch retries and "
        "fetches the posts it could not store from Telegram again"
    )


def _explain(path: Path, exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StorageError(
            f"{path} is not a valid chanwatch database ({text}). "
            "Restore it from the latest backup (see README: Backups) or move it aside "
            "to start a new archive."
        )
    if "locked" in text or "busy" in text:
        return StorageError(
            f"{path} is locked by another process ({text}). "
            "Stop the other chanwatch instance or tool holding it and try again."
        )
    if "unable to open" in text or "readonly" in text:
        return StorageError(
            f"cannot open {path} for writing ({text}). "
            "Check that the directory exists and that this user may write to it."
        )
    return StorageError(f"database error on {path}: {text}")


async def _migrate(conn: aiosqlite.Connection, path: Path) -> None:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row else 0
    if current > SCHEMA_VERSION:
        raise StorageError(
            f"{path} has schema version {current}, newer than this chanwatch "
            f"understands ({SCHEMA_VERSION}). Upgrade chanwatch; the file was not changed."
        )
    for version, name, sql in migrations()[current:]:
        log = logger.bind(db=str(path), migration=name)
        log.info("applying migration {name}", name=name)
        try:
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {version};\nCOMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise


async def open_database(path: str | Path, *, readonly: bool = False) -> Database:
    """Open (creating if needed) and migrate the archive at `path`: a SQLite file, or
    a PostgreSQL database given as a postgresql:// URL."""
    target = archive_target(path)
    if isinstance(target, str):
        from storage.pg import open_pg

        return await open_pg(target, SCHEMA_VERSION, readonly=readonly)
    path = target
    if not readonly:
        private.make_dir(path.parent)
        # SQLite gives -wal and -shm the database file's mode: 0600 for all three.
        # (A file that cannot be created or changed is left for SQLite to report.)
        for name in (path.name, path.name + "-wal", path.name + "-shm"):
            with contextlib.suppress(OSError):
                private.tighten(path.with_name(name))
        with contextlib.suppress(OSError):
            if not path.exists():
                private.touch(path)
    uri = f"file:{path}?mode=ro" if readonly else str(path)
    try:
        conn = await aiosqlite.connect(uri, uri=readonly, isolation_level=None)
    except sqlite3.Error as exc:
        raise _explain(path, exc) from None
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await _migrate(conn, path)
        else:
            await conn.execute("PRAGMA query_only = ON")
            async with conn.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            if row is None or row[0] != SCHEMA_VERSION:
                raise StorageError(
                    f"{path} has schema version {row[0] if row else '?'}, expected "
                    f"{SCHEMA_VERSION}; run `chanwatch run` or `chanwatch doctor` once to migrate."
                )
    except sqlite3.Error as exc:
        await conn.close()
        raise _explain(path, exc) from None
    except BaseException:
        await conn.close()
        raise
    return Database(conn, path)


def inspect_file(path: Path) -> tuple[int, str]:
    """(schema version, quick_check result) of an archive file, read without writing.

    Raises DatabaseError when the file cannot be read as a database."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    return int(version), str(result)


def table_columns(path: Path, table: str) -> set[str]:
    """The column names of one table of an archive file, read without writing."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))}


def table_names(path: Path) -> set[str]:
    """The names of the tables and views of an archive file, read without writing."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}


@asynccontextmanager
async def savepoint(conn: Connection, name: str) -> AsyncIterator[None]:
    """Inside a transaction: undo what the block wrote if it raises (the exception goes
    on to the caller), and keep the rest of the transaction either way."""
    if not name.isidentifier():
        raise ValueError(f"not a savepoint name: {name!r}")
    await conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        await conn.execute(f"ROLLBACK TO {name}")
        await conn.execute(f"RELEASE {name}")
        raise
    await conn.execute(f"RELEASE {name}")


ID_CHUNK = 500  # ids per statement: under SQLite's limit of host parameters


async def rows_for_ids(conn: Connection, sql: str, ids: Sequence[int]) -> list[Any]:
    """The rows of `sql` for every id, asked in chunks; `{marks}` in `sql` is where the
    ids' placeholders go."""
    rows: list[Any] = []
    for i in range(0, len(ids), ID_CHUNK):
        chunk = list(ids[i : i + ID_CHUNK])
        async with conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk) as cursor:
            rows.extend(await cursor.fetchall())
    return rows


# Host parameters per statement: SQLite 3.32 raised the limit from 999 to 32766.
MAX_PARAMS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
MAX_ROWS = 512  # rows per multi-row statement


async def insert_rows(conn: Connection, head: str, rows: Sequence[Sequence[Any]]) -> None:
    """`head` ("INSERT INTO t (a, b)") with every row, in order.

    On SQLite the rows go in multi-row VALUES statements: executemany steps once per
    row, and every step releases and takes back the GIL, so while the event loop is
    busy (the next batch's detection) each row waited its turn; a few statements take
    it a few times. Statements hold a power of two of rows, so that the few texts there
    are stay in the connection's statement cache (compiling one costs about as much as
    running it). PostgreSQL pipelines executemany already."""
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ",".join("?" * width) + ")"
    if getattr(conn, "dialect", "sqlite") != "sqlite":
        await conn.executemany(f"{head} VALUES {one}", rows)
        return
    per = min(MAX_ROWS, MAX_PARAMS // width)
    size = 1 << (per.bit_length() - 1)
    start = 0
    while start < len(rows):
        while start + size > len(rows):
            size >>= 1
        chunk = rows[start : start + size]
        sql = f"{head} VALUES {','.join([one] * size)}"
        await conn.execute(sql, [value for row in chunk for value in row])
        start += size
