"""Translate the archive's SQL (written for SQLite) into PostgreSQL, once per statement.

The storage modules write one portable dialect: `?` placeholders and a few SQLite
idioms. Rewriting them here, instead of keeping a second copy of every query, means
a query added to any storage module works on both backends:

* `?` -> `$1, $2, ...` and `?NNN` -> `$NNN` (outside string literals, quoted names
  and comments);
* `INSERT OR IGNORE INTO ...` -> `INSERT INTO ... ON CONFLICT DO NOTHING`;
* the two-argument scalar `max(a, b)` / `min(a, b)` -> `greatest(a, b)` / `least(a, b)`;
* `a IS b` / `a IS NOT b` (null-safe) -> `IS [NOT] DISTINCT FROM`;
* `group_concat(x[, sep])` -> `string_agg(x, sep)`;
* `CASE WHEN ? THEN` (a number as truth value) -> `CASE WHEN ?::integer <> 0 THEN`.

What cannot be rewritten mechanically (full-text search, schema introspection)
asks the database for its `dialect` instead.
"""

from __future__ import annotations

import re
from functools import lru_cache

_INSERT_OR_IGNORE = re.compile(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_MINMAX = re.compile(r"\b(max|min)\s*\(", re.IGNORECASE)
# SQLite's null-safe comparisons `a IS b` / `a IS NOT b` (b not NULL, TRUE or FALSE).
_IS_NOT = re.compile(r"\bIS\s+NOT\s+(?!NULL\b|TRUE\b|FALSE\b|DISTINCT\b)", re.IGNORECASE)
_IS = re.compile(r"\bIS\s+(?!NOT\b|NULL\b|TRUE\b|FALSE\b|DISTINCT\b)", re.IGNORECASE)
# `CASE WHEN ? THEN`: SQLite takes any number as a truth value, PostgreSQL a boolean.
_WHEN_PARAM = re.compile(r"\bWHEN\s+\?\s+THEN\b", re.IGNORECASE)
_ROWS_FIRST = re.compile(r"^\s*\(*\s*(SELECT|WITH|VALUES|SHOW|TABLE)\b", re.IGNORECASE)


def _placeholders(sql: str) -> str:
    out: list[str] = []
    n = 0
    i = 0
    quote: str | None = None
    while i < len(sql):
        ch = sql[i]
        if quote is not None:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end < 0 else end
            out.append(sql[i:end])
            i = end
            continue
        elif ch == "?":
            digits = i + 1
            while digits < len(sql) and sql[digits].isdigit():
                digits += 1
            if digits > i + 1:  # SQLite's numbered ?NNN is PostgreSQL's $NNN
                out.append("$" + sql[i + 1 : digits])
                i = digits
                continue
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _top_level_commas(sql: str, start: int) -> tuple[int, int]:
    """(number of top-level commas, index of the closing parenthesis) of the call
    whose opening parenthesis is at `start`."""
    depth = 0
    commas = 0
    quote: str | None = None
    for i in range(start, len(sql)):
        ch = sql[i]
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return commas, i
        elif ch == "," and depth == 1:
            commas += 1
    return commas, len(sql)


def _scalar_minmax(sql: str) -> str:
    pieces: list[str] = []
    pos = 0
    for found in _MINMAX.finditer(sql):
        if found.start() < pos:
            continue
        paren = found.end() - 1
        commas, _ = _top_level_commas(sql, paren)
        if commas >= 1:
            name = "greatest" if found.group(1).lower() == "max" else "least"
            pieces.append(sql[pos : found.start()])
            pieces.append(name + "(")
            pos = found.end()
    pieces.append(sql[pos:])
    return "".join(pieces)


_GROUP_CONCAT = re.compile(r"\bgroup_concat\s*\(", re.IGNORECASE)


def _group_concat(sql: str) -> str:
    """group_concat(x[, sep]) -> string_agg(x, sep), the separator ',' by default."""
    pieces: list[str] = []
    pos = 0
    for found in _GROUP_CONCAT.finditer(sql):
        if found.start() < pos:
            continue
        commas, close = _top_level_commas(sql, found.end() - 1)
        inner = sql[found.end() : close]
        pieces.append(sql[pos : found.start()])
        pieces.append(f"string_agg({inner}" + (")" if commas else ", ',')"))
        pos = close + 1
    pieces.append(sql[pos:])
    return "".join(pieces)


def _insert_or_ignore(sql: str) -> str:
    if not _INSERT_OR_IGNORE.search(sql):
        return sql
    sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql, count=1)
    returning = _RETURNING.search(sql)
    if returning:
        head, tail = sql[: returning.start()], sql[returning.start() :]
        return f"{head.rstrip()} ON CONFLICT DO NOTHING {tail}"
    return f"{sql.rstrip().rstrip(';')} ON CONFLICT DO NOTHING"


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """The PostgreSQL form of one statement written for SQLite."""
    sql = _IS.sub("IS NOT DISTINCT FROM ", _IS_NOT.sub("IS DISTINCT FROM ", sql))
    sql = _WHEN_PARAM.sub("WHEN ?::integer <> 0 THEN", sql)
    return _placeholders(_group_concat(_scalar_minmax(_insert_or_ignore(sql))))


@lru_cache(maxsize=2048)
def returns_rows(sql: str) -> bool:
    """Whether the statement produces rows (a query, or DML with RETURNING)."""
    return bool(_ROWS_FIRST.match(sql) or _RETURNING.search(sql))
