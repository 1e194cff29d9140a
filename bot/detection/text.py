"""Normalization, tokenization, sentences and per-sentence language.

Offsets always refer to the original text; normalization is applied per
token (and cached), never to the whole text before tokenizing, so NFKC
changing a string's length cannot shift offsets.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from bot.detection import morphology

__all__ = ["Analysis", "Sentence", "Token", "analyze", "normalize", "normalize_word"]


@dataclass(frozen=True, slots=True)
class Token:
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
_URL = (
    r"(?:(?:https?|tg)://|www\.|\b[a-zA-Z0-9][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}/)"
    + _URL_TAIL
)
# Groups of three digits glued by no-break/thin spaces are one number: "1 500".
_NUMBER = r"\d+(?:[\u00a0\u202f\u2009]\d{3})*(?!\w)|\d+"
_BREAK = r"[.!?…]+(?=\s|$)|\n"


def _scanner(letter: str, join: str) -> re.Pattern[str]:
    word = f"{letter}+(?:{join}{letter}+)*"
    return re.compile(f"(?P<word>{word})|(?P<num>{_NUMBER})|(?P<brk>{_BREAK})")


# Most posts have no stress marks or invisible characters; their scanner is
# several times faster than the one that allows them inside words.
_SCAN_FAST = _scanner(r"[^\W\d_]", f"[{_APOSTROPHES}]")
_SCAN_FULL = _scanner(f"(?:[^\\W\\d_]|[{_MARKS}])", f"[{_APOSTROPHES}{_INVISIBLE}]")
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


def _fix_lookalikes(word: str) -> str:
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


@lru_cache(maxsize=200_000)
def normalize_word(raw: str) -> str:
    """Normalize one word: NFKC, look-alikes, casefold, ё→е, apostrophes, no stress marks."""
    word = unicodedata.normalize("NFKC", raw)
    word = _fix_lookalikes(word).casefold().translate(_FOLD)
    if not word.isascii():
        word = word.translate(_STRIP)
    return word


_MARKED_RE = re.compile("[іїєґІЇЄҐыэъёЫЭЪЁ]")
_UK_MARKS = frozenset("іїєґІЇЄҐ")
_CYR_RE = re.compile("[\u0400-\u04ff]+")
_LAT_RE = re.compile("[A-Za-z\u00c0-\u024f]+")

# Per lemma key: raw word -> (norm, lemmas). Plain dicts: this lookup runs
# once per token and lru_cache's tuple keys cost measurably more.
_WORD_CACHE: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
_WORD_CACHE_LIMIT = 200_000


def normalize(text: str) -> str:
    """The normalized form of a whole text, with URLs removed."""
    text = _URL_RE.sub(" ", unicodedata.normalize("NFKC", text))
    text = _SCAN_FULL.sub(lambda m: _fix_lookalikes(m.group()), text)
    return text.casefold().translate(_FOLD).translate(_STRIP)


def _ends_sentence(text: str, match: re.Match[str], prev: str | None) -> bool:
    mark = match.group()
    if mark == "\n":
        return True
    if mark == "." and prev is not None and prev.lower() in _ABBREVIATIONS:
        return False
    # "т.е. мы", "и т. д. и" — a lowercase continuation is not a new sentence.
    pos = match.end()
    length = len(text)
    while pos < length and text[pos] in " \t\u00a0":
        pos += 1
    return not (pos < length and text[pos].islower())


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


def _cache(key: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    cache = _WORD_CACHE.get(key)
    if cache is None:
        cache = _WORD_CACHE[key] = {}
    elif len(cache) >= _WORD_CACHE_LIMIT:
        cache.clear()
    return cache


def _word(raw: str, key: str, cache: dict[str, tuple[str, tuple[str, ...]]]) -> tuple[str, ...]:
    norm = normalize_word(raw)
    hit = cache[raw] = (norm, morphology.word_lemmas(norm, key))
    return hit


def _number(raw: str) -> str:
    digits = "".join(ch for ch in raw if ch.isdigit())
    return digits if digits.isascii() else str(int(digits))


def analyze(text: str) -> Analysis:
    """Tokens with normal forms and lemmas, sentences with their language."""
    urls = _url_spans(text)
    scan = _SCAN_FULL if _NEEDS_FULL.search(text) else _SCAN_FAST

    # Pass 1: raw tokens and sentence spans.
    raw: list[tuple[int, int, str, bool, int]] = []
    spans: list[list[int]] = []
    current: list[int] | None = None
    url_at = 0  # index of the first URL span not yet passed
    for m in scan.finditer(text):
        if m.lastgroup == "brk":
            if current is not None:
                prev = raw[-1][2] if raw[-1][1] == m.start() else None
                if _ends_sentence(text, m, prev):
                    if m.group() != "\n":
                        current[1] = m.end()
                    current = None
            continue
        start, end = m.span()
        if urls:
            while url_at < len(urls) and urls[url_at][1] <= start:
                url_at += 1
            if url_at < len(urls) and urls[url_at][0] <= start:
                continue
        if current is None:
            current = [start, end]
            spans.append(current)
        current[1] = end
        raw.append((start, end, m.group(), m.lastgroup == "num", len(spans) - 1))

    # Pass 2: language per sentence — letter rule, then the whole post, then lingua.
    rules = [
        _sentence_language(text[start:end], any(u[0] < end and start < u[1] for u in urls))
        for start, end in spans
    ]
    uk_total = sum(r[1] for r in rules)
    ru_total = sum(r[2] for r in rules)
    post_lang = "uk" if uk_total and not ru_total else "ru" if ru_total and not uk_total else None
    sentences: list[Sentence] = []
    keys: list[str] = []
    caches: list[dict[str, tuple[str, tuple[str, ...]]]] = []
    for (start, end), (lang, _uk, _ru) in zip(spans, rules, strict=True):
        guessed = lang or post_lang or morphology.guess_cyrillic(text[start:end])
        sentences.append(Sentence(start, end, guessed))
        keys.append(key := _lemma_key(guessed, lang is not None))
        caches.append(_cache(key))

    # Pass 3: tokens with lemmas.
    tokens: list[Token] = []
    for start, end, word, is_number, sent in raw:
        if is_number:
            digits = _number(word)
            tokens.append(Token(word, digits, start, end, sent, (digits,), True))
        else:
            norm, forms = caches[sent].get(word) or _word(word, keys[sent], caches[sent])
            tokens.append(Token(word, norm, start, end, sent, forms, False))

    return Analysis(text, tuple(tokens), tuple(sentences), _dominant(text, sentences))


def _dominant(text: str, sentences: list[Sentence]) -> str:
    weight: dict[str, int] = {}
    for s in sentences:
        weight[s.lang] = weight.get(s.lang, 0) + s.end - s.start
    best = max(weight.items(), key=lambda kv: kv[1], default=("other", 0))
    return best[0]
