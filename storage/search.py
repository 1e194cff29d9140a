"""Full-text search over the archive (FTS5 over text and lemmas on SQLite; on
PostgreSQL a tsvector over both, weight A for the words of the text and B for the
lemmas, see storage/migrations_pg/0001_archive.sql).

The analyst's query arrives analysed: the caller hands over the lemmas to look
up for each word (see `fts_word`), and for queries the index cannot decide
alone a check on the post's text. Storage knows nothing of languages.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.archive import post_key
from storage.db import Database
from storage.models import iso

# Highlight markers placed by snippet(); callers turn them into bold or **…**.
MARK_START = "\x02"
MARK_END = "\x03"
_SNIPPET_TOKENS = 16
# Candidates read per round when a check decides on the text.
_CHECK_ROUND = 200
# Rowids of posts in the same second collide and are probed upwards, so an upper
# time bound on rowids gets a margin; the exact date filter does the rest.
_ROWID_MARGIN_S = 3600


class QueryError(ValueError):
    """A search query or filter the archive cannot run, explained for the analyst."""


class FeatureUnavailable(QueryError):
    """The archive does not have the data a filter needs (yet)."""


async def match(
    db: Database, fts_query: str, *, include_deleted: bool = False, limit: int = 50
) -> list[sqlite3.Row]:
    """Posts whose text or lemmas match an FTS5 query, newest first.

    The posts rowid follows post time, so ORDER BY rowid is newest-first without
    sorting every hit.
    """
    deleted = "" if include_deleted else "AND p.deleted_at IS NULL"
    if db.dialect == "postgresql":  # `fts_query` is a tsquery there
        return await db.fetchall(
            f"""SELECT p.* FROM posts_fts f JOIN posts p ON p.id = f.id
                WHERE f.tsv @@ ?::tsquery {deleted} ORDER BY f.id DESC LIMIT ?""",
            (fts_query, limit),
        )
    return await db.fetchall(
        f"""SELECT p.* FROM posts_fts JOIN posts p ON p.id = posts_fts.rowid
            WHERE posts_fts MATCH ? {deleted}
            ORDER BY posts_fts.rowid DESC LIMIT ?""",
        (fts_query, limit),
    )


# --- the FTS5 query -------------------------------------------------------------
#
# The caller analyses the analyst's query (what a word matches is detection's
# business) and builds the FTS5 query from these pieces, which quote every
# string so no user input can reach FTS5 as syntax.


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class FtsQuery(str):
    """An FTS5 query that carries the same query as a PostgreSQL tsquery in `ts`,
    built from quoted lexemes only. The pieces below build both at once."""

    ts: str

    def __new__(cls, fts: str, ts: str) -> FtsQuery:
        query = super().__new__(cls, fts)
        query.ts = ts
        return query


# A quoted string is split into tokens as FTS5's unicode61 tokenizer and the
# archive's chanwatch_words() split it: runs of letters and digits, lower-cased.
_TOKEN = re.compile(r"[^\W_]+")
# No lexeme in the archive contains "_" (it separates words), so this never matches.
_TS_NOTHING = "'_'"


def _ts_lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def ts_phrase(text: str, weight: str, *, prefix: bool = False) -> str:
    """A quoted string as a tsquery phrase in one column (A: text, B: lemmas)."""
    tokens = _TOKEN.findall(text.lower())
    if not tokens:
        return _TS_NOTHING
    parts = [f"{_ts_lexeme(token)}:{weight}" for token in tokens]
    if prefix:
        parts[-1] = f"{_ts_lexeme(tokens[-1])}:*{weight}"
    return parts[0] if len(parts) == 1 else "(" + " <-> ".join(parts) + ")"


def _ts_tokens(text: str) -> str:
    """Every token of `text`, in any column and any order."""
    tokens = _TOKEN.findall(text.lower())
    return " & ".join(_ts_lexeme(token) for token in tokens) if tokens else _TS_NOTHING


def _ts(part: str) -> str:
    ts = getattr(part, "ts", None)
    if ts is None:
        raise QueryError(f"this query cannot run on PostgreSQL: {part!r} has no tsquery")
    return ts


def fts_word(surface: str, lemmas: Sequence[str]) -> FtsQuery:
    """A word: any of its lemmas in the `lemmas` column, or the word as typed in `text`."""
    kept = [lemma for lemma in dict.fromkeys(lemmas) if lemma]
    alternatives = " OR ".join(_quote(lemma) for lemma in kept)
    if not alternatives:
        return FtsQuery(f"text : {_quote(surface)}", ts_phrase(surface, "A"))
    ts = " | ".join([*(ts_phrase(lemma, "B") for lemma in kept), ts_phrase(surface, "A")])
    return FtsQuery(f"(lemmas : ({alternatives}) OR text : {_quote(surface)})", f"({ts})")


def fts_prefix(words: Sequence[str]) -> FtsQuery:
    """Words of the text, the last one a prefix."""
    text = " ".join(words)
    return FtsQuery(f"text : {_quote(text)} *", ts_phrase(text, "A", prefix=True))


def fts_all(parts: Sequence[str]) -> FtsQuery | str:
    if len(parts) == 1:
        return parts[0]
    return FtsQuery("(" + " AND ".join(parts) + ")", "(" + " & ".join(_ts(p) for p in parts) + ")")


def fts_any(parts: Sequence[str]) -> FtsQuery | str:
    if len(parts) == 1:
        return parts[0]
    return FtsQuery("(" + " OR ".join(parts) + ")", "(" + " | ".join(_ts(p) for p in parts) + ")")


def fts_without(expr: str, excluded: str) -> FtsQuery:
    return FtsQuery(f"({expr} NOT {excluded})", f"({_ts(expr)} & !{_ts(excluded)})")


async def indexed_lemmas(db: Database, lemmas: Sequence[str]) -> set[str]:
    """Which of these lemmas occur in the archive's `lemmas` column, in one query
    (a place name's search forms are dozens, of which a few exist)."""
    known: set[str] = getattr(db, "held_lemmas", set())
    held = {lemma for lemma in lemmas if lemma in known}
    lemmas = [lemma for lemma in lemmas if lemma not in known]
    if not lemmas:
        return held
    found = await _indexed_lemmas(db, lemmas)
    known.update(found)
    return held | found


async def _indexed_lemmas(db: Database, lemmas: Sequence[str]) -> set[str]:
    if db.dialect == "postgresql":
        # Asked without weight or word order ('a' & 'b' for a lemma of two tokens): the
        # GIN index answers that alone, where 'a':B <-> 'b':B reads every candidate's
        # tsvector. It may keep a lemma the archive holds only in texts or apart, which
        # changes no result: a lemma is left out of the query only when no post has it.
        wanted = list(dict.fromkeys(lemmas))
        rows = await db.fetchall(
            """SELECT t.lemma FROM unnest(?::text[], ?::text[]) AS t(lemma, q)
               WHERE EXISTS (SELECT 1 FROM posts_fts WHERE tsv @@ t.q::tsquery)""",
            (wanted, [_ts_tokens(lemma) for lemma in wanted]),
        )
        return {row[0] for row in rows}
    rows = await db.fetchall(
        """SELECT value FROM json_each(?) WHERE EXISTS (
               SELECT 1 FROM posts_fts
               WHERE posts_fts MATCH ('lemmas : "' || replace(value, '"', '""') || '"'))""",
        (json.dumps(list(lemmas), ensure_ascii=False),),
    )
    return {row[0] for row in rows}


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A query ready to run: the FTS5 query, and, when the index alone cannot decide
    (phrases: word order, sentences), `check`, which decides on a candidate's text.
    `mark` wraps the matched words of a text in MARK_START/MARK_END around the
    first one."""

    source: str
    fts: str
    check: Callable[[str], bool] | None = None
    mark: Callable[[str], str] | None = None


# --- filters --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    channels: tuple[int, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    include_deleted: bool = False
    claims: bool = False
    media_only: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "since": iso(self.since) if self.since else None,
            "until": iso(self.until) if self.until else None,
            "include_deleted": self.include_deleted,
            "claims": self.claims,
            "media_only": self.media_only,
        }


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_when(value: str, *, end: bool, option: str) -> datetime:
    """A --since/--until value: a day (whole day, UTC) or an ISO date and time."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"{option}: not a date: {value!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and _DATE_ONLY.match(text):
        moment += timedelta(days=1, seconds=-1)
    return moment.astimezone(UTC)


async def resolve_channels(db: Database, refs: Sequence[str]) -> tuple[int, ...]:
    """Channel ids for usernames (with or without @), t.me links or numeric ids."""
    ids: list[int] = []
    for ref in refs:
        name = ref.strip().removeprefix("https://").removeprefix("t.me/").removeprefix("@")
        if name.lstrip("-").isdigit():
            number = int(name)
            if number < 0:  # the Bot API form -100<id>
                number = int(str(-number).removeprefix("100"))
            row = await db.fetchone("SELECT id FROM channels WHERE id = ?", (number,))
        else:
            row = await db.fetchone("SELECT id FROM channels WHERE username = ?", (name,))
        if row is None:
            raise QueryError(f"--channel {ref}: no such channel in this archive")
        ids.append(row[0])
    return tuple(dict.fromkeys(ids))


async def has_column(db: Database, table: str, column: str) -> bool:
    return column in await db.columns(table)


async def check_filters(db: Database, filters: Filters) -> None:
    if filters.claims and not await has_column(db, "posts", "claim_label"):
        raise FeatureUnavailable(
            "--claims is not available in this archive yet: claim detection results are "
            "not stored in it (they arrive with a later version)"
        )
    if filters.since and filters.until and filters.since > filters.until:
        raise QueryError("--since is after --until: nothing can match")


def _id_bounds(filters: Filters, rowid: str) -> tuple[list[str], list[Any]]:
    """Conditions on the time-ordered id that --since/--until imply (with a margin)."""
    parts: list[str] = []
    params: list[Any] = []
    if filters.since:
        parts.append(f"{rowid} >= ?")
        params.append(post_key(filters.since, 0, 0))
    if filters.until:
        parts.append(f"{rowid} < ?")
        params.append(post_key(filters.until + timedelta(seconds=_ROWID_MARGIN_S), 0, 0))
    return parts, params


def where_clause(filters: Filters, rowid: str = "p.id") -> tuple[list[str], list[Any]]:
    """SQL conditions (on posts aliased `p`) and their parameters."""
    parts: list[str] = []
    params: list[Any] = []
    if not filters.include_deleted:
        parts.append("p.deleted_at IS NULL")
    if filters.channels:
        parts.append(f"p.channel_id IN ({','.join('?' * len(filters.channels))})")
        params.extend(filters.channels)
    bounds, bound_params = _id_bounds(filters, rowid)
    parts.extend(bounds)
    params.extend(bound_params)
    if filters.since:
        parts.append("p.date >= ?")
        params.append(iso(filters.since))
    if filters.until:
        parts.append("p.date <= ?")
        params.append(iso(filters.until))
    if filters.claims:
        parts.append("p.claim_label = 'claim'")
    if filters.media_only:
        parts.append("EXISTS (SELECT 1 FROM media m WHERE m.post_id = p.id)")
    return parts, params


# --- searching ------------------------------------------------------------------


def post_link(username: str | None, channel_id: int, msg_id: int) -> str:
    if username:
        return f"https://t.me/{username}/{msg_id}"
    return f"https://t.me/c/{channel_id}/{msg_id}"


@dataclass(frozen=True, slots=True)
class Hit:
    post_id: int
    channel_id: int
    msg_id: int
    date: str
    username: str | None
    title: str | None
    link: str
    snippet: str  # matches wrapped in MARK_START / MARK_END
    text: str
    deleted_at: str | None
    score: float | None = None
    claim_label: str | None = None  # the claim detector's verdict, where stored
    claim_score: float | None = None


async def search(
    db: Database,
    query: CompiledQuery,
    filters: Filters = Filters(),
    *,
    limit: int = 50,
    rank: bool = False,
) -> list[Hit]:
    """Posts matching the query, newest first (or best first with `rank`)."""
    await check_filters(db, filters)
    if limit < 1:
        raise QueryError("--limit must be at least 1")
    pg = db.dialect == "postgresql"
    conditions, params = where_clause(filters, rowid="f.id" if pg else "posts_fts.rowid")
    extra = "".join(f" AND {c}" for c in conditions)
    order = "posts_fts.rank" if rank else "posts_fts.rowid DESC"
    claim = (
        "p.claim_label, p.claim_score"
        if await has_column(db, "posts", "claim_label")
        else "NULL AS claim_label, NULL AS claim_score"
    )
    # CROSS JOIN keeps the FTS index as the outer loop, so rowid order needs no sort.
    sql = f"""SELECT p.id, p.channel_id, p.msg_id, p.date, p.text, p.deleted_at, {claim},
                     c.username, c.title, {"bm25(posts_fts)" if rank else "NULL"} AS score,
                     snippet(posts_fts, 0, ?, ?, '…', {_SNIPPET_TOKENS}) AS snip
              FROM posts_fts CROSS JOIN posts p ON p.id = posts_fts.rowid
              LEFT JOIN channels c ON c.id = p.channel_id
              WHERE posts_fts MATCH ?{extra}
              ORDER BY {order} LIMIT ? OFFSET ?"""
    head: tuple[Any, ...] = (MARK_START, MARK_END, query.fts)
    if pg:
        # The GIN index finds the hits; ORDER BY the time-ordered id lets the planner
        # walk the primary key backwards for common words instead of sorting them all.
        # Snippets come from the caller's marking of the text.
        ts = _ts(query.fts)
        score = "ts_rank_cd(f.tsv, ?::tsquery)" if rank else "NULL::real"
        sql = f"""SELECT p.id, p.channel_id, p.msg_id, p.date, p.text, p.deleted_at, {claim},
                         c.username, c.title, {score} AS score, NULL AS snip
                  FROM posts_fts f JOIN posts p ON p.id = f.id
                  LEFT JOIN channels c ON c.id = p.channel_id
                  WHERE f.tsv @@ ?::tsquery{extra}
                  ORDER BY {"score DESC, f.id DESC" if rank else "f.id DESC"} LIMIT ? OFFSET ?"""
        head = (ts, ts) if rank else (ts,)
    if pg and query.check is not None and not rank:
        loose = _unweighted(head[0])
        if loose is not None:
            return await _checked_pg(db, query, filters, loose, claim, extra, params, limit)
    hits: list[Hit] = []
    offset = 0
    while len(hits) < limit:
        page = limit if query.check is None else max(_CHECK_ROUND, limit)
        try:
            rows = await db.fetchall(sql, (*head, *params, page, offset))
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc) or "MATCH" in str(exc):
                raise QueryError(f"cannot search for {query.source!r}: {exc}") from None
            raise
        for row in rows:
            if query.check is not None and not query.check(row["text"]):
                continue
            hits.append(_hit(row, query))
            if len(hits) == limit:
                break
        if len(rows) < page or query.check is None:
            break
        offset += page
    return hits


_WEIGHTED = re.compile(r"':(\*?)[AB]+")
_PHRASE_OP = re.compile(r"<(?:-|\d+)>")
# Candidates of a checked query read per round on PostgreSQL: the first round a
# little more than the hits wanted (a phrase of common words is walked newest first
# along the primary key, reading each post's tsvector until enough candidates are
# found, so every candidate asked for costs), later rounds as many as the share of
# candidates kept so far says are missing, with a margin (doubling while none was
# kept: a --channel filter can leave few of them), up to the last.
_CANDIDATES_MIN = 16
_CANDIDATES_MAX = 12_800


def _first_round(limit: int) -> int:
    return limit + limit // 4 + 4


def _next_round(page: int, seen: int, kept: int, missing: int) -> int:
    """Candidates to ask for next, after `seen` of which `kept` were hits."""
    wanted = page * 2 if kept == 0 else -(-missing * seen * 5 // (kept * 4)) + 4
    return min(max(wanted, _CANDIDATES_MIN), _CANDIDATES_MAX)


def _unweighted(ts: str) -> str | None:
    """A tsquery that matches at least the posts `ts` matches, with no weights and no
    word order, so the GIN index decides it alone without reading any tsvector; None
    when `ts` excludes words (dropping a weight under NOT would match fewer)."""
    if "!" in ts:
        return None
    unweighted = _WEIGHTED.sub(lambda found: "':*" if found.group(1) else "'", ts)
    return _PHRASE_OP.sub("&", unweighted)


# A word in more than this share of posts is left out of the candidates' query when
# others remain: its GIN posting list is most of the index (`в` is in three posts of
# four) and barely narrows the candidates, which the weighted query checks anyway.
_COMMON_SHARE = 0.5
# How long an open archive keeps the server's word statistics before asking again.
_COMMON_TTL_S = 3600.0
_TS_TOKEN = re.compile(r"'(?:[^']|'')*'(?::\*)?|[&|()]")

_TsNode = tuple[str, Any]  # ("lex", text) | ("and", [nodes]) | ("or", [nodes])


async def _common_lexemes(db: Database) -> frozenset[str]:
    """Lexemes in more than _COMMON_SHARE of the posts, by the server's statistics
    (none before the table was first analysed)."""
    cached = db.common_lexemes
    now = time.monotonic()
    if cached is not None and now - cached[0] < _COMMON_TTL_S:
        return cached[1]
    rows = await db.fetchall(
        """SELECT e.lexeme FROM pg_stats s,
                  unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)
                  AS e(lexeme, share)
           WHERE s.schemaname = current_schema() AND s.tablename = 'posts_fts'
             AND s.attname = 'tsv' AND e.share > ?""",
        (_COMMON_SHARE,),
    )
    found = frozenset(row[0] for row in rows if row[0] is not None)
    db.common_lexemes = (now, found)
    return found


def _ts_parse(tokens: list[str], at: int = 0) -> tuple[_TsNode, int]:
    """An OR of ANDs of lexemes and parenthesized groups, from `at` to the closing
    parenthesis or the end; (node, index after it)."""
    alternatives: list[_TsNode] = []
    factors: list[_TsNode] = []
    while at < len(tokens):
        token = tokens[at]
        at += 1
        if token == "(":
            node, at = _ts_parse(tokens, at)
            factors.append(node)
        elif token == ")":
            break
        elif token == "|":
            alternatives.append(_ts_all(factors))
            factors = []
        elif token != "&":
            factors.append(("lex", token))
    alternatives.append(_ts_all(factors))
    return (alternatives[0] if len(alternatives) == 1 else ("or", alternatives)), at


def _ts_all(factors: list[_TsNode]) -> _TsNode:
    return factors[0] if len(factors) == 1 else ("and", factors)


def _ts_common(node: _TsNode, common: frozenset[str]) -> bool:
    kind, value = node
    if kind == "lex":
        return value.endswith("'") and value[1:-1].replace("''", "'") in common
    return kind == "or" and all(_ts_common(child, common) for child in value)


def _ts_pruned(node: _TsNode, common: frozenset[str]) -> str:
    kind, value = node
    if kind == "lex":
        return value
    children = [_ts_pruned(child, common) for child in value]
    if kind == "and":
        kept = [
            c for c, child in zip(children, value, strict=True) if not _ts_common(child, common)
        ]
        children = kept or children
        return children[0] if len(children) == 1 else "(" + " & ".join(children) + ")"
    return "(" + " | ".join(children) + ")"


def _without_common(loose: str, common: frozenset[str]) -> str:
    """`loose` (lexemes, & | and parentheses only) without the words of an AND that are
    only common lexemes, as long as something else stays: it matches at least what
    `loose` matches."""
    if not common:
        return loose
    tokens = _TS_TOKEN.findall(loose)
    node, _ = _ts_parse(tokens)
    return _ts_pruned(node, common)


async def _checked_pg(
    db: Database,
    query: CompiledQuery,
    filters: Filters,
    loose: str,
    claim: str,
    extra: str,
    params: list[Any],
    limit: int,
) -> list[Hit]:
    """A query the text check decides (phrases), on PostgreSQL: the newest candidates
    by the index alone (ids only), then those that match the weighted query and the
    filters, newest first, then the check, until `limit` hits. Checking the weighted
    query on every hit before sorting them reads every candidate's tsvector: for a
    phrase of common words, thousands."""
    assert query.check is not None
    ts = _ts(query.fts)
    loose = _without_common(loose, await _common_lexemes(db))
    bounds, bound_params = _id_bounds(filters, "id")
    within = "".join(f" AND {b}" for b in bounds)
    hits: list[Hit] = []
    before: int | None = None
    page = _first_round(limit)
    seen = 0
    while len(hits) < limit:
        older = "" if before is None else " AND id < ?"
        ids = [
            row[0]
            for row in await db.fetchall(
                f"""SELECT id FROM posts_fts WHERE tsv @@ ?::tsquery{within}{older}
                    ORDER BY id DESC LIMIT ?""",
                (loose, *bound_params, *(() if before is None else (before,)), page),
            )
        ]
        if not ids:
            break
        rows = await db.fetchall(
            f"""SELECT p.id, p.channel_id, p.msg_id, p.date, p.text, p.deleted_at, {claim},
                       c.username, c.title, NULL::real AS score, NULL AS snip
                FROM posts_fts f JOIN posts p ON p.id = f.id
                LEFT JOIN channels c ON c.id = p.channel_id
                WHERE f.id = ANY(?::bigint[]) AND f.tsv @@ ?::tsquery{extra}
                ORDER BY f.id DESC""",
            (ids, ts, *params),
        )
        for row in rows:
            if query.check(row["text"]):
                hits.append(_hit(row, query))
                if len(hits) == limit:
                    break
        if len(ids) < page:
            break
        before = ids[-1]
        seen += len(ids)
        page = _next_round(page, seen, len(hits), limit - len(hits))
    return hits


def _hit(row: sqlite3.Row, query: CompiledQuery) -> Hit:
    return Hit(
        post_id=row["id"],
        channel_id=row["channel_id"],
        msg_id=row["msg_id"],
        date=row["date"],
        username=row["username"],
        title=row["title"],
        link=post_link(row["username"], row["channel_id"], row["msg_id"]),
        snippet=_snippet(row["snip"], row["text"], query),
        text=row["text"],
        deleted_at=row["deleted_at"],
        score=row["score"],
        claim_label=row["claim_label"],
        claim_score=row["claim_score"],
    )


def fts_source(db: Database, query: CompiledQuery) -> tuple[str, str, str, str]:
    """(FROM clause joining the posts as `p`, the match condition, its parameter, the
    time-ordered id to order and page on) of a full-text selection on this backend."""
    if db.dialect == "postgresql":
        source = "posts_fts f JOIN posts p ON p.id = f.id"
        return source, "f.tsv @@ ?::tsquery", _ts(query.fts), "f.id"
    source = "posts_fts CROSS JOIN posts p ON p.id = posts_fts.rowid"
    return source, "posts_fts MATCH ?", query.fts, "posts_fts.rowid"


def _snippet(fts_snippet: str | None, text: str, query: CompiledQuery) -> str:
    """FTS5's snippet when it highlighted the text and the index decided alone;
    otherwise (a match on lemmas only, another inflection, a checked phrase) the
    caller's marking of the words that matched."""
    if fts_snippet and MARK_START in fts_snippet and query.check is None or query.mark is None:
        return _one_line(fts_snippet or text[:200])
    return _one_line(query.mark(text))


_SPACE = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
