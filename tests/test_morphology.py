"""morphology.parses reads known words from the dictionary directly; it must give
what pymorphy3's full parse gives, in the same order, for every word."""

from __future__ import annotations

import re

import pytest

from bench.common import corpus
from bot.detection import morphology

_WORD = re.compile(r"[а-яёіїєґ'’-]+")


def _vocabulary(posts: int) -> list[str]:
    words: set[str] = set()
    for row in corpus(posts):
        words.update(_WORD.findall(row["text"].lower()))
    return sorted(words)


def _full(word: str, lang: str) -> list[tuple[object, str]]:
    return [(p.tag, p.normal_form) for p in morphology.morph(lang).parse(word)]


@pytest.mark.parametrize("lang", ["ru", "uk"])
def test_parses_agree_with_pymorphy_over_the_vocabulary_of_real_posts(lang: str) -> None:
    words = _vocabulary(1500)
    assert len(words) > 15_000
    read_directly = 0
    for word in words:
        assert [tuple(r) for r in morphology.parses(word, lang)] == _full(word, lang), word
        read_directly += morphology._READERS[lang](word) is not None
    # most words are known to one dictionary or the other, and took the short way
    assert read_directly > len(words) * (0.7 if lang == "ru" else 0.1)


@pytest.mark.parametrize(
    ("word", "lang"),
    [
        ("елка", "ru"),  # the dictionary's ё: the fixed form's lemma, ordered by P(t|w)
        ("все", "ru"),  # many parses, ordered by P(t|w)
        ("стали", "ru"),
        ("в", "ru"),  # a single letter is also read as an initial: the full parse
        ("я", "uk"),
        ("ганок", "uk"),  # the dictionary's ґ
        ("кое-что", "ru"),
        ("м'ясо", "uk"),
        ("белгородщина", "ru"),  # unknown to the dictionary: predicted by the full parse
        ("Курск", "ru"),  # not lower case: the full parse
        ("вагнеровцы", "uk"),
    ],
)
def test_parses_agree_with_pymorphy_on_the_edge_cases(word: str, lang: str) -> None:
    assert [tuple(r) for r in morphology.parses(word, lang)] == _full(word, lang)
