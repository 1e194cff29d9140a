"""Normalization, tokenization, sentences and per-sentence language.

Offsets always refer to the original text; normalization is applied per
token (and cached), never to the whole text before tokenizing, so NFKC
changing a string's length cannot shift offsets.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from bot.detection import morphology

__all__ = ["Analysis", "Sentence", "Token", "analyze", "normalize", "normalize_word"]


class Token(NamedTuple):
    """A word or number of a text. A named tuple rather than a frozen dataclass: a post
    has tens of them, and one costs a quarter of the time to make."""

    text: str
    norm: str
    start: int
    end: int
    sentence: int
    lemmas: tuple[str, ...]
    is_number: bool


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int
    end: int
    lang: str


@dataclass(frozen=True, slots=True)
class Analysis:
    text: str
    tokens: tuple[Token, ...]
    sentences: tuple[Sentence, ...]
    lang: str


_APOSTROPHES = "'’ʼ`‘"
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_MARKS = "\u0300-\u036f"
_URL_TAIL = "[^\\s<>()\\[\\]{}«»\"']*"
# Every URL starts with a Latin letter or a digit; saying so first lets the scanner skip
# to such characters (the same matches; a third less time over the corpus's posts).
_URL = (
    r"(?=[a-zA-Z0-9])"
    r"(?:(?:https?|tg)://|www\.|\b[a-zA-Z0-9][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}/)"
    + _URL_TAIL
)
# Groups of three digits glued by no-break/thin spaces are one number: "1 500".
_NUMBER = r"\d+(?:[\u00a0\u202f\u2009]\d{3})*(?!\w)|\d+"
_BREAK = r"[.!?…]+(?=\s|$)|\n"


def _scanner(letter: str, join: str) -> re.Pattern[str]:
    return re.compile(f"{letter}+(?:{join}{letter}+)*|{_NUMBER}")


# Most posts have no stress marks or invisible characters; their scanner is
# several times faster than the one that allows them inside words.
_SCAN_FAST = _scanner(r"[^\W\d_]", f"[{_APOSTROPHES}]")
_SCAN_FULL = _scanner(f"(?:[^\\W\\d_]|[{_MARKS}])", f"[{_APOSTROPHES}{_INVISIBLE}]")
_BREAK_RE = re.compile(_BREAK)
_LAST_WORD = re.compile(r"[^\W\d_]+$")
_NEEDS_FULL = re.compile(f"[{_MARKS}{_INVISIBLE}]")
_URL_RE = re.compile(_URL)
_MAY_HAVE_URL = re.compile(r"/|www\.", re.IGNORECASE)

# Words after which a period does not end the sentence.
_ABBREVIATIONS = frozenset(
    "г гг ул пр им т д др с п пос пгт обл р-н р н ст тыс млн млрд руб коп см км кв"
    " тел ген подп полк лейт св вул м смт тис грн".split()
)

_TO_CYRILLIC = str.maketrans("ABCEHKMOPTXYIaceopxyik", "АВСЕНКМОРТХУІасеорхуік")
_TO_LATIN = str.maketrans("АВСЕНКМОРТХУІасеорхуік", "ABCEHKMOPTXYIaceopxyik")
_LOOKALIKE_LATIN = frozenset("ABCEHKMOPTXYIaceopxyik")
_LOOKALIKE_CYRILLIC = frozenset("АВСЕНКМОРТХУІасеорхуік")
_FOLD = str.maketrans({"ё": "е", "’": "'", "ʼ": "'", "`": "'", "‘": "'"})
_STRIP = dict.fromkeys([*range(0x300, 0x370), *map(ord, _INVISIBLE)])


def _is_cyrillic(ch: str) -> bool:
    return "\u0400" <= ch <= "\u04ff"


def _is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalpha() or "\u00c0" <= ch <= "\u024f"


_HAS_CYRILLIC = re.compile("[\u0400-\u04ff]")  # _is_cyrillic
_HAS_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")  # _is_latin


def _fix_lookalikes(word: str) -> str:
    # most words are in one script: two searches instead of a Python loop per letter
    if _HAS_CYRILLIC.search(word) is None or _HAS_LATIN.search(word) is None:
        return word
    cyr = [c for c in word if _is_cyrillic(c)]
    lat = [c for c in word if _is_latin(c)]
    if not cyr or not lat:
        return word
    if len(cyr) >= len(lat) and all(c in _LOOKALIKE_LATIN for c in lat):
        return word.translate(_TO_CYRILLIC)
    if all(c in _LOOKALIKE_CYRILLIC for c in cyr):
        return word.translate(_TO_LATIN)
    if all(c in _LOOKALIKE_LATIN for c in lat):
        return word.translate(_TO_CYRILLIC)
    return word


def normalize_word(raw: str) -> str:
    """Normalize one word: NFKC, look-alikes, casefold, ё→е, apostrophes, no stress marks.

    Not cached itself: `_WORD_CACHE` keeps each raw token's normal form (a cache here
    would hold every word a second time for the few met under two lemma keys)."""
    word = unicodedata.normalize("NFKC", raw)
    word = _fix_lookalikes(word).casefold().translate(_FOLD)
    if not word.isascii():
        word = word.translate(_STRIP)
    return sys.intern(word)  # one object for every cache that keeps it


_MARKED_RE = re.compile("[іїєґІЇЄҐыэъёЫЭЪЁ]")
_UK_MARKS = frozenset("іїєґІЇЄҐ")
_CYR_RE = re.compile("[\u0400-\u04ff]+")
_LAT_RE = re.compile("[A-Za-z\u00c0-\u024f]+")

# Per lemma key: raw word -> (norm, lemmas, is_number). Plain dicts: this lookup runs
# once per token and lru_cache's tuple keys cost measurably more. The limit counts the
# forms of every lemma key together (memory budget): when they reach it, all are emptied.
_WORD_CACHE: dict[str, dict[str, tuple[str, tuple[str, ...], bool]]] = {}
_WORD_CACHE_LIMIT = 200_000
_word_count = 0  # forms stored in _WORD_CACHE since it was last emptied


def normalize(text: str) -> str:
    """The normalized form of a whole text, with URLs removed."""
    text = _URL_RE.sub(" ", unicodedata.normalize("NFKC", text))
    text = _SCAN_FULL.sub(lambda m: _fix_lookalikes(m.group()), text)
    return text.casefold().translate(_FOLD).translate(_STRIP)


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    mark = match.group()
    if mark == "\n":
        return True
    pos = match.start()
    if mark == ".":
        prev = _LAST_WORD.search(text, max(0, pos - 8), pos)
        if prev is not None and prev.group().lower() in _ABBREVIATIONS:
            return False
    # "т.е. мы", "и т. д. и" — a lowercase continuation is not a new sentence.
    pos = match.end()
    length = len(text)
    while pos < length and text[pos] in " \t\u00a0":
        pos += 1
    return not (pos < length and text[pos].islower())


def _segments(text: str) -> list[tuple[int, int, int]]:
    """(start, end, end of its closing punctuation or -1) between sentence breaks."""
    out: list[tuple[int, int, int]] = []
    pos = 0
    for m in _BREAK_RE.finditer(text):
        if _ends_sentence(text, m):
            out.append((pos, m.start(), m.end() if m.group() != "\n" else -1))
            pos = m.end()
    out.append((pos, len(text), -1))
    return out


def _url_spans(text: str) -> list[tuple[int, int]]:
    if not _MAY_HAVE_URL.search(text):
        return []
    return [m.span() for m in _URL_RE.finditer(text)]


def _letters(pattern: re.Pattern[str], text: str) -> int:
    return sum(map(len, pattern.findall(text)))


def _sentence_language(text: str, has_url: bool) -> tuple[str | None, int, int]:
    """(letter-rule language or None, uk letters, ru letters) of one sentence."""
    if has_url:
        text = _URL_RE.sub(" ", text)
    if text.isascii():
        return ("en" if _LAT_RE.search(text) else "other"), 0, 0
    marked = _MARKED_RE.findall(text)
    uk = sum(ch in _UK_MARKS for ch in marked)
    ru = len(marked) - uk
    if _LAT_RE.search(text):
        cyr, lat = _letters(_CYR_RE, text), _letters(_LAT_RE, text)
    else:
        cyr, lat = int(_CYR_RE.search(text) is not None), 0
    return morphology.letter_language(uk, ru, cyr, lat), uk, ru


def _lemma_key(lang: str, decided: bool) -> str:
    """Which dictionaries Cyrillic words of a sentence go through."""
    if lang == "uk":
        return morphology.UK if decided else morphology.UK_RU
    if lang == "ru" and decided:
        return morphology.RU
    return morphology.RU_UK


_Word = tuple[str, tuple[str, ...], bool]


def set_cache_limit(forms: int) -> None:
    """Room for `forms` word forms in the word caches of all lemma keys together
    (emptied when full)."""
    global _WORD_CACHE_LIMIT
    _WORD_CACHE_LIMIT = forms
    if _word_count > forms:  # a smaller budget frees memory now, not at the next use
        _empty()


def _empty() -> None:
    global _word_count
    for cache in _WORD_CACHE.values():
        cache.clear()
    _word_count = 0


def clear_caches() -> None:
    """Forget every cached word (benchmarks of a cold start; memory)."""
    global _word_count
    _WORD_CACHE.clear()
    _word_count = 0
    morphology.clear_caches()


def _cache(key: str) -> dict[str, _Word]:
    """The key's word cache; every key's is emptied once they hold the limit together
    (checked per sentence, so a sentence's words may go over it)."""
    if _word_count >= _WORD_CACHE_LIMIT:
        _empty()
    cache = _WORD_CACHE.get(key)
    if cache is None:
        cache = _WORD_CACHE[key] = {}
    return cache


def _word(raw: str, key: str, cache: dict[str, _Word]) -> _Word:
    """(norm, lemmas, is_number) of a raw token, stored in the key's cache."""
    global _word_count
    _word_count += 1
    if raw[0].isdigit():
        digits = "".join(ch for ch in raw if ch.isdigit())
        digits = digits if digits.isascii() else str(int(digits))
        hit = cache[raw] = (digits, (digits,), True)
    else:
        norm = normalize_word(raw)
        # a word already in lower case keys the cache with its interned normal form: one
        # string for both instead of two equal copies (most words of a post)
        hit = cache[norm if norm == raw else raw] = (
            norm,
            morphology.word_lemmas(norm, key),
            False,
        )
    return hit


def _words(
    scan: re.Pattern[str], start: int, end: int, urls: list[tuple[int, int]], text: str
) -> list[re.Match[str]]:
    """Word and number matches in text[start:end], outside URLs."""
    if not urls:
        return list(scan.finditer(text, start, end))
    out: list[re.Match[str]] = []
    pos = start
    for url_start, url_end in urls:
        if url_end <= pos or url_start >= end:
            continue
        out.extend(scan.finditer(text, pos, max(pos, url_start)))
        pos = max(pos, url_end)
    if pos < end:
        out.extend(scan.finditer(text, pos, end))
    return out


_new_token = tuple.__new__  # Token(...) without the generated __new__


def analyze(text: str) -> Analysis:
    """Tokens with normal forms and lemmas, sentences with their language."""
    urls = _url_spans(text)
    scan = _SCAN_FULL if _NEEDS_FULL.search(text) else _SCAN_FAST

    # Sentences (with at least one word or number) and the letter rule on each.
    found: list[tuple[int, int, list[re.Match[str]], str | None]] = []
    uk_total = ru_total = 0
    for seg_start, seg_end, punct_end in _segments(text):
        matches = _words(scan, seg_start, seg_end, urls, text)
        if not matches:
            continue
        start = matches[0].start()
        end = punct_end if punct_end >= 0 else matches[-1].end()
        has_url = any(u[0] < end and start < u[1] for u in urls)
        lang, uk, ru = _sentence_language(text[start:end], has_url)
        uk_total += uk
        ru_total += ru
        found.append((start, end, matches, lang))

    # A post whose letters all point one way lends its language to short
    # sentences; lingua decides the rest.
    post_lang = "uk" if uk_total and not ru_total else "ru" if ru_total and not uk_total else None
    sentences: list[Sentence] = []
    tokens: list[Token] = []
    for index, (start, end, matches, lang) in enumerate(found):
        guessed = lang or post_lang or morphology.guess_cyrillic(text[start:end])
        sentences.append(Sentence(start, end, guessed))
        key = _lemma_key(guessed, lang is not None)
        cache = _cache(key)
        for m in matches:
            raw = m.group()
            norm, forms, is_number = cache.get(raw) or _word(raw, key, cache)
            start, end = m.span()
            tokens.append(_new_token(Token, (raw, norm, start, end, index, forms, is_number)))

    return Analysis(text, tuple(tokens), tuple(sentences), _dominant(sentences))


def _dominant(sentences: list[Sentence]) -> str:
    weight: dict[str, int] = {}
    for s in sentences:
        weight[s.lang] = weight.get(s.lang, 0) + s.end - s.start
    best = max(weight.items(), key=lambda kv: kv[1], default=("other", 0))
    return best[0]
