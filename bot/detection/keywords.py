"""Keyword rules: inflection-aware words and phrases, compiled into one matcher.

Analysts write keywords in dictionary form. A rule word matches a token when
they share a lemma (`пленный` ~ `пленных`), never by substring (`плен` is
inside `наступление`). A capitalized rule word is treated as a name and also
matches the adjectives and demonyms regularly built on it (`Белгород` ~
`белгородской`, `белгородцы`); irregular ones come from `aliases.txt`.

All words of all rules go into one dictionary (key -> rule words), so a post
costs a few dictionary lookups per token whatever the number of rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bot.detection import morphology
from bot.detection.regex import Compiled, compile_regex
from bot.detection.text import Analysis, Token, analyze, normalize_word

__all__ = [
    "MAX_GAP",
    "KeywordMatch",
    "MatchedWord",
    "Matcher",
    "Rule",
    "RuleFileError",
    "compile_rules",
    "load_rules",
    "normalize_channel",
    "parse_rule",
    "parse_rules",
    "search_forms",
]

# Words of a phrase match in order with at most this many other words between
# consecutive ones ("взяли их в плен" matches "взять в плен"), within a sentence.
MAX_GAP = 2

# A derived-name stem shorter than this would match unrelated words (Сумы -> сум).
MIN_STEM = 4

ALIASES_FILE = Path(__file__).with_name("aliases.txt")

# What may follow a place-name stem in the lemma of a word built on it:
# adjectives (курск|ий, белгород|ский, київ|ський), demonyms (белгород|ец,
# харьков|чанин, киев|лянин), regions (харків|щина). Lemmas are normal forms,
# so the list of endings is short.
_DERIVED_ENDINGS = tuple(
    sorted(
        {
            "ий", "ой", "кий", "ский", "ской", "цкий", "овский", "евский",
            "ський", "цький", "зький", "івський",
            "ец", "ець", "ка", "ит", "итка", "чанин", "чанка", "янин", "янка",
            "анин", "анка", "лянин", "лянка", "щина", "чина",
        },
        key=len,
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rule:
    """One keyword rule. Exactly one of `phrase` (one word or several, in
    order) and `regex` (matched on the original text) is set."""

    id: str
    phrase: str = ""
    regex: str = ""
    exclude: tuple[str, ...] = ()
    channels: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if bool(self.phrase.strip()) == bool(self.regex):
            raise ValueError("a rule needs either a keyword/phrase or a regex, not both")
        if self.regex:
            compile_regex(self.regex)


@dataclass(frozen=True, slots=True)
class MatchedWord:
    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end}


# A match as alerts keep it: (rule id, its distinct words, (start, end) of each occurrence)
WordsMatch = tuple[str, tuple[str, ...], tuple[tuple[int, int], ...]]


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """A rule that matched a post, with every word it matched (all occurrences)."""

    rule_id: str
    words: tuple[MatchedWord, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule_id, "words": [w.to_dict() for w in self.words]}


# --- rule words -> lookup keys -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WordKeys:
    exact: frozenset[str]
    stems: frozenset[str] = frozenset()


def _is_cyrillic_word(norm: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in norm)


def _dictionary_lemmas(norm: str) -> frozenset[str]:
    """Lemmas of a keyword typed by an analyst: the word itself when it is a
    dictionary form in Russian or Ukrainian, else its most likely lemma."""
    if not _is_cyrillic_word(norm):
        return frozenset(morphology.word_lemmas(norm, morphology.RU_UK))
    known = [lang for lang in ("ru", "uk") if morphology.morph(lang).word_is_known(norm)]
    forms = [morphology.lemmas(norm, lang) for lang in known or ["ru", "uk"]]
    if any(norm in f for f in forms):
        return frozenset([norm])
    return frozenset(f[0] for f in forms)


def _name_stems(lemma: str) -> set[str]:
    """Stems that adjectives/demonyms of a place name start with."""
    if not _is_cyrillic_word(lemma):
        return set()
    stems = {lemma}
    for ending in ("ье", "ья", "ие", "ия", "жжя"):
        if lemma.endswith(ending):
            stems.add(lemma[: -len(ending)])
    if lemma[-1] in "аяоеиыйьіїєу'":
        stems.add(lemma[:-1])
    if lemma.endswith("ка"):  # Авдеевка -> авдеевский
        stems.add(lemma[:-2])
    return {s for s in stems if len(s) >= MIN_STEM}


@cache
def derived_stems(lemma: str) -> tuple[str, ...]:
    """Candidate name stems of a lemma that looks derived (курский -> курск)."""
    out: list[str] = []
    for ending in _DERIVED_ENDINGS:
        if len(lemma) - len(ending) >= MIN_STEM and lemma.endswith(ending):
            stem = lemma[: -len(ending)]
            out.append(stem)
            if stem[-1] in "ь'" and len(stem) > MIN_STEM:
                out.append(stem[:-1])
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _AliasGroup:
    names: tuple[str, ...]
    extras: tuple[str, ...]


@cache
def _aliases() -> dict[str, _AliasGroup]:
    """Name lemma -> its alias group, from aliases.txt (read once)."""
    table: dict[str, _AliasGroup] = {}
    for line in ALIASES_FILE.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        names_part, _, extras_part = line.partition(":")
        names = tuple(normalize_word(n.strip()) for n in names_part.split(",") if n.strip())
        extras = tuple(normalize_word(e.strip()) for e in extras_part.split(",") if e.strip())
        group = _AliasGroup(names, extras)
        for name in names:
            table[name] = group
    return table


def _word_keys(token: Token, as_name: bool) -> _WordKeys:
    if token.is_number:
        return _WordKeys(frozenset([token.norm]))
    exact = set(_dictionary_lemmas(token.norm)) | {token.norm}
    if not as_name:
        return _WordKeys(frozenset(exact))
    names = set(exact)
    for lemma in list(exact):
        group = _aliases().get(lemma)
        if group is not None:
            names.update(group.names)
            exact.update(group.extras)
    exact.update(names)
    for name in names:
        exact.update(_dictionary_lemmas(name))
    stems = {stem for name in names for stem in _name_stems(name)}
    return _WordKeys(frozenset(exact), frozenset(stems))


def _is_name(token: Token) -> bool:
    """Whether a rule word is a place name, whose derivatives should match too.

    Capitalized words are, unless Russian knows them only as common words
    (`Плен` must not match `плёнка` through плен|ка); lowercase ones are when
    their likeliest reading is a place. All-caps words are abbreviations.
    """
    norm = token.norm
    if norm in _aliases():
        return True
    if not _is_cyrillic_word(norm):
        return False
    text = token.text
    ru = morphology.morph("ru")
    parses = ru.parse(norm)
    if text[:1].isupper() and not (len(text) > 1 and text.isupper()):
        return not ru.word_is_known(norm) or any("Geox" in p.tag.grammemes for p in parses)
    return "Geox" in parses[0].tag.grammemes


def search_forms(token: Token) -> frozenset[str]:
    """Every lemma of a post's word that a rule of this word matches: the rule's
    keys, and each place-name stem with each derived ending (what
    `derived_stems` would take apart), so a lookup by lemma finds exactly what
    the rule matches."""
    keys = _word_keys(token, _is_name(token))
    forms = set(keys.exact)
    for stem in keys.stems:
        for ending in _DERIVED_ENDINGS:
            forms.update((stem + ending, stem + "ь" + ending, stem + "'" + ending))
    return frozenset(forms)


def _phrase_keys(phrase: str) -> tuple[_WordKeys, ...]:
    tokens = analyze(phrase).tokens
    if not tokens:
        raise ValueError(f"no words in {phrase!r}")
    return tuple(_word_keys(t, _is_name(t)) for t in tokens)


# --- the compiled matcher ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pattern:
    rule: int  # index into Matcher.rules
    exclude: bool
    length: int


# What one token hits: single-word patterns, and (pattern, position) of phrase words.
_Entries = tuple[tuple[int, ...], tuple[tuple[int, int], ...]]
_NOTHING: _Entries = ((), ())
_MEMO_LIMIT = 200_000


def set_memo_limit(entries: int) -> None:
    """How many token keys each matcher remembers (memory budget; emptied when full)."""
    global _MEMO_LIMIT
    _MEMO_LIMIT = entries


@dataclass(slots=True)
class Matcher:
    """All rules compiled into one lemma index; build with `compile_rules`."""

    rules: tuple[Rule, ...]
    patterns: list[_Pattern] = field(default_factory=list)
    # key (lemma or norm) -> (pattern index, word position) pairs
    exact: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # place-name stem -> (pattern index, word position) pairs
    stems: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    regexes: list[tuple[int, Compiled]] = field(default_factory=list)
    scoped: dict[int, frozenset[str]] = field(default_factory=dict)
    # (norm, lemmas) of a token -> what it hits; the same words recur in every post.
    _memo: dict[tuple[str, tuple[str, ...]], _Entries] = field(default_factory=dict)

    def match(
        self, analysis: Analysis, channel: str | int | Sequence[str | int] | None = None
    ) -> list[KeywordMatch]:
        """Rules that match the post, in rule order. `channel`: the post's
        channel id and/or username, for rules limited to some channels."""
        tokens = analysis.tokens
        text = analysis.text
        out: list[KeywordMatch] = []
        for rule_index, where, regex_spans in self._matched(analysis, channel):
            if where is not None:
                picked = map(tokens.__getitem__, where)
                words = tuple(MatchedWord(t.text, t.start, t.end) for t in picked)
            else:
                words = tuple(MatchedWord(text[a:b], a, b) for a, b in regex_spans)
            out.append(KeywordMatch(self.rules[rule_index].id, words))
        return out

    def match_words(
        self, analysis: Analysis, channel: str | int | Sequence[str | int] | None = None
    ) -> list[WordsMatch]:
        """match() with each match as (rule id, its distinct words, (start, end) of each
        occurrence): plain tuples, as alerts use them, without a MatchedWord a word
        (in the worst case a post matches ~20 rules)."""
        tokens = analysis.tokens
        text = analysis.text
        rules = self.rules
        out: list[WordsMatch] = []
        for rule_index, where, regex_spans in self._matched(analysis, channel):
            if where is not None:
                picked = [tokens[i] for i in where]
                words = tuple(dict.fromkeys([t.text for t in picked]))
                spans = tuple([(t.start, t.end) for t in picked])
            else:
                words = tuple(dict.fromkeys([text[a:b] for a, b in regex_spans]))
                spans = tuple(regex_spans)
            out.append((rules[rule_index].id, words, spans))
        return out

    def _matched(
        self, analysis: Analysis, channel: str | int | Sequence[str | int] | None
    ) -> list[tuple[int, list[int] | None, list[tuple[int, int]]]]:
        """(rule index, token indexes, or else the regex's spans) of each matching rule,
        in rule order."""
        tokens = analysis.tokens
        singles, phrases = self._hits(tokens)
        patterns = self.patterns
        scoped = self.scoped
        # rule -> token indexes, sorted; a rule has one positive pattern.
        found: dict[int, list[int]] = {}
        excluded: set[int] = set()
        for pattern_index, where in singles.items():
            pattern = patterns[pattern_index]
            if pattern.exclude:
                excluded.add(pattern.rule)
            elif pattern.rule not in scoped or self._in_scope(pattern.rule, channel):
                found[pattern.rule] = where
        for pattern_index, positions in phrases.items():
            pattern = patterns[pattern_index]
            if pattern.exclude and pattern.rule in excluded:
                continue
            if pattern.rule in scoped and not self._in_scope(pattern.rule, channel):
                continue
            where = _occurrences(tokens, positions, pattern.length)
            if not where:
                continue
            if pattern.exclude:
                excluded.add(pattern.rule)
            else:
                found[pattern.rule] = sorted(set(where))
        by_regex: dict[int, list[tuple[int, int]]] = {}
        for rule_index, regex in self.regexes:
            if rule_index in scoped and not self._in_scope(rule_index, channel):
                continue
            spans = [m.span() for m in regex.finditer(analysis.text)]
            if spans:
                by_regex[rule_index] = spans
        return [
            (rule_index, found.get(rule_index), by_regex.get(rule_index, []))
            for rule_index in sorted((found.keys() | by_regex.keys()) - excluded)
        ]

    def _hits(
        self, tokens: Sequence[Token]
    ) -> tuple[dict[int, list[int]], dict[int, dict[int, list[int]]]]:
        """Token indexes hit per single-word pattern, and per phrase pattern and word."""
        memo = self._memo
        singles: dict[int, list[int]] = {}
        phrases: dict[int, dict[int, list[int]]] = {}
        for i, token in enumerate(tokens):
            key = (token.norm, token.lemmas)
            entries = memo.get(key)
            if entries is None:
                entries = self._entries(token)
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[key] = entries
            if entries is _NOTHING:
                continue
            for pattern_index in entries[0]:
                where = singles.get(pattern_index)
                if where is None:
                    singles[pattern_index] = [i]
                else:
                    where.append(i)
            for pattern_index, position in entries[1]:
                phrases.setdefault(pattern_index, {}).setdefault(position, []).append(i)
        return singles, phrases

    def _entries(self, token: Token) -> _Entries:
        seen: set[tuple[int, int]] = set()
        seen.update(self.exact.get(token.norm, ()))
        for lemma in token.lemmas:
            seen.update(self.exact.get(lemma, ()))
            if self.stems:
                for stem in derived_stems(lemma):
                    seen.update(self.stems.get(stem, ()))
        if not seen:
            return _NOTHING
        patterns = self.patterns
        singles = tuple(sorted(p for p, _ in seen if patterns[p].length == 1))
        phrase_words = tuple(sorted((p, k) for p, k in seen if patterns[p].length > 1))
        return singles, phrase_words

    def _in_scope(self, rule_index: int, channel: str | int | Sequence[str | int] | None) -> bool:
        allowed = self.scoped.get(rule_index)
        if allowed is None:
            return True
        if channel is None:
            return False
        names = [channel] if isinstance(channel, str | int) else channel
        return any(normalize_channel(n) in allowed for n in names)

    def stats(self) -> dict[str, int]:
        return {
            "rules": len(self.rules),
            "patterns": len(self.patterns),
            "keys": len(self.exact),
            "stems": len(self.stems),
            "regexes": len(self.regexes),
        }


def _occurrences(
    tokens: Sequence[Token], positions: dict[int, list[int]], length: int
) -> list[int]:
    """Token indexes of every occurrence of a phrase: its words in order, each
    within MAX_GAP words of the previous one, all in one sentence."""
    columns = [positions.get(k) for k in range(length)]
    if not all(columns):
        return []
    out: list[int] = []
    for start in columns[0] or ():
        chain = _extend(tokens, columns, [start])
        if chain:
            out.extend(chain)
    return out


def _extend(
    tokens: Sequence[Token], columns: list[list[int] | None], chain: list[int]
) -> list[int] | None:
    k = len(chain)
    if k == len(columns):
        return chain
    last = chain[-1]
    sentence = tokens[last].sentence
    for i in columns[k] or ():
        if last < i <= last + 1 + MAX_GAP and tokens[i].sentence == sentence:
            found = _extend(tokens, columns, [*chain, i])
            if found:
                return found
    return None


def normalize_channel(channel: str | int) -> str:
    """`@Name`, `name`, `t.me/name` -> `name`; `-1001234` (Bot API form) -> `1234`."""
    text = str(channel).strip()
    text = re.sub(r"^(?:https?://)?t\.me/", "", text)
    text = text.lstrip("@").casefold()
    if text.startswith("-100") and text[4:].isdigit():
        return text[4:]
    return text


def compile_rules(rules: Iterable[Rule]) -> Matcher:
    """Compile every rule of every analyst into one matcher."""
    matcher = Matcher(tuple(rules))
    exact: dict[str, list[tuple[int, int]]] = {}
    stems: dict[str, list[tuple[int, int]]] = {}
    phrase_cache: dict[str, tuple[_WordKeys, ...]] = {}

    def add(rule_index: int, phrase: str, exclude: bool) -> None:
        keys = phrase_cache.get(phrase)
        if keys is None:
            keys = phrase_cache[phrase] = _phrase_keys(phrase)
        pattern_index = len(matcher.patterns)
        matcher.patterns.append(_Pattern(rule_index, exclude, len(keys)))
        for position, word in enumerate(keys):
            for key in word.exact:
                exact.setdefault(key, []).append((pattern_index, position))
            for stem in word.stems:
                stems.setdefault(stem, []).append((pattern_index, position))

    for rule_index, rule in enumerate(matcher.rules):
        if rule.regex:
            matcher.regexes.append((rule_index, compile_regex(rule.regex)))
        else:
            add(rule_index, rule.phrase, exclude=False)
        for phrase in rule.exclude:
            add(rule_index, phrase, exclude=True)
        if rule.channels:
            matcher.scoped[rule_index] = frozenset(normalize_channel(c) for c in rule.channels)
    matcher.exact = {k: tuple(v) for k, v in exact.items()}
    matcher.stems = {k: tuple(v) for k, v in stems.items()}
    return matcher


# --- rule syntax ---------------------------------------------------------------

_QUOTES = {'"': '"', "«": "»", "“": "”", "„": "“"}
_REGEX = re.compile(r"re:/((?:[^/\\]|\\.)*)/([ims]*)(?=\s|$)")
_NOT_WORDS = frozenset({"-not", "—not", "–not", "−not"})
_RULE_ID = re.compile(r"\[([^\[\]\s]+)\]\s*")


def _items(text: str) -> list[tuple[str, str]]:
    """Split a rule string into ("word"|"quoted"|"regex", value) items."""
    items: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        if text.startswith("re:", pos):
            m = _REGEX.match(text, pos)
            if not m:
                raise ValueError("a regex is written re:/pattern/ (flags i, m, s may follow)")
            flags = m.group(2)
            items.append(("regex", (f"(?{flags})" if flags else "") + m.group(1)))
            pos = m.end()
            continue
        close = _QUOTES.get(text[pos])
        if close is not None:
            end = text.find(close, pos + 1)
            if end < 0:
                raise ValueError(f"unclosed quote {text[pos]} at {text[pos : pos + 20]!r}")
            items.append(("quoted", text[pos + 1 : end]))
            pos = end + 1
            continue
        end = pos
        while end < len(text) and not text[end].isspace():
            end += 1
        items.append(("word", text[pos:end]))
        pos = end
    return items


def parse_rule(text: str, rule_id: str | None = None) -> Rule:
    """Parse one rule: `keyword`, `"phrase words"` or `re:/regex/i`, then any of
    `-not word`, `-not "phrase"`, `in @channel[,@other]`. An optional `[id]`
    prefix names the rule; otherwise its id is the rule text itself."""
    text = text.strip()
    m = _RULE_ID.match(text)
    if m:
        rule_id = rule_id or m.group(1)
        text = text[m.end() :]
    if not text:
        raise ValueError("empty rule")
    items = _items(text)
    words: list[str] = []
    regex = ""
    exclude: list[str] = []
    channels: list[str] = []
    i = 0
    while i < len(items):
        kind, value = items[i]
        if kind == "word" and value in _NOT_WORDS:
            value = "-not"  # phones turn "-" into a dash
        if kind == "word" and value == "-not" or _is_scope(items, i):
            if i + 1 >= len(items) or items[i + 1][0] == "regex":
                raise ValueError(f"{value} needs a word after it")
            target = items[i + 1][1]
            if value == "-not":
                exclude.append(_check_phrase(target))
            else:
                names = [c for c in target.split(",") if c.strip("@ ")]
                if not names or items[i + 1][0] != "word":
                    raise ValueError("in needs a channel: in @channel or in 1234567890")
                channels.extend(names)
            i += 2
            continue
        if regex or (kind == "regex" and words):
            raise ValueError(f"unexpected {value!r}: one keyword per rule (a regex goes alone)")
        if kind == "regex":
            regex = value
        elif kind == "word" and value.startswith("-") and len(value) > 1:
            raise ValueError(f"unknown option {value!r} (use -not word)")
        else:
            # Several words, quoted or not, are one phrase: `Новая Таволжанка`.
            words.append(value)
        i += 1
    phrase = _check_phrase(" ".join(words)) if words else ""
    if not phrase and not regex:
        raise ValueError('no keyword: write a word, a "phrase" or re:/regex/')
    return Rule(
        id=rule_id or text,
        phrase=phrase,
        regex=regex,
        exclude=tuple(exclude),
        channels=frozenset(normalize_channel(c) for c in channels),
    )


def _is_scope(items: list[tuple[str, str]], i: int) -> bool:
    """Whether items[i] is `in` starting a channel filter: `in @name`, `in t.me/name`,
    `in 1234567890` or the last word (`in` needs a channel then). Otherwise `in`
    is a word of the phrase: `captured in Bakhmut`."""
    kind, value = items[i]
    if kind != "word" or value.casefold() != "in":
        return False
    if i + 1 >= len(items):
        return True
    kind, target = items[i + 1]
    if kind != "word":
        return False
    first = target.split(",")[0].strip()
    return first.startswith(("@", "t.me/", "https://t.me/")) or first.lstrip("-").isdigit()


def _check_phrase(value: str) -> str:
    if not analyze(value).tokens:
        raise ValueError(f"{value!r} has no words")
    return value.strip()


class RuleFileError(ValueError):
    """Errors in a rules file, one `line N: message` per line."""


def parse_rules(text: str) -> list[Rule]:
    """Parse a rules file: one rule per line, `#` starts a comment line."""
    rules: list[Rule] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            rule = parse_rule(stripped)
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
            continue
        if rule.id in seen:
            errors.append(
                f"line {number}: rule {rule.id!r} already defined on line {seen[rule.id]}"
            )
            continue
        seen[rule.id] = number
        rules.append(rule)
    if errors:
        raise RuleFileError("\n".join(errors))
    return rules


def load_rules(path: str | Path) -> list[Rule]:
    """Read and parse a rules file; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(f"{path}: cannot read: {exc}") from None
    try:
        return parse_rules(text)
    except RuleFileError as exc:
        lines = str(exc).splitlines()
        raise RuleFileError("\n".join(f"{path}: {line}" for line in lines)) from None
