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
import sys
from collections.abc import Callable
from functools import cache, lru_cache
from typing import TYPE_CHECKING, NamedTuple, TypeVar

if TYPE_CHECKING:
    import pymorphy3
    import pymorphy3.tagset
    import Stemmer
    from lingua import LanguageDetector

_K = TypeVar("_K")
_V = TypeVar("_V")

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
    from simplemma.strategies.dictionaries import StreamDictionaryFactory
    from simplemma.strategies.dictionaries import stream_dictionary_factory as stream

    # simplemma's low-memory dictionary reads its compressed word list in place
    # instead of building a dict of all 181,000 forms (~26 MiB); the same data, so
    # the same lemmas. Indexed every 16th word rather than every 32nd (~2.5 MiB in
    # all): a new word then costs ~30 µs instead of ~60 (a dict: ~10; every 8th word:
    # ~20 µs for ~5 MiB), once, since lemma_en and the word caches above it remember
    # the answer, so the lemmatizer keeps no cache of its own. (If simplemma renames
    # the constant, the index is coarser, no more.)
    lemmatizer = Lemmatizer(
        cache_max_size=0,
        lemmatization_strategy=DefaultStrategy(dictionary_factory=StreamDictionaryFactory()),
    )

    def lemma(word: str) -> str:
        found = lemmatizer.lemmatize(word, "en").casefold()
        if found == word:  # a proper noun is known capitalized only: russians -> russian
            found = lemmatizer.lemmatize(word.capitalize(), "en").casefold()
        return found

    block = getattr(stream, "_BLOCK_SIZE", None)
    stream._BLOCK_SIZE = 16  # type: ignore[attr-defined]
    try:
        lemma("soldiers")  # loads (and indexes) the dictionary now
    finally:
        if block is not None:
            stream._BLOCK_SIZE = block  # type: ignore[attr-defined]
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


class _Reading(NamedTuple):
    """What detection uses of a pymorphy3 parse: its tag and normal form."""

    tag: pymorphy3.tagset.OpencorporaTag
    normal_form: str


def _dictionary_reader(lang: str) -> Callable[[str], list[_Reading] | None]:
    """Readings of a word the dictionary knows, as `MorphAnalyzer.parse` orders them,
    without the Parse objects, method stacks and the walk through the other analyzer
    units that a known word never reaches (~11 µs for a Russian word instead of ~26).
    None for a word the dictionary does not know, or a single letter (pymorphy3 also
    reads it as an initial): those take the full parse. tests/test_morphology.py
    compares both."""
    analyzer = morph(lang)
    try:
        dictionary = analyzer.dictionary
        similar = dictionary.words.similar_items
        tag_of = dictionary.build_tag_info
        normal_form = dictionary.build_normal_form
        substitutes = analyzer.char_substitutes
        estimator = analyzer.prob_estimator
        prob = estimator.p_t_given_w.prob if estimator is not None else None
    except AttributeError:  # another pymorphy3: every word takes the full parse
        return lambda word: None

    def read(word: str) -> list[_Reading] | None:
        if len(word) < 2 or word != word.lower():
            return None
        found = similar(word, substitutes)
        if not found:
            return None
        readings = [
            _Reading(tag_of(para, index), normal_form(para, index, fixed))
            for fixed, paras in found
            for para, index in paras
        ]
        if prob is not None and len(readings) > 1:
            # as ProbabilityEstimator: by P(tag | word), a stable sort; kept as found
            # when the word has no such figures
            probs = [prob(word, r.tag) for r in readings]
            if any(probs):
                order = sorted(range(len(readings)), key=probs.__getitem__, reverse=True)
                readings = [readings[k] for k in order]
        return readings

    return read


_READERS: dict[str, Callable[[str], list[_Reading] | None]] = {}


def parses(word: str, lang: str) -> list[_Reading]:
    """Tag and normal form of each pymorphy3 parse of a lower-case word, most likely
    first: `morph(lang).parse(word)` without the parts detection does not use."""
    reader = _READERS.get(lang)
    if reader is None:
        reader = _READERS[lang] = _dictionary_reader(lang)
    found = reader(word)
    if found is None:
        found = [_Reading(p.tag, p.normal_form) for p in morph(lang).parse(word)]
    return found


def _clean(lemma: str) -> str:
    return lemma.replace("ё", "е").replace("’", "'").replace("ʼ", "'")


# Per-word memos. Plain dicts, emptied when full (as text.py's word cache): they hold
# tens of thousands of words, and an lru_cache entry costs ~150-250 bytes more than a
# dict entry (its list link, and a key object for two arguments). Lemma strings are
# interned: the forms of a word share one copy of its lemma. (Sharing equal lemma
# tuples too costs more in the table that finds them than it saves.) The limit counts the
# entries of every memo together (memory budget): when they reach it, all are emptied.
_limit = 600_000  # about three entries a form: room for text.py's 200,000 forms
_stored = 0  # entries stored in the memos since they were last emptied
_PARSES: dict[str, dict[str, tuple[str, ...]]] = {}  # lang -> word -> lemmas
_RU_TAGS: dict[str, tuple[frozenset[str], ...]] = {}  # word -> grammemes of its parses
TAG_PARSES = 4
_LEMMAS: dict[str, dict[str, tuple[str, ...]]] = {}  # lemma key -> word -> lemmas
_STEMS: dict[str, str] = {}
_ENGLISH: dict[str, str] = {}


def _memo(memos: dict[str, dict[str, tuple[str, ...]]], name: str) -> dict[str, tuple[str, ...]]:
    memo = memos.get(name)
    if memo is None:
        memo = memos[name] = {}
    return memo


def _store(memo: dict[_K, _V], key: _K, value: _V) -> _V:
    global _stored
    if _stored >= _limit:
        _clear_memos()
    _stored += 1
    memo[key] = value
    return value


def _pymorphy_lemmas(word: str, lang: str) -> tuple[str, ...]:
    memo = _memo(_PARSES, lang)
    found = memo.get(word)
    if found is None:
        readings = parses(word, lang)
        out: dict[str, None] = {}
        for reading in readings:
            out.setdefault(sys.intern(_clean(reading.normal_form)), None)
        found = _store(memo, word, tuple(out) or (word,))
        if lang == RU and word not in _RU_TAGS:
            _store_tags(word, readings)
    return found


def _store_tags(word: str, readings: list[_Reading]) -> tuple[frozenset[str], ...]:
    # pymorphy3 shares one tag object, and its grammemes, among all words with that tag
    return _store(_RU_TAGS, word, tuple(r.tag.grammemes for r in readings[:TAG_PARSES]))


def ru_tags(word: str) -> tuple[frozenset[str], ...]:
    """Grammemes of a normalized word's likeliest Russian parses (at most TAG_PARSES).
    The parse that gave the word's Russian lemmas gives them, so they cost no second
    parse."""
    found = _RU_TAGS.get(word)
    if found is None:
        found = _store_tags(word, parses(word, RU))
    return found


def stem_en(word: str) -> str:
    """The Snowball stem: the claim detector's English lexicon is written in stems."""
    found = _STEMS.get(word)
    if found is None:
        found = _store(_STEMS, word, sys.intern(_stemmer().stemWord(word)))
    return found


def lemma_en(word: str) -> str:
    """The English lemma (soldiers -> soldier, took -> take); a possessive 's is
    dropped first (soldier's -> soldier)."""
    found = _ENGLISH.get(word)
    if found is None:
        base = word[:-2] if word.endswith("'s") and len(word) > 3 else word
        found = _store(_ENGLISH, word, sys.intern(_english()(base)))
    return found


def lemmas(word: str, key: str) -> tuple[str, ...]:
    """Normal forms of a normalized word.

    key: "ru", "uk", "ru+uk", "uk+ru" (both dictionaries, first one's forms
    first, for a word both know or neither knows) for Cyrillic words; "en" for
    Latin words (one English lemma).
    """
    memo = _memo(_LEMMAS, key)
    found = memo.get(word)
    if found is None:
        found = _store(memo, word, _lemmas(word, key))
    return found


def _lemmas(word: str, key: str) -> tuple[str, ...]:
    if key == "en":
        return (lemma_en(word),)
    if key == RU or key == UK:
        # A Russian word quoted in a Ukrainian sentence (or the reverse) is
        # unknown to that dictionary; its guessed lemmas would be noise.
        other = UK if key == RU else RU
        if not morph(key).word_is_known(word) and morph(other).word_is_known(word):
            return _pymorphy_lemmas(word, other)
        return _pymorphy_lemmas(word, key)
    # Both dictionaries, as the sentence's language is uncertain. A word only one of
    # them knows takes only its lemmas: the other's guesses would be noise again
    # ("статье" would lemmatize to the verb "стать" through a Ukrainian guess), and
    # guessing costs ~90 µs a new word, several times a dictionary reading.
    first, second = key.split("+")
    known_first = morph(first).word_is_known(word)
    if known_first != morph(second).word_is_known(word):
        return _pymorphy_lemmas(word, first if known_first else second)
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


def _clear_memos() -> None:
    global _stored
    for memos in (_PARSES, _LEMMAS):
        for memo in memos.values():
            memo.clear()
    for flat in (_STEMS, _ENGLISH, _RU_TAGS):
        flat.clear()
    _stored = 0


def clear_caches() -> None:
    _clear_memos()
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
    """Room for `entries` words in the per-word memos together (memory budget). They back
    the per-token word cache of text.py."""
    global _limit
    _limit = entries
    if _stored > entries:  # a smaller budget frees memory now, not at the next use
        _clear_memos()
