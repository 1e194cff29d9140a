"""The PostgreSQL archive: the same `Database` interface as SQLite, over asyncpg.

A team's watchers share one PostgreSQL database. Each process keeps one
connection (as with SQLite, every task of the process shares it, serialized by
the same lock); writers in different processes are kept apart by the database
itself and by advisory locks where the archive reads before it writes (see
`storage.db.lock_in`). A connection that breaks is opened again on the next
statement; until the server is back every statement fails with
`DatabaseUnavailable`, which the service treats like a full disk: retry with
backoff, lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from loguru import logger

from config.database_url import URL_SCHEMES, check_url, redact
from storage.shared import DatabaseUnavailable, ServerRefused, SharedConnection, StorageError
from storage.sqlpg import returns_rows, translate

CONNECT_TIMEOUT_S = 10
MIGRATION_LOCK = "chanwatch:migrate"
_STATUS_COUNT = re.compile(r"(\d+)$")
_INSERT = re.compile(r"\s*INSERT\b", re.IGNORECASE)
_ON_CONFLICT = re.compile(r"\bON\s+CONFLICT\b", re.IGNORECASE)
_DML = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)

# Errors that mean "the server cannot be used right now", not "this statement is bad".
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


@contextmanager
def talking(url: str, lost: Callable[[], None] | None = None) -> Iterator[None]:
    """What the server or the connection to it raises, as the storage modules catch it:
    `DatabaseUnavailable` when it cannot be reached (after `lost`), `ServerRefused`
    when it refused a statement."""
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        if lost is not None:
            lost()
        raise DatabaseUnavailable(_reach_error(url, exc)) from exc
    except asyncpg.PostgresError as exc:
        raise ServerRefused(str(exc), exc.sqlstate) from exc


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.split("://", 1)[0].lower() in URL_SCHEMES


def migrations() -> list[tuple[int, str, str]]:
    """The PostgreSQL migrations: the same numbers and meaning as SQLite's."""
    found = []
    for entry in resources.files("storage.migrations_pg").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def lock_key(name: str) -> int:
    """A stable 32-bit key for an advisory lock named `name`."""
    return zlib.crc32(name.encode("utf-8"))


def _count(status: str) -> int:
    found = _STATUS_COUNT.search(status or "")
    return int(found.group(1)) if found else -1


class PgRow(asyncpg.Record):
    """A row read like sqlite3.Row: by name or position, `keys()` a list."""

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(super().keys())


class PgCursor:
    """The part of a DB-API cursor the storage modules use."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    async def fetchall(self) -> list[asyncpg.Record]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    async def fetchone(self) -> asyncpg.Record | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def close(self) -> None:
        return None


class _Pending:
    """`await conn.execute(...)` or `async with conn.execute(...) as cursor`, as in aiosqlite."""

    def __init__(self, conn: PgConnection, sql: str, params: Sequence[Any]) -> None:
        self._conn = conn
        self._sql = sql
        self._params = params

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._conn._run(self._sql, self._params).__await__()

    async def __aenter__(self) -> PgCursor:
        return await self._conn._run(self._sql, self._params)

    async def __aexit__(self, *exc: object) -> None:
        return None


class PgConnection:
    """One asyncpg connection behind the aiosqlite-like calls the storage modules make,
    opened again after the server went away."""

    dialect = "postgresql"  # what a storage function handed a connection may ask

    def __init__(self, url: str, *, readonly: bool) -> None:
        self.url = url
        self.readonly = readonly
        self.total_changes = 0
        self.in_transaction = False
        self._raw: asyncpg.Connection | None = None

    async def raw(self) -> asyncpg.Connection:
        if self._raw is None or self._raw.is_closed():
            self._raw = None
            with talking(self.url):
                self._raw = await connect(self.url, readonly=self.readonly)
        return self._raw

    def lost(self) -> None:
        """Forget a connection that failed; the next statement opens a new one."""
        raw, self._raw = self._raw, None
        if raw is not None and not raw.is_closed():
            raw.terminate()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Pending:
        return _Pending(self, sql, params)

    async def _run(self, sql: str, params: Sequence[Any]) -> PgCursor:
        text = translate(sql)
        raw = await self.raw()
        with talking(self.url, self.lost):
            if returns_rows(text):
                rows = await raw.fetch(text, *params)
                count = len(rows) if not text.lstrip().upper().startswith("SELECT") else -1
                if count > 0:
                    self.total_changes += count
                return PgCursor(rows, count)
            status = await raw.execute(text, *params)
        changed = _count(status)
        if changed > 0:
            self.total_changes += changed
        return PgCursor([], changed)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        """Run one statement per row, pipelined (one round trip for the batch, not one
        per row); the cursor's rowcount is the rows changed, as SQLite counts them."""
        batch = [tuple(row) for row in rows]
        if not batch:
            return PgCursor([], 0)
        text = translate(sql)
        raw = await self.raw()
        with talking(self.url, self.lost):
            if _INSERT.match(text) and not _ON_CONFLICT.search(text):
                await raw.executemany(text, batch)  # every row is inserted, or it fails
                total = len(batch)
            elif _DML.match(text):
                # what a row changed (an insert that skips an existing row, an update
                # that matches none) comes back as the rows it returns
                if not returns_rows(text):
                    text = text.rstrip().rstrip(";") + " RETURNING 1"
                total = len(await raw.fetchmany(text, batch))
            else:
                statement = await raw.prepare(text)
                total = 0
                for row in batch:
                    await statement.fetch(*row)
                    total += max(_count(statement.get_statusmsg()), 0)
        self.total_changes += total
        return PgCursor([], total)

    async def advisory_lock(self, name: str) -> None:
        """Hold an advisory lock until the current transaction ends."""
        await self._run("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))

    async def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None and not raw.is_closed():
            try:
                await asyncio.wait_for(raw.close(), 5)
            except (*_CONNECTION_ERRORS, asyncpg.PostgresError):
                raw.terminate()


class PgDatabase(SharedConnection):
    """The archive in PostgreSQL; the methods and their meaning are those of
    `storage.db.Database` (SQLite), which the storage modules are written against."""

    dialect = "postgresql"

    def __init__(self, conn: PgConnection) -> None:
        super().__init__()
        self.conn = conn
        self.path = redact(conn.url)
        self.url = conn.url

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConnection]:  # type: ignore[override]
        if self._owner.get():
            raise RuntimeError("nested transaction on the same connection")
        conn: PgConnection = self.conn  # type: ignore[assignment]
        async with self._lock:
            token = self._owner.set(True)
            try:
                raw = await conn.raw()
                with talking(conn.url, conn.lost):
                    tx = raw.transaction()
                    await tx.start()
                conn.in_transaction = True
                try:
                    yield conn
                    with talking(conn.url, conn.lost):
                        await tx.commit()
                except BaseException:
                    if not raw.is_closed():
                        with contextlib.suppress(*_CONNECTION_ERRORS, asyncpg.PostgresError):
                            await tx.rollback()
                    raise
                finally:
                    conn.in_transaction = False
            finally:
                self._owner.reset(token)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._access():
            cursor = await self.conn._run(sql, params)  # type: ignore[attr-defined]
            return await cursor.fetchall()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._access():
            cursor = await self.conn._run(sql, params)  # type: ignore[attr-defined]
            return await cursor.fetchone()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._access():
            cursor = await self.conn._run(sql, params)  # type: ignore[attr-defined]
            return cursor.rowcount

    async def execute_returning(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.fetchall(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._access():
            await self.conn.executemany(sql, rows)

    async def columns(self, table: str) -> list[str]:
        # the catalog itself: information_schema.columns takes milliseconds, and every
        # search asks which columns the posts have
        rows = await self.fetchall(
            """SELECT a.attname FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ?
                 AND a.attnum > 0 AND NOT a.attisdropped
               ORDER BY a.attnum""",
            (table,),
        )
        return [row[0] for row in rows]

    async def tables(self) -> list[str]:
        rows = await self.fetchall(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        return [row[0] for row in rows]

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT version FROM chanwatch_schema")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        async with self._lock:
            await self.conn.close()


# --- opening --------------------------------------------------------------------


WATCHER_NAME = "chanwatch"  # application_name of this process's connections (set at start)


async def connect(
    url: str, *, readonly: bool = False, application: str | None = None
) -> asyncpg.Connection:
    settings = {"application_name": application or WATCHER_NAME}
    if readonly:
        settings["default_transaction_read_only"] = "on"
    return await asyncpg.connect(
        url, timeout=CONNECT_TIMEOUT_S, server_settings=settings, record_class=PgRow
    )


LISTEN_RETRY_S = 2.0


async def listen(url: str, channel: str, on_notice: Callable[[], None]) -> None:
    """Call `on_notice` at each NOTIFY on `channel` (another process's committed work),
    until cancelled. A lost connection is made again every LISTEN_RETRY_S; `on_notice`
    is also called once listening (re)starts, for what was notified meanwhile."""
    log = logger.bind(channel=channel)
    while True:
        try:
            conn = await connect(url)
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            log.debug("cannot listen for {channel}: {error}", channel=channel, error=exc)
            await asyncio.sleep(LISTEN_RETRY_S)
            continue
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn, ended=lost: ended.set())
        try:
            await conn.add_listener(channel, lambda *_notice: on_notice())
            on_notice()
            await lost.wait()
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            log.debug("stopped listening for {channel}: {error}", channel=channel, error=exc)
        finally:
            conn.terminate()  # at once, cancelled or not; nothing is in flight on it
        await asyncio.sleep(LISTEN_RETRY_S)


def _where(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "the local socket"
    return f"{host}:{parts.port or 5432}" if parts.hostname else host


def _reach_error(url: str, exc: BaseException) -> str:
    return (
        f"cannot reach the PostgreSQL server at {_where(url)} ({exc.__class__.__name__}: "
        f"{str(exc) or 'no answer'}): start it (systemctl start postgresql) or fix CHANWATCH_DB"
    )


_LOGIN_ERRORS = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


def _open_error(url: str, exc: BaseException) -> StorageError:
    shown = redact(url)
    parts = urlsplit(url)
    role = parts.username or "(the login user)"
    dbname = parts.path.strip("/") or "?"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StorageError(
            f"the database {dbname!r} does not exist on {_where(url)}: create it "
            f"(sudo -u postgres createdb -O {role} {dbname}) or fix CHANWATCH_DB"
        )
    if isinstance(exc, _LOGIN_ERRORS):
        return StorageError(
            f"PostgreSQL refused the login of role {role!r} on {shown} ({exc}): create the "
            "role (sudo -u postgres createuser ROLE), fix the password in CHANWATCH_DB or "
            "allow it in pg_hba.conf"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return StorageError(
            f"role {role!r} may not use the archive {shown} ({exc}): make it the database's "
            f"owner (ALTER DATABASE {dbname} OWNER TO {role}) or grant it the tables"
        )
    if isinstance(exc, _CONNECTION_ERRORS):
        return StorageError(_reach_error(url, exc))
    if isinstance(exc, ValueError):
        return StorageError(f"cannot read the PostgreSQL URL {shown!r}: {exc}")
    return StorageError(f"database error on {shown}: {exc}")


async def _current_version(raw: asyncpg.Connection) -> int:
    if await raw.fetchval("SELECT to_regclass('chanwatch_schema')") is None:
        return 0
    return int(await raw.fetchval("SELECT coalesce(max(version), 0) FROM chanwatch_schema"))


async def _migrate(raw: asyncpg.Connection, url: str, schema_version: int) -> None:
    """Apply the missing migrations, each in one transaction with its version.

    Watchers starting together take turns through an advisory lock, and each
    re-reads the version under it, so a migration runs once.
    """
    pending = migrations()
    current = await _current_version(raw)
    if current > schema_version:
        raise _newer(url, current, schema_version)
    for version, name, sql in pending:
        if version <= current:
            continue
        async with raw.transaction():
            await raw.execute("SELECT pg_advisory_xact_lock($1)", lock_key(MIGRATION_LOCK))
            current = await _current_version(raw)
            if current >= version:
                continue
            logger.bind(db=redact(url), migration=name).info("applying migration {name}", name=name)
            await raw.execute(sql)
            await raw.execute(
                "CREATE TABLE IF NOT EXISTS chanwatch_schema (version integer NOT NULL)"
            )
            await raw.execute("DELETE FROM chanwatch_schema")
            await raw.execute("INSERT INTO chanwatch_schema (version) VALUES ($1)", version)
            current = version


def _newer(url: str, current: int, expected: int) -> StorageError:
    return StorageError(
        f"{redact(url)} has schema version {current}, newer than this chanwatch "
        f"understands ({expected}). Upgrade chanwatch; the database was not changed."
    )


async def open_pg(url: str, schema_version: int, *, readonly: bool = False) -> PgDatabase:
    """Connect to (and, unless read-only, migrate) the archive at `url`."""
    problem = check_url(url)
    if problem:
        raise StorageError(f"{problem} (CHANWATCH_DB or --db)")
    conn = PgConnection(url, readonly=readonly)
    try:
        raw = await connect(url, readonly=readonly)
    except (*_CONNECTION_ERRORS, asyncpg.PostgresError, ValueError) as exc:
        raise _open_error(url, exc) from None
    conn._raw = raw
    try:
        if readonly:
            current = await _current_version(raw)
            if current > schema_version:
                raise _newer(url, current, schema_version)
            if current != schema_version:
                raise StorageError(
                    f"{redact(url)} has schema version {current}, expected {schema_version}; "
                    "run `chanwatch run` or `chanwatch doctor` once to migrate."
                )
        else:
            await _migrate(raw, url, schema_version)
    except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        await conn.close()
        raise _open_error(url, exc) from None
    except BaseException:
        await conn.close()
        raise
    return PgDatabase(conn)


# --- what `chanwatch doctor` reports ----------------------------------------------

ARCHIVE_TABLES = (
    "channels",
    "unresolved_channels",
    "posts",
    "post_revisions",
    "media",
    "metrics",
    "posts_fts",
    "subscribers",
    "invites",
    "strangers",
    "rules",
    "alerts",
)


@dataclass(frozen=True, slots=True)
class ServerReport:
    """The server, the archive's schema version and this role's rights on it."""

    server_version: str
    role: str
    schema_version: int  # -1: this role may not read it
    may_create: bool  # may run migrations (CREATE on the database and its schema)
    missing_rights: tuple[str, ...]  # "table: privilege" this role lacks
    icu: bool  # the und-x-icu collation the search's word splitting needs


async def inspect(url: str) -> ServerReport:
    """Connect and look; StorageError (one line, with the fix) when that fails."""
    problem = check_url(url)
    if problem:
        raise StorageError(f"{problem} (CHANWATCH_DB or --db)")
    try:
        raw = await connect(url, readonly=True)
    except (*_CONNECTION_ERRORS, asyncpg.PostgresError, ValueError) as exc:
        raise _open_error(url, exc) from None
    try:
        missing: list[str] = []
        try:
            version = await _current_version(raw)
        except asyncpg.InsufficientPrivilegeError:
            version = -1  # unknown: this role may not even read the schema version
            missing.append("chanwatch_schema: SELECT")
        role = await raw.fetchval("SELECT current_user")
        may_create = await raw.fetchval(
            "SELECT has_database_privilege(current_database(), 'CREATE') "
            "AND has_schema_privilege(current_schema(), 'CREATE')"
        )
        if version:
            rows = await raw.fetch(
                """SELECT t.name, p.priv FROM unnest($1::text[]) AS t(name)
                   CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) AS p(priv)
                   WHERE to_regclass(t.name) IS NULL
                      OR NOT has_table_privilege(t.name, p.priv)""",
                list(ARCHIVE_TABLES),
            )
            missing = [f"{row['name']}: {row['priv']}" for row in rows]
        icu = await raw.fetchval(
            "SELECT count(*) > 0 FROM pg_collation WHERE collname = 'und-x-icu'"
        )
        server = await raw.fetchval("SHOW server_version")
    except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        raise _open_error(url, exc) from None
    finally:
        with contextlib.suppress(*_CONNECTION_ERRORS, asyncpg.PostgresError):
            await raw.close()
    return ServerReport(server, role, version, bool(may_create), tuple(missing), bool(icu))
