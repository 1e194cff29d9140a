"""Datasette plugin for `chanwatch browse`: only the archive is reachable.

Copied into the plugins folder of one browse run, next to `guard.json` which lists
the archive's tables and says whether arbitrary SQL is allowed. Two walls:

- permissions: every table or view not on the list is hidden and refused, and
  arbitrary SQL (`?sql=`, `_where=`) is refused unless the operator allowed it;
- an SQLite authorizer on every connection to the archive: every column of a table
  not on the list reads as NULL, whoever wrote the statement (arbitrary SQL when
  allowed, a canned query, a Datasette page), so the bot's invites, subscribers,
  rules, strangers and alerts cannot be read through the browser at all. (NULL
  rather than an error, so Datasette's own pages, such as a post's "links from
  other tables", keep working: they count nothing there.)

This file is loaded by Datasette, not imported by chanwatch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datasette import hookimpl
from markupsafe import Markup, escape

_CONFIG = json.loads(Path(__file__).with_name("guard.json").read_text(encoding="utf-8"))
DATABASE: str = _CONFIG["database"]
TABLES: frozenset[str] = frozenset(_CONFIG["tables"])
ALLOW_SQL: bool = _CONFIG["allow_sql"]
DETAILS_COLUMN: str = _CONFIG["details_column"]
# SQLite's own catalog tables and the FTS index's shadow tables are read by search
# and by Datasette's introspection; they hold nothing the archive tables do not.
_READABLE_PREFIXES = ("sqlite_", "posts_fts")
# SQLite's authorizer codes (fixed numbers of SQLite's C API; the driver is not imported
# here: database access belongs to storage, this file only filters what Datasette reads)
SQLITE_OK, SQLITE_IGNORE, SQLITE_READ = 0, 2, 20


def _readable(table: str | None) -> bool:
    return not table or table in TABLES or table.startswith(_READABLE_PREFIXES)


def _authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, _: Any) -> int:
    if action == SQLITE_READ and db in ("main", None) and not _readable(arg1):
        return SQLITE_IGNORE
    return SQLITE_OK


@hookimpl
def prepare_connection(conn: Any, database: str) -> None:
    if database == DATABASE:
        conn.set_authorizer(_authorizer)


@hookimpl
def permission_allowed(action: str, resource: Any) -> bool | None:
    if action == "execute-sql":
        return ALLOW_SQL
    if action == "view-table" and isinstance(resource, tuple) and len(resource) == 2:
        database, table = resource
        if database == DATABASE and not _readable(table):
            return False
    if action == "view-database" and resource not in (DATABASE, None):
        return False
    return None


@hookimpl
def render_cell(value: Any, column: str, table: str | None, database: str) -> Markup | None:
    """The archive view's `details` column links to the post's full row."""
    if database == DATABASE and column == DETAILS_COLUMN and isinstance(value, int):
        return Markup(f'<a href="/{escape(DATABASE)}/posts/{value}">all fields</a>')
    return None
