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
_LETTER = r"(?:[^\W\d_]|[\u0300-\u036f])"
_JOIN = f"[{_APOSTROPHES}{_INVISIBLE}]"
_URL = (
    r"(?:https?://|www\.|tg://)[^\s<>()\[\]{}«»\"']+"
    r"|(?<![\w@.])(?:[a-z0-9-]+\.)+[a-z]{2,}/[^\s<>()\[\]{}«»\"']*"
)
# Groups of three digits glued by no-break/thin spaces are one number: "1 500".
_NUMBER = r"\d+(?:[\u00a0\u202f\u2009]\d{3})*(?!\w)|\d+"
_BREAK = r"[.!?…]+(?=\s|$)|\n"
_SCAN = re.compile(
    f"(?P<url>{_URL})|(?P<word>{_LETTER}+(?:{_JOIN}{_LETTER}+)*)|(?P<num>{_NUMBER})"
    f"|(?P<brk>{_BREAK})",
    re.IGNORECASE,
)
_URL_RE = re.compile(_URL, re.IGNORECASE)
_TRAILING_URL_PUNCT = ".,;:!?"

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


@lru_cache(maxsize=200_000)
def _word_info(raw: str) -> tuple[str, int, int, int, int]:
    """(norm, uk letters, ru letters, Cyrillic letters, Latin letters) of a raw word."""
    norm = normalize_word(raw)
    uk = ru = cyr = lat = 0
    for ch in norm:
        if _is_cyrillic(ch):
            cyr += 1
            if ch in morphology.UK_LETTERS:
                uk += 1
            elif ch in morphology.RU_LETTERS:
                ru += 1
        elif _is_latin(ch):
            lat += 1
    # ё is folded into е by normalization but still marks Russian.
    if "ё" in raw or "Ё" in raw:
        ru += 1
    return norm, uk, ru, cyr, lat


def normalize(text: str) -> str:
    """The normalized form of a whole text, with URLs removed."""
    text = _URL_RE.sub(" ", unicodedata.normalize("NFKC", text))
    word = re.compile(f"{_LETTER}+(?:{_JOIN}{_LETTER}+)*")
    text = word.sub(lambda m: _fix_lookalikes(m.group()), text)
    return text.casefold().translate(_FOLD).translate(_STRIP)


def _ends_sentence(text: str, match: re.Match[str], prev_norm: str | None) -> bool:
    mark = match.group()
    if mark == "\n":
        return True
    if mark == "." and prev_norm in _ABBREVIATIONS:
        return False
    # "т.е. мы", "и т. д. и" — a lowercase continuation is not a new sentence.
    pos = match.end()
    length = len(text)
    while pos < length and text[pos] in " \t\u00a0":
        pos += 1
    return not (pos < length and text[pos].islower())


def _lemma_key(lang: str, decided: bool) -> str:
    if lang == "uk":
        return morphology.UK if decided else morphology.UK_RU
    if lang == "ru" and decided:
        return morphology.RU
    return morphology.RU_UK


def analyze(text: str) -> Analysis:
    """Tokens with normal forms and lemmas, sentences with their language."""
    # Pass 1: raw tokens and sentence spans.
    raw: list[tuple[int, int, str, tuple[str, int, int, int, int] | None, int]] = []
    spans: list[list[int]] = []  # [start, end, uk, ru, cyr, lat]
    current: list[int] | None = None
    prev_norm: str | None = None
    for m in _SCAN.finditer(text):
        kind = m.lastgroup
        if kind == "brk":
            if current is not None and _ends_sentence(text, m, prev_norm):
                current[1] = m.end() if m.group() != "\n" else current[1]
                current = None
            continue
        if kind == "url":
            continue
        start, end = m.span()
        if current is None:
            current = [start, end, 0, 0, 0, 0]
            spans.append(current)
        current[1] = end
        if kind == "word":
            info = _word_info(m.group())
            current[2] += info[1]
            current[3] += info[2]
            current[4] += info[3]
            current[5] += info[4]
            prev_norm = info[0]
        else:
            info = None
            prev_norm = None
        raw.append((start, end, m.group(), info, len(spans) - 1))

    # Pass 2: language per sentence (letter rule, then the post, then lingua).
    uk_total = sum(s[2] for s in spans)
    ru_total = sum(s[3] for s in spans)
    # A post whose letters all point one way lends its language to short sentences.
    post_lang = "uk" if uk_total and not ru_total else "ru" if ru_total and not uk_total else None
    langs: list[str] = []
    decided: list[bool] = []
    for start, end, uk, ru, cyr, lat in spans:
        lang = morphology.letter_language(uk, ru, cyr, lat)
        decided.append(lang is not None)
        if lang is None:
            lang = post_lang or morphology.guess_cyrillic(text[start:end])
        langs.append(lang)
    sentences = tuple(Sentence(s[0], s[1], lang) for s, lang in zip(spans, langs, strict=True))
    keys = [_lemma_key(lang, d) for lang, d in zip(langs, decided, strict=True)]

    # Pass 3: tokens with lemmas.
    tokens: list[Token] = []
    lemmas = morphology.lemmas
    for start, end, word, info, sent in raw:
        if info is None:
            digits = "".join(ch for ch in word if ch.isdigit())
            digits = str(int(digits)) if not digits.isascii() else digits
            tokens.append(Token(word, digits, start, end, sent, (digits,), True))
            continue
        norm, _uk, _ru, cyr, lat = info
        if cyr:
            forms = lemmas(norm, keys[sent])
        elif lat:
            forms = lemmas(norm, "en")
        else:
            forms = (norm,)
        tokens.append(Token(word, norm, start, end, sent, forms, False))

    return Analysis(text, tuple(tokens), sentences, _dominant(spans, langs))


def _dominant(spans: list[list[int]], langs: list[str]) -> str:
    weight: dict[str, int] = {}
    for span, lang in zip(spans, langs, strict=True):
        weight[lang] = weight.get(lang, 0) + span[4] + span[5]
    best = max(weight.items(), key=lambda kv: kv[1], default=("other", 0))
    return best[0] if best[1] > 0 else "other"
