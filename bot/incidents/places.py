"""Places and people named in a post, as keys that match across inflections.

A place is a word tagged as a place name by pymorphy3 (Geox), or a capitalized
word right after a locative preposition ("у Новой Таволжанки", "под Работино")
that is not a person's name — villages are mostly missing from the dictionary
(Таволжанка is known there only as a plant). Each place gets name stems
(`таволжанка` -> `таволжанк`, `таволжан`) so that the adjectives built on it
(`таволжанский`) meet it the way keyword rules do. People are surnames.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from bot.detection import morphology
from bot.detection.keywords import _aliases, _name_stems, derived_stems
from bot.detection.morphology import ru_tags
from bot.detection.text import Analysis, Token

BROAD_FILE = Path(__file__).with_name("broad_places.txt")

# Prepositions (and place-kind nouns) after which a capitalized word names a place.
_LOCATIVE = frozenset(
    "у под около возле близ в во из на над за от до к ко село селе села поселок поселке "
    "посёлок посёлке пгт хутор хуторе деревня деревне пункт пункта пункте город городе "
    "районе направлении".split()
)
_PERSON = frozenset({"Surn", "Name", "Patr"})
# Capitalized after "в"/"на" but institutions, not places ("сообщили в Минобороны").
NOT_PLACES = frozenset(
    "минобороны мид минфин минюст мчс кремль госдума дума совфед генштаб пентагон ставка "
    "сбу фсб гур цру нато оон ес евросоюз белый телеграм telegram суд прокуратура "
    "правительство администрация минздрав росгвардия запад восток юг север центр".split()
)


@dataclass(frozen=True, slots=True)
class Place:
    key: str  # the shortest name stem: what two mentions are compared by
    stems: frozenset[str]
    name: str  # for titles: "Новая Таволжанка"
    broad: bool


@cache
def broad_names() -> frozenset[str]:
    names: set[str] = set(_aliases())
    for line in BROAD_FILE.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0]
        names.update(w.strip().replace("ё", "е") for w in line.split(",") if w.strip())
    return frozenset(names)


@cache
def broad_stems() -> frozenset[str]:
    stems: set[str] = set()
    for name in broad_names():
        stems.add(name)
        stems.update(_name_stems(name))
        stems.update(derived_stems(name))
    return frozenset(stems)


def _is_capitalized(token: Token) -> bool:
    text = token.text
    return text[:1].isupper() and not (len(text) > 1 and text.isupper()) and not token.is_number


CYRILLIC_LETTER = re.compile("[\u0400-\u04ff]")


def cyrillic(norm: str) -> bool:
    return CYRILLIC_LETTER.search(norm) is not None


def named_words(tokens: tuple[Token, ...]) -> list[int]:
    """Indices of the capitalized Cyrillic words: the only ones that may name a place or
    a person (most words are neither, and are passed over here once)."""
    return [
        i
        for i, token in enumerate(tokens)
        if token.text[:1].isupper() and _is_capitalized(token) and cyrillic(token.norm)
    ]


def _is_surname(token: Token) -> bool:
    tags = ru_tags(token.norm)
    return bool(tags) and "Surn" in tags[0]


def _is_place(tokens: tuple[Token, ...], i: int, text: str) -> bool:
    token = tokens[i]
    if not _is_capitalized(token) or not cyrillic(token.norm) or len(token.norm) < 3:
        return False
    if token.norm in NOT_PLACES or (token.lemmas and token.lemmas[0] in NOT_PLACES):
        return False
    tags = ru_tags(token.norm)
    if any("Geox" in t and "NOUN" in t for t in tags):
        return True
    if tags and ("ADJF" in tags[0] or tags[0] & {"Surn", "Patr"}):
        return False  # a person, or the adjective of a name ("Новой" in "у Новой Таволжанки")
    following = tokens[i + 1] if i + 1 < len(tokens) else None
    if (
        tags
        and "Name" in tags[0]
        and following is not None
        and _is_capitalized(following)
        and not text[token.end : following.start].strip()
    ):
        return False  # "у Марии Захаровой"; but "у Козинки" (a village and a first name)
    j = i - 1
    if j >= 0 and _is_capitalized(tokens[j]) and "ADJF" in (ru_tags(tokens[j].norm) or ({""},))[0]:
        j -= 1  # "у Новой Таволжанки"
    return (
        j >= 0
        and tokens[j].sentence == token.sentence
        and tokens[j].norm in _LOCATIVE
        and token.start > tokens[j].end
    )


@lru_cache(maxsize=100_000)
def place_lemma(norm: str, fallback: str) -> str:
    """The normal form of the place reading (`Работино`, not the adjective `работин`)."""
    for parse in morphology.parses(norm, "ru")[:4]:
        if "Geox" in parse.tag.grammemes:
            return parse.normal_form.replace("ё", "е")
    return fallback


def _lemma(token: Token) -> str:
    return place_lemma(token.norm, token.lemmas[0] if token.lemmas else token.norm)


def _display(tokens: tuple[Token, ...], i: int) -> str:
    token = tokens[i]
    lemma = _lemma(token)
    name = lemma[:1].upper() + lemma[1:]
    before = tokens[i - 1] if i > 0 else None
    if (
        before is not None
        and _is_capitalized(before)
        and before.sentence == token.sentence
        and not any("Geox" in t for t in ru_tags(before.norm))
    ):
        adjective = _nominative_adjective(before.norm, lemma)
        if adjective:
            return f"{adjective} {name}"
    return name


@lru_cache(maxsize=10_000)
def _nominative_adjective(adjective: str, noun: str) -> str | None:
    """ "Новой" before "Таволжанка" -> "Новая" (agreeing in gender with the name)."""
    ru = morphology.morph("ru")
    parses = [p for p in ru.parse(adjective) if "ADJF" in p.tag.grammemes]
    if not parses:
        return None
    noun_parse = ru.parse(noun)[0]
    gender = noun_parse.tag.gender or "masc"
    plural = "Pltm" in noun_parse.tag.grammemes
    grammemes = {"nomn", "plur"} if plural else {"nomn", "sing", gender}
    form = parses[0].inflect(grammemes)
    if form is None:
        return None
    return form.word[:1].upper() + form.word[1:]


def _place(lemma: str, name: str) -> Place:
    stems = set(_name_stems(lemma)) | {lemma}
    key = min(stems, key=len)
    broad = lemma in broad_names() or bool(stems & broad_stems())
    return Place(key, frozenset(stems), name, broad)


def places_in(analysis: Analysis, named: Sequence[int] | None = None) -> tuple[Place, ...]:
    """Every place named in the post, once each, in order of first mention. `named`: the
    post's `named_words`, when the caller has them."""
    tokens = analysis.tokens
    found: dict[str, Place] = {}
    for i in named_words(tokens) if named is None else named:
        if _is_place(tokens, i, analysis.text):
            lemma = _lemma(tokens[i])
            place = _place(lemma, _display(tokens, i))
            found.setdefault(place.key, place)
    return tuple(found.values())


def people_in(analysis: Analysis, named: Sequence[int] | None = None) -> frozenset[str]:
    """Surnames named in the post, as lemmas (`Гладкову` -> `гладков`)."""
    tokens = analysis.tokens
    people = (tokens[i] for i in (named_words(tokens) if named is None else named))
    return frozenset((t.lemmas[0] if t.lemmas else t.norm) for t in people if _is_surname(t))
