"""Full-text search over the archive (FTS5 over text and lemmas on SQLite; a
tsvector over both, weight A for the text and B for the lemmas, on PostgreSQL).

An analyst's query is parsed here and translated into an FTS5 query built only
from quoted strings, and into the same query as a tsquery built only from quoted
lexemes, so no user input can reach either as syntax:

* a word matches any inflected form (its lemmas in the `lemmas` column) or the
  word as typed (in `text`): `пленный` finds `пленных`;
* `"взяли в плен"` is a phrase over lemmas (or the exact words in `text`);
* `плен*` is a prefix over `text`;
* AND (or nothing), OR, NOT / `-word`, and parentheses combine them.
"""

from __future__ import annotations

import itertools
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.detection import analyze, morphology
from bot.detection.text import normalize_word
from storage.archive import post_key
from storage.db import Database
from storage.models import iso

# Highlight markers placed by snippet(); callers turn them into bold or **…**.
MARK_START = "\x02"
MARK_END = "\x03"
_SNIPPET_TOKENS = 16
_MAX_PHRASE_VARIANTS = 16
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
    """Posts whose text or lemmas match an FTS5 query (a tsquery on PostgreSQL),
    newest first.

    The posts rowid follows post time, so ORDER BY rowid is newest-first without
    sorting every hit.
    """
    deleted = "" if include_deleted else "AND p.deleted_at IS NULL"
    if db.dialect == "postgresql":
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


# --- parsing the analyst's query -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A word, a quoted phrase or a prefix, as the analyst typed it."""

    text: str
    kind: str  # "word", "phrase" or "prefix"


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Term | Not | And | Or

_QUOTES = {'"': '"', "«": "»", "“": "”", "„": "“"}
_OPERATORS = {"AND", "OR", "NOT"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "(", ")", "op", "term", "minus"
    value: str
    pos: int
    term: Term | None = None


def _lex(query: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Tok(ch, ch, i))
            i += 1
        elif ch in _QUOTES:
            close = query.find(_QUOTES[ch], i + 1)
            if close < 0:
                raise QueryError(f"unterminated quote starting at character {i + 1}: {query!r}")
            tokens.append(
                _Tok("term", query[i : close + 1], i, Term(query[i + 1 : close], "phrase"))
            )
            i = close + 1
        elif ch == "-" and i + 1 < n and not query[i + 1].isspace() and query[i + 1] not in "-)":
            tokens.append(_Tok("minus", ch, i))
            i += 1
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in '()"«“„':
                i += 1
            word = query[start:i]
            if word in _OPERATORS:
                tokens.append(_Tok("op", word, start))
            elif word.endswith("*"):
                tokens.append(_Tok("term", word, start, Term(word.rstrip("*"), "prefix")))
            else:
                tokens.append(_Tok("term", word, start, Term(word, "word")))
    return tokens


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _lex(query)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Node:
        if not self.tokens:
            raise QueryError("the query is empty: give at least one word to search for")
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise QueryError(f"unexpected {tok.value!r} at character {tok.pos + 1}")
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.value == "OR":
            self.i += 1
            children.append(self.and_expr(after=tok))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self, after: _Tok | None = None) -> Node:
        children = [self.unary(after)]
        while (tok := self.peek()) is not None and not (
            tok.kind == ")" or (tok.kind == "op" and tok.value == "OR")
        ):
            if tok.kind == "op" and tok.value == "AND":
                self.i += 1
                children.append(self.unary(after=tok))
            else:
                children.append(self.unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self, after: _Tok | None = None) -> Node:
        tok = self.peek()
        if tok is None or tok.kind == ")" or (tok.kind == "op" and tok.value in ("AND", "OR")):
            where = f"after {after.value!r} at character {after.pos + 1}" if after else "here"
            found = "the end of the query" if tok is None else repr(tok.value)
            raise QueryError(f"expected a word, phrase or '(' {where}, found {found}")
        if tok.kind in ("minus", "op"):  # NOT or -word
            self.i += 1
            return Not(self.unary(after=tok))
        if tok.kind == "(":
            self.i += 1
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != ")":
                raise QueryError(f"the '(' at character {tok.pos + 1} is never closed")
            self.i += 1
            return node
        self.i += 1
        assert tok.term is not None
        return tok.term


def parse_query(query: str) -> Node:
    """The analyst's query as a tree; QueryError explains what is wrong with it."""
    return _Parser(query).parse()


# --- translating to FTS5 --------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


# A quoted string is split into tokens as FTS5's unicode61 tokenizer and the
# archive's chanwatch_words() split it: runs of letters and digits, lower-cased.
_TOKEN = re.compile(r"[^\W_]+")
# No lexeme in the archive contains "_" (it separates words), so this never matches.
_TS_NOTHING = "'_'"


def _ts_lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def _ts_phrase(text: str, weight: str, *, prefix: bool = False) -> str:
    """A quoted string as a tsquery phrase restricted to one column (by weight)."""
    tokens = _TOKEN.findall(text.lower())
    if not tokens:
        return _TS_NOTHING
    parts = [f"{_ts_lexeme(token)}:{weight}" for token in tokens]
    if prefix:
        parts[-1] = f"{_ts_lexeme(tokens[-1])}:*{weight}"
    return parts[0] if len(parts) == 1 else "(" + " <-> ".join(parts) + ")"


@dataclass(frozen=True, slots=True)
class _Both:
    """One piece of the query, as FTS5 and as tsquery."""

    fts: str
    ts: str


@dataclass(slots=True)
class CompiledQuery:
    """The FTS5 query (and tsquery) for a user query, and what to highlight in the text."""

    source: str
    fts: str
    tsquery: str = ""
    lemmas: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    initials: set[str] = field(default_factory=set)  # first letters of the lemmas


def _words_of(term: Term) -> list[tuple[str, tuple[str, ...]]]:
    """(surface form, lemmas) of every word in a term."""
    tokens = analyze(term.text).tokens
    if not tokens:
        shown = term.text + ("*" if term.kind == "prefix" else "")
        raise QueryError(f"{shown!r} has no letters or digits to search for")
    return [(tok.text.lower(), tok.lemmas or (tok.norm,)) for tok in tokens]


def _compile_term(term: Term, out: CompiledQuery) -> _Both:
    words = _words_of(term)
    surface = " ".join(word for word, _ in words)
    if term.kind == "prefix":
        if len(term.text.strip()) < 2:
            raise QueryError(f"{term.text + '*'!r}: a prefix needs at least 2 letters")
        out.prefixes.add(words[-1][0])
        out.words.update(word for word, _ in words[:-1])
        return _Both(f"text : {_quote(surface)} *", _ts_phrase(surface, "A", prefix=True))
    out.words.update(word for word, _ in words)
    for _, lemmas in words:
        out.lemmas.update(lemmas)
    if len(words) == 1:
        variants: dict[str, None] = dict.fromkeys(words[0][1])
    else:
        # A phrase: every combination of the words' two likeliest lemmas (bounded).
        choices = [lemmas[:2] for _, lemmas in words]
        for i in reversed(range(len(choices))):
            if math.prod(len(c) for c in choices) <= _MAX_PHRASE_VARIANTS:
                break
            choices[i] = choices[i][:1]
        variants = dict.fromkeys(" ".join(combo) for combo in itertools.product(*choices))
    lemma_part = " OR ".join(_quote(v) for v in variants)
    ts_part = " | ".join(_ts_phrase(v, "B") for v in variants)
    return _Both(
        f"(lemmas : ({lemma_part}) OR text : {_quote(surface)})",
        f"({ts_part} | {_ts_phrase(surface, 'A')})",
    )


def _compile(node: Node, out: CompiledQuery) -> _Both:
    if isinstance(node, Term):
        return _compile_term(node, out)
    if isinstance(node, Not):
        raise QueryError(
            "a query cannot only exclude: put NOT after something to search for (a NOT b)"
        )
    if isinstance(node, Or):
        for child in node.children:
            if isinstance(child, Not):
                raise QueryError("OR NOT is not supported: exclude with AND NOT (a NOT b)")
        parts = [_compile(child, out) for child in node.children]
        return _Both(
            "(" + " OR ".join(p.fts for p in parts) + ")",
            "(" + " | ".join(p.ts for p in parts) + ")",
        )
    positive = [child for child in node.children if not isinstance(child, Not)]
    negative = [child.child for child in node.children if isinstance(child, Not)]
    if not positive:
        raise QueryError("a query cannot only exclude: add a word to search for (a NOT b)")
    ignored = CompiledQuery(out.source, "")  # excluded words are not highlighted
    parts = [_compile(child, out) for child in positive]
    fts = "(" + " AND ".join(p.fts for p in parts) + ")"
    ts = "(" + " & ".join(p.ts for p in parts) + ")"
    for child in negative:
        excluded = _compile(child, ignored)
        fts = f"({fts} NOT {excluded.fts})"
        ts = f"({ts} & !{excluded.ts})"
    return _Both(fts, ts)


def compile_query(query: str) -> CompiledQuery:
    """Translate the analyst's query into a safe FTS5 query (QueryError if malformed)."""
    out = CompiledQuery(query, "")
    both = _compile(parse_query(query), out)
    out.fts, out.tsquery = both.fts, both.ts
    out.initials = {lemma[:1] for lemma in out.lemmas}
    return out


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


def where_clause(filters: Filters, rowid: str = "p.id") -> tuple[list[str], list[Any]]:
    """SQL conditions (on posts aliased `p`) and their parameters."""
    parts: list[str] = []
    params: list[Any] = []
    if not filters.include_deleted:
        parts.append("p.deleted_at IS NULL")
    if filters.channels:
        parts.append(f"p.channel_id IN ({','.join('?' * len(filters.channels))})")
        params.extend(filters.channels)
    if filters.since:
        parts.append(f"{rowid} >= ?")
        params.append(post_key(filters.since, 0, 0))
        parts.append("p.date >= ?")
        params.append(iso(filters.since))
    if filters.until:
        parts.append(f"{rowid} < ?")
        params.append(post_key(filters.until + timedelta(seconds=_ROWID_MARGIN_S), 0, 0))
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


async def search(
    db: Database,
    query: str | CompiledQuery,
    filters: Filters = Filters(),
    *,
    limit: int = 50,
    rank: bool = False,
) -> list[Hit]:
    """Posts matching the analyst's query, newest first (or best first with `rank`)."""
    compiled = compile_query(query) if isinstance(query, str) else query
    await check_filters(db, filters)
    if limit < 1:
        raise QueryError("--limit must be at least 1")
    if db.dialect == "postgresql":
        return await _search_pg(db, compiled, filters, limit=limit, rank=rank)
    conditions, params = where_clause(filters, rowid="posts_fts.rowid")
    extra = "".join(f" AND {c}" for c in conditions)
    order = "posts_fts.rank" if rank else "posts_fts.rowid DESC"
    # CROSS JOIN keeps the FTS index as the outer loop, so rowid order needs no sort.
    sql = f"""SELECT p.id, p.channel_id, p.msg_id, p.date, p.text, p.deleted_at,
                     c.username, c.title, {"bm25(posts_fts)" if rank else "NULL"} AS score,
                     snippet(posts_fts, 0, ?, ?, '…', {_SNIPPET_TOKENS}) AS snip
              FROM posts_fts CROSS JOIN posts p ON p.id = posts_fts.rowid
              LEFT JOIN channels c ON c.id = p.channel_id
              WHERE posts_fts MATCH ?{extra}
              ORDER BY {order} LIMIT ?"""
    try:
        rows = await db.fetchall(sql, (MARK_START, MARK_END, compiled.fts, *params, limit))
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc) or "MATCH" in str(exc):
            raise QueryError(f"cannot search for {compiled.source!r}: {exc}") from None
        raise
    return [
        Hit(
            post_id=row["id"],
            channel_id=row["channel_id"],
            msg_id=row["msg_id"],
            date=row["date"],
            username=row["username"],
            title=row["title"],
            link=post_link(row["username"], row["channel_id"], row["msg_id"]),
            snippet=_snippet(row["snip"], row["text"], compiled),
            text=row["text"],
            deleted_at=row["deleted_at"],
            score=row["score"],
        )
        for row in rows
    ]


def fts_source(db: Database, compiled: CompiledQuery) -> tuple[str, str, str, str]:
    """(FROM clause joining the posts as `p`, the match condition, its parameter, the
    time-ordered id to order and page on) of a full-text selection on this backend."""
    if db.dialect == "postgresql":
        source = "posts_fts f JOIN posts p ON p.id = f.id"
        return source, "f.tsv @@ ?::tsquery", compiled.tsquery, "f.id"
    source = "posts_fts CROSS JOIN posts p ON p.id = posts_fts.rowid"
    return source, "posts_fts MATCH ?", compiled.fts, "posts_fts.rowid"


async def _search_pg(
    db: Database, compiled: CompiledQuery, filters: Filters, *, limit: int, rank: bool
) -> list[Hit]:
    """The PostgreSQL search: the GIN index finds the hits; ORDER BY the time-ordered id
    lets the planner walk the primary key backwards for common words instead of
    sorting every hit. Snippets are made here from the text (same markers)."""
    conditions, params = where_clause(filters, rowid="f.id")
    extra = "".join(f" AND {c}" for c in conditions)
    score = "ts_rank_cd(f.tsv, ?::tsquery)" if rank else "NULL::real"
    order = "score DESC, f.id DESC" if rank else "f.id DESC"
    sql = f"""SELECT p.id, p.channel_id, p.msg_id, p.date, p.text, p.deleted_at,
                     c.username, c.title, {score} AS score
              FROM posts_fts f JOIN posts p ON p.id = f.id
              LEFT JOIN channels c ON c.id = p.channel_id
              WHERE f.tsv @@ ?::tsquery{extra}
              ORDER BY {order} LIMIT ?"""
    head = (compiled.tsquery, compiled.tsquery) if rank else (compiled.tsquery,)
    rows = await db.fetchall(sql, (*head, *params, limit))
    return [
        Hit(
            post_id=row["id"],
            channel_id=row["channel_id"],
            msg_id=row["msg_id"],
            date=row["date"],
            username=row["username"],
            title=row["title"],
            link=post_link(row["username"], row["channel_id"], row["msg_id"]),
            snippet=_one_line(highlight(row["text"], compiled)),
            text=row["text"],
            deleted_at=row["deleted_at"],
            score=row["score"],
        )
        for row in rows
    ]


def _snippet(fts_snippet: str | None, text: str, compiled: CompiledQuery) -> str:
    """FTS5's snippet when it highlighted the text; otherwise (a match on lemmas
    only, e.g. another inflection) highlight the words whose lemmas matched."""
    if fts_snippet and MARK_START in fts_snippet:
        return _one_line(fts_snippet)
    return _one_line(highlight(text, compiled))


_WORD = re.compile(r"[^\W_]+(?:['’ʼ][^\W_]+)*")


def _matches(word: str, compiled: CompiledQuery) -> bool:
    low = word.lower()
    if low in compiled.words or any(low.startswith(p) for p in compiled.prefixes):
        return True
    # Inflection keeps the first letter (bar a few suppletive forms): skip the lookup.
    if not compiled.lemmas or low[:1] not in compiled.initials:
        return False
    return not compiled.lemmas.isdisjoint(
        morphology.word_lemmas(normalize_word(word), morphology.RU_UK)
    )


def highlight(text: str, compiled: CompiledQuery, window: int = _SNIPPET_TOKENS) -> str:
    """A window of `text` around the first matching word, matches marked.

    Used when FTS5 matched only the lemmas column, so its snippet of the text has
    nothing marked. Word by word with cached lemma lookups: no full analysis.
    """
    words = list(_WORD.finditer(text))
    if not words:
        return text[:200]
    first = next((i for i, w in enumerate(words) if _matches(w.group(), compiled)), 0)
    lo = max(0, first - window // 3)
    hi = min(len(words), lo + window)
    pieces: list[str] = ["…" if lo > 0 else text[: words[lo].start()]]
    pos = words[lo].start()
    for i in range(lo, hi):
        word = words[i]
        pieces.append(text[pos : word.start()])
        hit = i == first or (i > first and _matches(word.group(), compiled))
        pieces.append(MARK_START + word.group() + MARK_END if hit else word.group())
        pos = word.end()
    pieces.append("…" if hi < len(words) else text[pos:])
    return "".join(pieces)


_SPACE = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
