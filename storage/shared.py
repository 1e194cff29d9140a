"""What both archive backends share: their errors, and one connection shared by
every task of a process behind one lock (see `Database` in storage/db.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar


class StorageError(Exception):
    """A database problem explained for the operator (what, which file, what to do)."""


class DatabaseUnavailable(Exception):
    """The database server cannot be reached now (PostgreSQL): retry later, like a full disk."""


class ServerRefused(Exception):
    """A statement the PostgreSQL server refused, with its SQLSTATE: storage/pg.py
    re-raises asyncpg's errors as this, so that what catches database errors need not
    import asyncpg (a process on SQLite never loads it)."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class SharedConnection:
    """A lock that a transaction holds from BEGIN to COMMIT and a single statement
    waits for; the task that holds a transaction passes freely."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: ContextVar[bool] = ContextVar(f"db_owner_{id(self)}", default=False)
        # Lemmas search found in the archive (storage.search.indexed_lemmas): a lemma
        # once held is not asked again, since posts are never removed, and one no post
        # holds any more (rewritten lemmas) only adds an alternative that finds nothing.
        self.held_lemmas: set[str] = set()
        # Lexemes most posts hold, and when they were read (storage.search, PostgreSQL).
        self.common_lexemes: tuple[float, frozenset[str]] | None = None

    @asynccontextmanager
    async def _access(self) -> AsyncIterator[None]:
        if self._owner.get():
            yield
            return
        async with self._lock:
            yield
