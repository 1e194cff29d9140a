"""What grouping compares posts by, taken from a post and its analysis once.

Features are plain values (JSON round-trip), so an incident's members are
compared with a new post without reading or lemmatizing their text again.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from bot.detection import morphology
from bot.detection.keywords import derived_stems
from bot.detection.text import Analysis, Token, analyze
from bot.incidents.minhash import signature, signature_of, signatures
from bot.incidents.places import (
    CYRILLIC_LETTER,
    Place,
    broad_names,
    named_words,
    people_in,
    places_in,
    ru_tags,
)

CLAIMISH = frozenset({"claim", "denial", "exchange"})

# Parts of speech whose lemmas say what a post is about.
_CONTENT = frozenset({"NOUN", "VERB", "INFN", "ADJF", "ADJS", "PRTF", "PRTS", "NUMR"})
_STOP = frozenset(
    "быть это этот весь свой который такой наш ваш мочь стать сказать заявить сообщить "
    "также тот год день время новый самый один два три человек сегодня".split()
)
# Title words of news channels that name nobody in particular.
_GENERIC_TITLE = frozenset(
    "news live channel online official telegram media today daily breaking russia ukraine "
    "новость канал лента сводка live онлайн официальный пресса медиа служба".split()
)
# Endings of adjectives and demonyms that may be built on a place name.
_DERIVED_TAILS = ("ий", "ой", "ец", "янин", "чанин", "щина")
_HANDLE = re.compile(r"(?<![\w@])@([A-Za-z][A-Za-z0-9_]{3,31})\b")
_TME = re.compile(r"(?:https?://)?t(?:elegram)?\.me/(?:s/)?([A-Za-z][A-Za-z0-9_]{3,31})(?:/(\d+))?")


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    username: str | None = None
    title: str | None = None

    @property
    def names(self) -> frozenset[str]:
        """Lemmas that name this channel's owner in someone else's post: the
        distinctive words of its title ("Вячеслав Гладков" -> гладков, вячеслав),
        its initials ("Русский добровольческий корпус" -> рдк) and its username."""
        return channel_names(self.username, self.title)


@lru_cache(maxsize=10_000)
def channel_names(username: str | None, title: str | None) -> frozenset[str]:
    out: set[str] = set()
    if username:
        out.add(username.lower())
    if title:
        analysis = analyze(title)
        words = [t for t in analysis.tokens if not t.is_number]
        for token in words:
            lemma = token.lemmas[0] if token.lemmas else token.norm
            if (
                len(lemma) < 4
                or lemma in _STOP
                or lemma in _GENERIC_TITLE
                or lemma in broad_names()
                or not _is_name_word(lemma)
            ):
                continue  # "Русский", "Новости", "Раньше всех": words any post may have
            out.add(lemma)
        if len(words) >= 3:
            out.add("".join(t.norm[0] for t in words if t.norm))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Features:
    post_id: int
    channel_id: int
    msg_id: int
    date: datetime
    label: str = "none"  # the claim detector's: claim | denial | exchange | none
    count: int | None = None  # captives claimed
    places: tuple[Place, ...] = ()
    adjectives: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()
    handles: frozenset[str] = frozenset()  # @names and t.me/<name> links
    links: frozenset[str] = frozenset()  # quoted posts: "username/msg id"
    words: frozenset[str] = frozenset()  # content lemmas
    names: frozenset[str] = frozenset()  # lemmas of capitalized words and abbreviations
    fwd_key: str | None = None  # "channel id/msg id" of the forwarded origin
    reply_to: int | None = None
    grouped_id: int | None = None
    media: Mapping[str, int] = field(default_factory=dict)  # kind -> how many
    # MinHash of `words` when already computed (by a detection worker); not stored
    signature: int | None = field(default=None, compare=False, repr=False)

    @property
    def claimish(self) -> bool:
        return self.label in CLAIMISH

    @property
    def key(self) -> str:
        return f"{self.channel_id}/{self.msg_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "count": self.count,
            "places": [[p.key, sorted(p.stems), p.name, p.broad] for p in self.places],
            "adjectives": sorted(self.adjectives),
            "people": sorted(self.people),
            "handles": sorted(self.handles),
            "links": sorted(self.links),
            "words": sorted(self.words),
            "names": sorted(self.names),
            "fwd_key": self.fwd_key,
            "reply_to": self.reply_to,
            "grouped_id": self.grouped_id,
            "media": dict(self.media),
        }

    @classmethod
    def from_json(
        cls, post_id: int, channel_id: int, msg_id: int, date: datetime, data: Mapping[str, Any]
    ) -> Features:
        """A stored member's features; a claim, denial or exchange with its signature
        (new posts' text is compared with theirs, each member with many posts)."""
        label = data.get("label") or "none"
        words = frozenset(data.get("words", ()))
        return cls(
            post_id=post_id,
            channel_id=channel_id,
            msg_id=msg_id,
            date=date,
            label=label,
            count=data.get("count"),
            places=tuple(Place(k, frozenset(s), n, bool(b)) for k, s, n, b in data["places"]),
            adjectives=frozenset(data.get("adjectives", ())),
            people=frozenset(data.get("people", ())),
            handles=frozenset(data.get("handles", ())),
            links=frozenset(data.get("links", ())),
            words=words,
            names=frozenset(data.get("names", ())),
            fwd_key=data.get("fwd_key"),
            reply_to=data.get("reply_to"),
            grouped_id=data.get("grouped_id"),
            media=dict(data.get("media", {})),
            signature=signature_of(words) if label in CLAIMISH else None,
        )


@lru_cache(maxsize=10_000)
def _is_name_word(lemma: str) -> bool:
    """A noun, a name or a word the dictionary does not know (Latin words too)."""
    if not any("\u0400" <= ch <= "\u04ff" for ch in lemma):
        return lemma.isalpha()
    parse = morphology.parses(lemma, "ru")
    return (
        not parse or parse[0].tag.POS == "NOUN" or not morphology.morph("ru").word_is_known(lemma)
    )


def _word_features(
    tokens: Sequence[Token],
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(content words, names, adjective stems) of a post's tokens, in one pass (a post
    has ~55 tokens, and each pass over them costs more than most of its checks).

    Content words: lemmas of Russian nouns, verbs, adjectives, participles and numerals,
    and of every word not in Cyrillic; three letters or more, no stop word.
    Names: lemmas of capitalized words inside a sentence, and abbreviations (РДК).
    Adjective stems: of adjectives that may be built on a place name (`белгородский`
    -> `белгород`): they count only when a place of the other post has that stem."""
    words: set[str] = set()
    names: set[str] = set()
    stems: set[str] = set()
    tags_of = ru_tags
    has_cyrillic = CYRILLIC_LETTER.search
    sentence = -1
    for text, norm, _, _, index, lemmas, is_number in tokens:
        first = index != sentence  # any word starts a sentence with a capital
        sentence = index
        if is_number:
            continue
        lemma = lemmas[0] if lemmas else norm
        if lemma.endswith(_DERIVED_TAILS) and has_cyrillic(lemma):
            stems.update(derived_stems(lemma))
        size = len(norm)
        if size >= 3 and lemma not in _STOP:
            if has_cyrillic(norm) is None:
                words.add(lemma)
            else:
                tags = tags_of(norm)
                if tags and not tags[0].isdisjoint(_CONTENT):  # its part of speech
                    words.add(lemma)
        if size >= 2 and text[:1].isupper() and (not first or text.isupper()):
            names.add(lemma)
    return frozenset(words), frozenset(names), frozenset(stems)


def mentions(text: str, entity_urls: Iterable[str] = ()) -> tuple[frozenset[str], frozenset[str]]:
    """(@names and t.me names, quoted posts as "name/msg id") in the text and its links."""
    # each pattern needs its literal: a text without it is not scanned (most are not)
    handles = {m.group(1).lower() for m in _HANDLE.finditer(text)} if "@" in text else set()
    links: set[str] = set()
    for source in (text, *entity_urls):
        if ".me/" not in source:
            continue
        for m in _TME.finditer(source):
            name = m.group(1).lower()
            if name in ("joinchat", "c", "addlist", "share"):
                continue
            handles.add(name)
            if m.group(2):
                links.add(f"{name}/{m.group(2)}")
    return frozenset(handles), frozenset(links)


class TextFeatures(NamedTuple):
    """What grouping takes from a post's text alone: on bulk paths a detection worker
    computes it beside the post's other detection results."""

    places: tuple[Place, ...]
    adjectives: frozenset[str]
    people: frozenset[str]
    words: frozenset[str]
    names: frozenset[str]
    signature: int | None = None  # MinHash of `words`


def text_features(analysis: Analysis, *, signed: bool = False) -> TextFeatures:
    words, names, adjectives = _word_features(analysis.tokens)
    named = named_words(analysis.tokens)
    return TextFeatures(
        places=places_in(analysis, named),
        adjectives=adjectives,
        people=people_in(analysis, named),
        words=words,
        names=names,
        signature=signature(words) if signed else None,
    )


def with_signatures(found: Sequence[TextFeatures]) -> list[TextFeatures]:
    """The features with their signatures, computed together (a detection worker's
    share of a bulk batch)."""
    marks = signatures([f.words for f in found])
    return [f._replace(signature=mark) for f, mark in zip(found, marks, strict=True)]


def features_of(
    *,
    post_id: int,
    channel_id: int,
    msg_id: int,
    date: datetime,
    text: str,
    found: TextFeatures,
    label: str | None,
    count: int | None,
    fwd_key: str | None = None,
    reply_to: int | None = None,
    grouped_id: int | None = None,
    media_kinds: Sequence[str] = (),
    entity_urls: Iterable[str] = (),
) -> Features:
    handles, links = mentions(text, entity_urls)
    return Features(
        post_id=post_id,
        channel_id=channel_id,
        msg_id=msg_id,
        date=date,
        label=label or "none",
        count=count,
        places=found.places,
        adjectives=found.adjectives,
        people=found.people,
        handles=handles,
        links=links,
        words=found.words,
        names=found.names,
        fwd_key=fwd_key,
        reply_to=reply_to,
        grouped_id=grouped_id,
        media=dict(Counter(media_kinds)),
        signature=found.signature,
    )
