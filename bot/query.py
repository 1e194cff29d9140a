"""An analyst's search query, analysed by detection and run by storage.

One notion of "matches" for alert rules and search: detection decides what a
word or phrase matches (`bot/detection/query.py`), storage looks the lemmas up
in the archive's index. Used by `chanwatch search`, `chanwatch export QUERY`
and the bot's /search.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.detection import analyze
from bot.detection.query import (
    And,
    Node,
    Not,
    Or,
    QueryMatcher,
    QuerySyntaxError,
    Term,
    WordLookup,
    has_phrase,
    lookups,
    parse_query,
    terms,
)
from storage import search as store
from storage.db import Database
from storage.search import MARK_END, MARK_START, CompiledQuery, Filters, Hit, QueryError

__all__ = ["compile_query", "highlight", "prepare", "search"]

SNIPPET_WORDS = 16
# A word with more lemmas to look up than this (a place name: its adjectives and
# demonyms) is looked up only by those the archive holds; see `prepare`.
PRUNE_ABOVE = 8


def _fts(node: Node, checked: bool, present: frozenset[str] | None) -> str | None:
    """The FTS5 query for a tree, or None for a part the index cannot decide (a
    phrase under NOT, when the text check decides instead). `present`: the
    lemmas the archive holds, when known, to leave out forms it does not."""
    if isinstance(node, Term):
        words = lookups(node)
        if node.kind == "prefix":
            return store.fts_prefix([w.surface for w in words])
        # A phrase is looked up as all of its words; the check keeps the posts
        # where they stand as a phrase.
        return store.fts_all([store.fts_word(w.surface, _kept(w, present)) for w in words])
    if isinstance(node, Not):  # only under an AND; see below
        return None
    if isinstance(node, Or):
        parts = [_fts(child, checked, present) for child in node.children]
        return store.fts_any([p for p in parts if p is not None])
    positive = [_fts(c, checked, present) for c in node.children if not isinstance(c, Not)]
    expr = store.fts_all([p for p in positive if p is not None])
    for child in node.children:
        if isinstance(child, Not):
            if checked and has_phrase(child.child):
                continue  # the index would exclude posts holding the words anywhere
            excluded = _fts(child.child, checked, present)
            if excluded is not None:
                expr = store.fts_without(expr, excluded)
    return expr


def _kept(word: WordLookup, present: frozenset[str] | None) -> tuple[str, ...]:
    if present is None or len(word.lemmas) <= PRUNE_ABOVE:
        return word.lemmas
    return tuple(lemma for lemma in word.lemmas if lemma in present)


def _many_forms(node: Node) -> list[str]:
    """The lemmas of the words that have more than PRUNE_ABOVE of them."""
    return [
        lemma
        for term in terms(node)
        if term.kind != "prefix"
        for word in lookups(term)
        if len(word.lemmas) > PRUNE_ABOVE
        for lemma in word.lemmas
    ]


_WORD = re.compile(r"[^\W_]+(?:['’ʼ][^\W_]+)*")


def _window(text: str, matcher: QueryMatcher, words: int = SNIPPET_WORDS) -> str:
    """About `words` words of text around the first matching word, matches marked.
    Word by word with cached lemma lookups: a snippet needs no sentence analysis."""
    found = list(_WORD.finditer(text))
    if not found:
        return text[:200]
    first = next((i for i, w in enumerate(found) if matcher.word_matches(w.group())), 0)
    lo = max(0, first - words // 3)
    hi = min(len(found), lo + words)
    pieces: list[str] = ["…" if lo > 0 else text[: found[lo].start()]]
    pos = found[lo].start()
    for i in range(lo, hi):
        word = found[i]
        pieces.append(text[pos : word.start()])
        hit = i == first or (i > first and matcher.word_matches(word.group()))
        pieces.append(MARK_START + word.group() + MARK_END if hit else word.group())
        pos = word.end()
    pieces.append("…" if hi < len(found) else text[pos:])
    return "".join(pieces)


# Letters whose upper- and lower-case forms both normalize to the lower one (no
# NFKC change, no look-alike or ё fold), so a word of only these letters, in any case,
# has the query word's own normal form.
_PLAIN_LETTERS = frozenset("абвгдежзийклмнопрстуфхцчшщъыьэюяієїґabcdefghijklmnopqrstuvwxyz")
# Around a literal phrase: before it, the start of the text or a character that can
# belong neither to its first word (letters, digits, apostrophes, stress marks,
# invisible joiners) nor to a URL running into it; after it, punctuation that ends at
# a space or the end of the text (so neither a word nor a domain name goes on).
_BEFORE = r'(?<![^\s(«"])'
_AFTER = r'(?=[,;:!?.…)»"”]*(?:\s|$))'


def _literal(node: Node) -> tuple[re.Pattern[str], ...] | None:
    """For a query of phrases and words only (one, or several under AND), at least one
    phrase: a pattern per term that finds it exactly as typed, any case, only spaces
    between its words. Such an occurrence matches by the rule too: each of its words
    has the typed word's normal form, which is among the word's keys, the words are
    consecutive tokens, and only spaces lie between them, so no sentence ends there.
    So a text where every pattern is found matches without analysing it; any other
    text is analysed. None for any other query."""
    children = node.children if isinstance(node, And) else (node,)
    patterns: list[re.Pattern[str]] = []
    for child in children:
        if not isinstance(child, Term) or child.kind == "prefix":
            return None
        words = [token.norm for token in analyze(child.text).tokens]
        if not words or not all(word and set(word) <= _PLAIN_LETTERS for word in words):
            return None
        if "www" in words:  # "www." is where a URL begins, and URLs hold no words
            return None
        spelled = " +".join("".join(f"[{ch}{ch.upper()}]" for ch in word) for word in words)
        patterns.append(re.compile(_BEFORE + spelled + _AFTER))
    return tuple(patterns)


def _parse(query: str) -> Node:
    try:
        return parse_query(query)
    except QuerySyntaxError as exc:
        raise QueryError(str(exc)) from None


@lru_cache(maxsize=256)
def compile_query(query: str, present: frozenset[str] | None = None) -> CompiledQuery:
    """The analyst's query, ready for storage (QueryError explains a malformed one).
    `present`: the lemmas the archive holds of the words with many (see `prepare`)."""
    node = _parse(query)
    matcher = QueryMatcher(node)
    checked = has_phrase(node)
    fts = _fts(node, checked, present)
    assert fts is not None

    def mark(text: str) -> str:
        return _window(text, matcher)

    literal = _literal(node) if checked else None

    def check(text: str) -> bool:
        if literal is not None and all(pattern.search(text) for pattern in literal):
            return True
        return matcher.matches(analyze(text))

    return CompiledQuery(query, fts, check if checked else None, mark)


async def prepare(db: Database, query: str) -> CompiledQuery:
    """The query compiled for this archive: a word with dozens of search forms (a
    place name) is looked up only by those the archive holds, which keeps the
    index query as short as a plain word's. The same posts match either way."""
    forms = _many_forms(_parse(query))
    if not forms:
        return compile_query(query)
    present = frozenset(await store.indexed_lemmas(db, forms))
    return compile_query(query, present)


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
    compiled = await prepare(db, query) if isinstance(query, str) else query
    return await store.search(db, compiled, filters or Filters(), limit=limit, rank=rank)
