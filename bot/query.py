"""An analyst's search query, analysed by detection and run by storage.

One notion of "matches" for alert rules and search: detection decides what a
word or phrase matches (`bot/detection/query.py`), storage looks the lemmas up
in the archive's index. Used by `chanwatch search`, `chanwatch export QUERY`
and the bot's /search.
"""

from __future__ import annotations

from functools import lru_cache

from bot.detection import analyze
from bot.detection.query import (
    Node,
    Not,
    Or,
    QueryMatcher,
    QuerySyntaxError,
    Term,
    has_phrase,
    lookups,
    parse_query,
)
from storage import search as store
from storage.db import Database
from storage.search import MARK_END, MARK_START, CompiledQuery, Filters, Hit, QueryError

__all__ = ["compile_query", "highlight", "search"]

SNIPPET_WORDS = 16


def _fts(node: Node, checked: bool) -> str | None:
    """The FTS5 query for a tree, or None for a part the index cannot decide (a
    phrase under NOT, when the text check decides instead)."""
    if isinstance(node, Term):
        words = lookups(node)
        if node.kind == "prefix":
            return store.fts_prefix([w.surface for w in words])
        # A phrase is looked up as all of its words; the check keeps the posts
        # where they stand as a phrase.
        return store.fts_all([store.fts_word(w.surface, w.lemmas) for w in words])
    if isinstance(node, Not):  # only under an AND; see below
        return None
    if isinstance(node, Or):
        parts = [_fts(child, checked) for child in node.children]
        return store.fts_any([p for p in parts if p is not None])
    positive = [_fts(c, checked) for c in node.children if not isinstance(c, Not)]
    expr = store.fts_all([p for p in positive if p is not None])
    for child in node.children:
        if isinstance(child, Not):
            if checked and has_phrase(child.child):
                continue  # the index would exclude posts holding the words anywhere
            excluded = _fts(child.child, checked)
            if excluded is not None:
                expr = store.fts_without(expr, excluded)
    return expr


def _window(text: str, spans: list[tuple[int, int]], words: int = SNIPPET_WORDS) -> str:
    """About `words` words of text around the first span, every span marked."""
    if not spans:
        return text[:200]
    first_start = spans[0][0]
    tokens = [(t.start, t.end) for t in analyze(text).tokens]
    first = next((i for i, (a, _b) in enumerate(tokens) if a >= first_start), 0)
    lo = max(0, first - words // 3)
    hi = min(len(tokens), lo + words)
    start = tokens[lo][0] if lo > 0 else 0
    end = tokens[hi - 1][1] if hi < len(tokens) else len(text)
    pieces = ["…" if lo > 0 else ""]
    pos = start
    for a, b in spans:
        if a < start or b > end:
            continue
        pieces.append(text[pos:a])
        pieces.append(MARK_START + text[a:b] + MARK_END)
        pos = b
    pieces.append(text[pos:end])
    pieces.append("…" if hi < len(tokens) else "")
    return "".join(pieces)


@lru_cache(maxsize=256)
def compile_query(query: str) -> CompiledQuery:
    """The analyst's query, ready for storage (QueryError explains a malformed one)."""
    try:
        node = parse_query(query)
    except QuerySyntaxError as exc:
        raise QueryError(str(exc)) from None
    matcher = QueryMatcher(node)
    checked = has_phrase(node)
    fts = _fts(node, checked)
    assert fts is not None

    def mark(text: str) -> str:
        return _window(text, matcher.spans(analyze(text)))

    def check(text: str) -> bool:
        return matcher.matches(analyze(text))

    return CompiledQuery(query, fts, check if checked else None, mark)


def highlight(text: str, query: CompiledQuery | str) -> str:
    """A snippet of text with the query's matches marked (MARK_START/MARK_END)."""
    compiled = compile_query(query) if isinstance(query, str) else query
    assert compiled.mark is not None
    return compiled.mark(text)


async def search(
    db: Database,
    query: str | CompiledQuery,
    filters: Filters | None = None,
    *,
    limit: int = 50,
    rank: bool = False,
) -> list[Hit]:
    """Posts matching the analyst's query, newest first (or best first with `rank`)."""
    compiled = compile_query(query) if isinstance(query, str) else query
    return await store.search(db, compiled, filters or Filters(), limit=limit, rank=rank)
