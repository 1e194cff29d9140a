"""What a search query means, in the same terms as keyword rules.

A query word matches a post exactly when a keyword rule of that word would
(`Белгород` finds `Белгородской`, `Київ` finds `Киеве`, `пленный` finds
`пленных`); a quoted phrase matches as a phrase rule does (words in order, a
small gap allowed, one sentence). The syntax: words, "phrases", prefix*,
AND (or nothing), OR, NOT / -word and parentheses. Punctuation that is not
part of a word (`—`, `+`, `/`) is ignored.

This module only analyses the query: `lookups` lists, per word, every lemma a
post's `lemmas` column may hold for it (storage turns that into its own query
language), and `QueryMatcher` decides on a post's analysis whether it matches
and which words to highlight.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.detection import morphology
from bot.detection.keywords import Rule, compile_rules, search_forms
from bot.detection.text import Analysis, analyze, normalize_word

__all__ = [
    "And",
    "Not",
    "Or",
    "QueryMatcher",
    "QuerySyntaxError",
    "Term",
    "WordLookup",
    "lookups",
    "parse_query",
]


class QuerySyntaxError(ValueError):
    """A malformed query, explained for the analyst."""


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
_MINUS = "-–—−"  # phones turn "-" into a dash


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "(", ")", "op", "term", "minus"
    value: str
    pos: int
    term: Term | None = None


def _has_word(text: str) -> bool:
    return bool(analyze(text).tokens)


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
                raise QuerySyntaxError(
                    f"unterminated quote starting at character {i + 1}: {query!r}"
                )
            inner = query[i + 1 : close]
            if _has_word(inner):
                tokens.append(_Tok("term", query[i : close + 1], i, Term(inner, "phrase")))
            i = close + 1
        elif ch in _MINUS and i + 1 < n and not query[i + 1].isspace() and query[i + 1] not in ")":
            if query[i + 1] in _MINUS:  # "--", "—-": punctuation
                i += 1
                continue
            tokens.append(_Tok("minus", ch, i))
            i += 1
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in '()"«“„':
                i += 1
            word = query[start:i]
            if word in _OPERATORS:
                tokens.append(_Tok("op", word, start))
            elif not _has_word(word):
                continue  # "—", "+", "/": not a word, ignored
            elif word.endswith("*"):
                tokens.append(_Tok("term", word, start, Term(word.rstrip("*"), "prefix")))
            else:
                tokens.append(_Tok("term", word, start, Term(word, "word")))
    # A "-" left before nothing searchable ("плен -") is punctuation too.
    return [
        t
        for k, t in enumerate(tokens)
        if t.kind != "minus" or (k + 1 < len(tokens) and tokens[k + 1].kind in ("term", "("))
    ]


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _lex(query)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Node:
        if not self.tokens:
            if self.query.strip():
                raise QuerySyntaxError(
                    f"{self.query.strip()!r} has no letters or digits to search for"
                )
            raise QuerySyntaxError("the query is empty: give at least one word to search for")
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise QuerySyntaxError(f"unexpected {tok.value!r} at character {tok.pos + 1}")
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
            raise QuerySyntaxError(f"expected a word, phrase or '(' {where}, found {found}")
        if tok.kind in ("minus", "op"):  # NOT or -word
            self.i += 1
            return Not(self.unary(after=tok))
        if tok.kind == "(":
            self.i += 1
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != ")":
                raise QuerySyntaxError(f"the '(' at character {tok.pos + 1} is never closed")
            self.i += 1
            return node
        self.i += 1
        assert tok.term is not None
        return tok.term


def parse_query(query: str) -> Node:
    """The analyst's query as a tree; QuerySyntaxError explains what is wrong with it."""
    node = _Parser(query).parse()
    _check(node)
    return node


def _check(node: Node) -> None:
    """Shapes a search cannot run: only exclusions, OR NOT, a one-letter prefix."""
    if isinstance(node, Term):
        if node.kind == "prefix" and len(node.text.strip()) < 2:
            raise QuerySyntaxError(f"{node.text + '*'!r}: a prefix needs at least 2 letters")
        return
    if isinstance(node, Not):
        raise QuerySyntaxError(
            "a query cannot only exclude: put NOT after something to search for (a NOT b)"
        )
    if isinstance(node, Or):
        for child in node.children:
            if isinstance(child, Not):
                raise QuerySyntaxError("OR NOT is not supported: exclude with AND NOT (a NOT b)")
            _check(child)
        return
    positive = [child for child in node.children if not isinstance(child, Not)]
    if not positive:
        raise QuerySyntaxError("a query cannot only exclude: add a word to search for (a NOT b)")
    for child in node.children:
        _check(child.child if isinstance(child, Not) else child)


# --- what to look up -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WordLookup:
    """One word of a term: as typed (lowercased), and every lemma a post's
    lemmas may hold when a rule of this word matches it."""

    surface: str
    lemmas: tuple[str, ...]


def lookups(term: Term) -> tuple[WordLookup, ...]:
    """The words of a term and what to look them up by (prefix terms: surface only)."""
    tokens = analyze(term.text).tokens
    if term.kind == "prefix":
        return tuple(WordLookup(t.text.lower(), ()) for t in tokens)
    return tuple(WordLookup(t.text.lower(), tuple(sorted(search_forms(t)))) for t in tokens)


def terms(node: Node) -> list[Term]:
    """Every term of the tree, excluded ones too, in order."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Not):
        return terms(node.child)
    out: list[Term] = []
    for child in node.children:
        out.extend(terms(child))
    return out


def has_phrase(node: Node) -> bool:
    """Whether a term of several words is in the query (the lemma index alone cannot
    tell word order and sentences apart, so such queries are checked on the text)."""
    return any(t.kind != "prefix" and len(lookups(t)) > 1 for t in terms(node))


# --- deciding on a post ------------------------------------------------------------


class QueryMatcher:
    """The query evaluated on a post's analysis with keyword-rule semantics."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._terms = terms(node)
        rules = [
            Rule(id=str(k), phrase=t.text) for k, t in enumerate(self._terms) if t.kind != "prefix"
        ]
        self._matcher = compile_rules(rules)
        self._prefixes = {
            k: normalize_word(t.text) for k, t in enumerate(self._terms) if t.kind == "prefix"
        }
        excluded = {id(t) for t in _excluded(node)}
        shown = [t for t in self._terms if id(t) not in excluded]
        self._forms = frozenset(
            form
            for t in shown
            if t.kind != "prefix"
            for w in lookups(t)
            for form in (*w.lemmas, normalize_word(w.surface))
        )
        self._shown_prefixes = tuple(normalize_word(t.text) for t in shown if t.kind == "prefix")
        self._initials = frozenset(form[:1] for form in self._forms)

    def word_matches(self, word: str) -> bool:
        """Whether one word of a text is worth highlighting: it or one of its lemmas
        is a form some searched word matches, or it starts with a searched prefix.
        Word by word with cached lemmas, no sentence analysis: for snippets only."""
        norm = normalize_word(word)
        if norm in self._forms or norm.startswith(self._shown_prefixes or ("\0",)):
            return True
        if norm[:1] not in self._initials and not norm.isascii():
            # Inflection keeps the first letter (bar a few suppletive forms).
            return False
        return not self._forms.isdisjoint(morphology.word_lemmas(norm, morphology.RU_UK))

    def _found(self, analysis: Analysis) -> dict[int, list[tuple[int, int]]]:
        """Term index -> (start, end) of the words it matched."""
        found: dict[int, list[tuple[int, int]]] = {
            int(m.rule_id): [(w.start, w.end) for w in m.words]
            for m in self._matcher.match(analysis)
        }
        for k, prefix in self._prefixes.items():
            spans = [(t.start, t.end) for t in analysis.tokens if t.norm.startswith(prefix)]
            if spans:
                found[k] = spans
        return found

    def _eval(self, node: Node, found: dict[int, list[tuple[int, int]]], at: list[int]) -> bool:
        if isinstance(node, Term):
            k = at[0]
            at[0] += 1
            return k in found
        if isinstance(node, Not):
            return not self._eval(node.child, found, at)
        results = [self._eval(child, found, at) for child in node.children]
        return any(results) if isinstance(node, Or) else all(results)

    def matches(self, analysis: Analysis) -> bool:
        return self._eval(self.node, self._found(analysis), [0])


def _excluded(node: Node) -> list[Term]:
    if isinstance(node, Not):
        return terms(node.child)
    if isinstance(node, Term):
        return []
    out: list[Term] = []
    for child in node.children:
        out.extend(_excluded(child))
    return out
