from __future__ import annotations

import pytest

from bot.detection.text import Analysis, Token, analyze, normalize, normalize_word


def words(analysis: Analysis) -> list[str]:
    return [t.text for t in analysis.tokens]


def assert_offsets(analysis: Analysis) -> None:
    for token in analysis.tokens:
        assert analysis.text[token.start : token.end] == token.text
    for sentence in analysis.sentences:
        assert 0 <= sentence.start < sentence.end <= len(analysis.text)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("ВСЁ", "все"),
        ("Ёлка", "елка"),
        ("м’ясо", "м'ясо"),
        ("мʼясо", "м'ясо"),
        ("м`ясо", "м'ясо"),
        ("Бeлгoрoд", "белгород"),  # Latin e and o inside a Cyrillic word
        ("KУРСК", "курск"),  # Latin K
        ("Kиїв", "київ"),
        ("Bаkhmut", "bakhmut"),  # Cyrillic а inside a Latin word
        ("пле́нные", "пленные"),  # stress mark
        ("ﬁle", "file"),  # NFKC ligature
        ("ＰＬＥＮ", "plen"),  # full-width
    ],
)
def test_normalize_word(raw: str, norm: str) -> None:
    assert normalize_word(raw) == norm


def test_normalize_text_strips_urls_and_folds() -> None:
    assert normalize("ВСЁ тут: https://t.me/x/1 Бeлгoрoд") == "все тут:   белгород"


def test_offsets_refer_to_the_original_text_after_nfkc_and_stress_marks() -> None:
    text = "ﬁ Пле́нные ＰＬＥＮ в Бeлгoрoде — дальше"
    a = analyze(text)
    assert_offsets(a)
    assert [t.norm for t in a.tokens] == ["fi", "пленные", "plen", "в", "белгороде", "дальше"]
    assert a.tokens[1].lemmas[0] == "пленный"
    assert a.tokens[4].lemmas == ("белгород",)


def test_urls_are_not_tokens_and_offsets_stay_right() -> None:
    text = "Читать [тут](https://t.me/rybar/123?x=1) и www.rbc.ru/news, плен rbc.ru/a/b конец"
    a = analyze(text)
    assert words(a) == ["Читать", "тут", "и", "плен", "конец"]
    assert_offsets(a)
    assert text[a.tokens[3].start : a.tokens[3].end] == "плен"


def test_apostrophe_inside_a_word_is_part_of_it() -> None:
    a = analyze("Зʼявилися п’ять полонених, 'цитата' та м'ясо")
    assert words(a) == ["Зʼявилися", "п’ять", "полонених", "цитата", "та", "м'ясо"]
    assert a.tokens[1].norm == "п'ять"
    assert_offsets(a)


def test_numbers() -> None:
    a = analyze("Взяли 1\u00a0500 и 37 человек")
    numbers = [t for t in a.tokens if t.is_number]
    assert [(t.text, t.norm, t.lemmas) for t in numbers] == [
        ("1\u00a0500", "1500", ("1500",)),
        ("37", "37", ("37",)),
    ]


def test_lemmas_ru_uk_en() -> None:
    a = analyze("Пленных увезли. Полонених звільнили. Soldiers were captured.")
    lemmas = {t.text: t.lemmas for t in a.tokens}
    assert lemmas["Пленных"][0] == "пленный"
    assert lemmas["Полонених"][0] == "полонений"
    assert lemmas["Soldiers"] == ("soldier",)
    assert lemmas["captured"] == ("capture",)  # a lemma, not the Snowball stem "captur"


def test_sentences_and_their_languages() -> None:
    text = (
        "В Белгороде объявили тревогу. Російські війська обстріляли Харків.\n"
        "Ukraine says two soldiers were captured near the border"
    )
    a = analyze(text)
    assert [text[s.start : s.end] for s in a.sentences] == [
        "В Белгороде объявили тревогу.",
        "Російські війська обстріляли Харків.",
        "Ukraine says two soldiers were captured near the border",
    ]
    assert [s.lang for s in a.sentences] == ["ru", "uk", "en"]
    assert [a.tokens[i].sentence for i in (0, 4, 8)] == [0, 1, 2]


def test_abbreviations_and_lowercase_continuations_do_not_split_sentences() -> None:
    a = analyze("Удар по г. Белгород, т.е. по центру. Потом тишина")
    assert len(a.sentences) == 2


def test_undecided_short_sentence_takes_the_posts_language() -> None:
    # "Про це" has no letter unique to either language; the rest is plainly Ukrainian.
    a = analyze("Про це. Сили оборони відбили атаку")
    assert [s.lang for s in a.sentences] == ["uk", "uk"]
    a = analyze("Про это. Силы обороны отбили атаку")
    assert [s.lang for s in a.sentences] == ["ru", "ru"]


def test_undecided_words_get_lemmas_from_both_languages() -> None:
    # No letter decides the language, so both dictionaries are asked.
    a = analyze("Полонених вели")
    token = a.tokens[0]
    assert "полонений" in token.lemmas


def test_lingua_decides_a_post_the_letters_cannot() -> None:
    # Neither text has a letter unique to one language.
    assert analyze("Сегодня в городе прошла акция").lang == "ru"
    assert analyze("Зараз у нас тривога").lang == "uk"
    assert analyze("Вчора вона була вдома").lang == "uk"


def test_dominant_language_and_empty_text() -> None:
    assert analyze("Пленных увезли в тыл. Ok.").lang == "ru"
    empty = analyze("")
    assert empty.tokens == () and empty.sentences == () and empty.lang == "other"
    assert analyze("12 345").lang == "other"


def test_mixed_scripts_with_unfixable_letters_keep_their_form() -> None:
    a = analyze("Zлой умысел")
    assert a.tokens[0].norm == "zлой"
    assert_offsets(a)


def test_tokens_are_ordinary_frozen_tokens() -> None:
    token = analyze("Пленных").tokens[0]
    assert token == Token("Пленных", "пленных", 0, 7, 0, token.lemmas, False)
    assert hash(token) == hash(Token("Пленных", "пленных", 0, 7, 0, token.lemmas, False))
    with pytest.raises(AttributeError):
        token.norm = "x"  # type: ignore[misc]
