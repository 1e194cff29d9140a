"""Lemmatizers and the language guess, loaded once and cached per word.

pymorphy3 (ru, uk dictionaries) gives Russian and Ukrainian normal forms;
simplemma (its English dictionary ships inside the package, read in its
compressed form: see `_english`) gives English lemmas, so `captive` and
`captivating` stay apart where a stemmer would join them. PyStemmer's
Snowball stems remain for the claim detector's English lexicon only
(`stem_en`). Language per sentence is decided by letters unique to one language
when possible, because lingua costs ~100 µs per call.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import pymorphy3
    import Stemmer
    from lingua import LanguageDetector

# Lemma "keys": which analyzers a Cyrillic word goes through, most likely first.
RU = "ru"
UK = "uk"
RU_UK = "ru+uk"
UK_RU = "uk+ru"


@cache
def morph(lang: str) -> pymorphy3.MorphAnalyzer:
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang=lang)


@cache
def _stemmer() -> Stemmer.Stemmer:
    import Stemmer

    return Stemmer.Stemmer("english")


@cache
def _english() -> Callable[[str], str]:
    from simplemma import Lemmatizer
    from simplemma.strategies import DefaultStrategy

    # simplemma's low-memory dictionary reads its compressed word list in place
    # (~3 MiB) instead of building a dict of all 181,000 forms (~26 MiB); the same
    # data, so the same lemmas. A lookup costs ~50 µs instead of ~1 µs, once per
    # word: lemma_en and the word caches above it remember the answer, so the
    # lemmatizer keeps no cache of its own.
    lemmatizer = Lemmatizer(
        cache_max_size=0, lemmatization_strategy=DefaultStrategy(low_memory=True)
    )

    def lemma(word: str) -> str:
        found = lemmatizer.lemmatize(word, "en").casefold()
        if found == word:  # a proper noun is known capitalized only: russians -> russian
            found = lemmatizer.lemmatize(word.capitalize(), "en").casefold()
        return found

    lemma("soldiers")  # loads the dictionary now
    return lemma


@cache
def _detector() -> LanguageDetector:
    from lingua import Language, LanguageDetectorBuilder

    # Only Cyrillic sentences the letter rule left undecided come here (Latin text is
    # told apart by its letters): two language models instead of three.
    return (
        LanguageDetectorBuilder.from_languages(Language.RUSSIAN, Language.UKRAINIAN)
        .with_low_accuracy_mode()
        .build()
    )


def load() -> None:
    """Load every dictionary now (at start-up) rather than on the first post."""
    morph("ru")
    morph("uk")
    _stemmer()
    _english()
    _detector()


def _clean(lemma: str) -> str:
    return lemma.replace("ё", "е").replace("’", "'").replace("ʼ", "'")


@lru_cache(maxsize=200_000)
def _pymorphy_lemmas(word: str, lang: str) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for parse in morph(lang).parse(word):
        out.setdefault(_clean(parse.normal_form), None)
    return tuple(out) or (word,)


@lru_cache(maxsize=200_000)
def stem_en(word: str) -> str:
    """The Snowball stem: the claim detector's English lexicon is written in stems."""
    return _stemmer().stemWord(word)


@lru_cache(maxsize=200_000)
def lemma_en(word: str) -> str:
    """The English lemma (soldiers -> soldier, took -> take); a possessive 's is
    dropped first (soldier's -> soldier)."""
    base = word[:-2] if word.endswith("'s") and len(word) > 3 else word
    return _english()(base)


@lru_cache(maxsize=300_000)
def lemmas(word: str, key: str) -> tuple[str, ...]:
    """Normal forms of a normalized word.

    key: "ru", "uk", "ru+uk", "uk+ru" (both dictionaries, first one's forms
    first) for Cyrillic words; "en" for Latin words (one English lemma).
    """
    if key == "en":
        return (lemma_en(word),)
    if key == RU or key == UK:
        # A Russian word quoted in a Ukrainian sentence (or the reverse) is
        # unknown to that dictionary; its guessed lemmas would be noise.
        other = UK if key == RU else RU
        if not morph(key).word_is_known(word) and morph(other).word_is_known(word):
            key = f"{key}+{other}"
        else:
            return _pymorphy_lemmas(word, key)
    first, second = key.split("+")
    merged = dict.fromkeys(_pymorphy_lemmas(word, first))
    merged.update(dict.fromkeys(_pymorphy_lemmas(word, second)))
    return tuple(merged)


_CYRILLIC = re.compile("[\u0400-\u04ff]")
_LATIN = re.compile("[a-z\u00c0-\u024f]")


def word_lemmas(norm: str, key: str) -> tuple[str, ...]:
    """Lemmas of a normalized word by its script: Cyrillic through the key's
    dictionaries, Latin through the English lemmatizer, anything else as is."""
    if _CYRILLIC.search(norm):
        return lemmas(norm, key)
    if _LATIN.search(norm):
        return lemmas(norm, "en")
    return (norm,)


def clear_caches() -> None:
    lemmas.cache_clear()
    _pymorphy_lemmas.cache_clear()
    stem_en.cache_clear()
    lemma_en.cache_clear()
    guess_cyrillic.cache_clear()


def letter_language(uk: int, ru: int, cyrillic: int, latin: int) -> str | None:
    """The letter rule over counts of letters; None when Cyrillic but undecided."""
    if cyrillic == 0 and latin == 0:
        return "other"
    if latin > cyrillic:
        return "en"
    if uk > ru:
        return "uk"
    if ru > uk:
        return "ru"
    return None


@lru_cache(maxsize=20_000)
def guess_cyrillic(text: str) -> str:
    """ru or uk for a Cyrillic sentence the letter rule could not decide."""
    found = _detector().detect_language_of(text)
    if found is not None and found.iso_code_639_1.name.lower() == "uk":
        return "uk"
    return "ru"


def set_cache_limit(entries: int) -> None:
    """Re-create the lemma caches with room for `entries` words each (memory budget).
    They back the per-token word cache of text.py, so they can be smaller than it."""
    global lemmas, _pymorphy_lemmas, stem_en, lemma_en
    lemmas = lru_cache(maxsize=entries)(lemmas.__wrapped__)
    _pymorphy_lemmas = lru_cache(maxsize=entries)(_pymorphy_lemmas.__wrapped__)
    stem_en = lru_cache(maxsize=entries)(stem_en.__wrapped__)
    lemma_en = lru_cache(maxsize=entries)(lemma_en.__wrapped__)
