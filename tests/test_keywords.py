from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.detection import analyze, compile_rules, parse_rule
from bot.detection.keywords import (
    KeywordMatch,
    Matcher,
    Rule,
    RuleFileError,
    load_rules,
    normalize_channel,
    parse_rules,
)


def matched(rules: list[str], text: str, channel: Any = None) -> dict[str, list[str]]:
    matcher = compile_rules(parse_rule(r) for r in rules)
    return {m.rule_id: [w.text for w in m.words] for m in matcher.match(analyze(text), channel)}


@pytest.mark.parametrize(
    ("keyword", "text", "words"),
    [
        ("пленный", "Пленных доставили, пленным дали воды", ["Пленных", "пленным"]),
        ("пленный", "ПЛЕННЫЕ у нас", ["ПЛЕННЫЕ"]),
        ("полонений", "Звільнили полонених і полоненого", ["полонених", "полоненого"]),
        ("soldier", "Two soldiers and a soldier's helmet", ["soldiers", "soldier's"]),
        ("плен", "попали в плен, вернулись из плена", ["плен", "плена"]),
        ("пленных", "пленный сбежал", ["пленный"]),  # an inflected keyword still works
    ],
)
def test_every_inflected_form_matches(keyword: str, text: str, words: list[str]) -> None:
    assert matched([keyword], text) == {keyword: words}


@pytest.mark.parametrize(
    ("keyword", "text", "words"),
    [
        ("captive", "Two captives and a captive", ["captives", "captive"]),
        ("army", "armies of the world", ["armies"]),
        ("capture", "they captured, capturing, captures", ["captured", "capturing", "captures"]),
        ("take", "troops took and had taken", ["took", "taken"]),
        ("unit", "two units", ["units"]),
        ("Russian", "Russians say", ["Russians"]),
    ],
)
def test_english_inflections_match(keyword: str, text: str, words: list[str]) -> None:
    assert matched([keyword], text) == {keyword: words}


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        # English words sharing a Snowball stem but not a lemma
        ("captive", "A captivating story"),
        ("arm", "the army advanced"),
        ("general", "generally quiet"),
        ("unit", "the United Nations"),
        ("plenty", "plenary session"),
    ],
)
def test_english_words_of_one_stem_but_not_one_lemma_do_not_match(
    keyword: str, text: str
) -> None:
    assert matched([keyword], text) == {}


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("плен", "наступление, выступление, отопление, пленэр"),
        ("плен", "пленных привезли"),  # another lemma, not a substring match
        ("Курск", "курсы валют, курс рубля, курсант, экскурсия"),
        ("Белгород", "городской голова"),
        ("Сумы", "сумка и сумма"),
    ],
)
def test_substrings_never_match(keyword: str, text: str) -> None:
    assert matched([keyword], text) == {}


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("стать", "Читайте в статье"),  # статья, not a Ukrainian guess at "статье"
        ("больший", "Сбили больше двадцати"),
    ],
)
def test_a_word_one_dictionary_knows_takes_no_guesses_from_the_other(
    keyword: str, text: str
) -> None:
    # neither sentence has a letter only one language uses, so both dictionaries are asked
    assert matched([keyword], text) == {}


def test_a_word_only_the_other_dictionary_knows_takes_its_lemma_first() -> None:
    drones = next(t for t in analyze("Сбили два БПЛА над городом").tokens if t.norm == "бпла")
    assert drones.lemmas == ("бпла",)  # known to the Ukrainian dictionary only


@pytest.mark.parametrize(
    ("keyword", "text", "words"),
    [
        ("Белгород", "В Белгородской области белгородцы", ["Белгородской", "белгородцы"]),
        ("Белгород", "в Белгороде и на Белгородчине", ["Белгороде", "Белгородчине"]),
        ("Курск", "курский губернатор из Курской области", ["курский", "Курской"]),
        ("Харьков", "харьковчане и Харьковская область", ["харьковчане", "Харьковская"]),
        ("Мариуполь", "мариупольский порт", ["мариупольский"]),
        ("Авдеевка", "авдеевский коксохим", ["авдеевский"]),
        ("Запорожье", "Запорожская АЭС", ["Запорожская"]),
        ("Київ", "київський суд і Києві", ["київський", "Києві"]),
        ("Бахмут", "бахмутское направление", ["бахмутское"]),
    ],
)
def test_a_place_name_matches_adjectives_and_demonyms(
    keyword: str, text: str, words: list[str]
) -> None:
    assert matched([keyword], text) == {keyword: words}


@pytest.mark.parametrize(
    ("keyword", "text", "words"),
    [
        (
            "Москва",
            "московский вокзал, москвичи и Подмосковье",
            ["московский", "москвичи", "Подмосковье"],
        ),
        ("Киев", "Київ і київський, киевляне", ["Київ", "київський", "киевляне"]),
        ("Київ", "В Киеве", ["Киеве"]),
        ("Курск", "куряне и курянка", ["куряне", "курянка"]),
        ("Белгород", "бєлгородський губернатор", ["бєлгородський"]),
        ("Kyiv", "в Киеве", ["Киеве"]),
        ("Сумы", "Сумская область", ["Сумская"]),
    ],
)
def test_irregular_names_come_from_the_alias_list(
    keyword: str, text: str, words: list[str]
) -> None:
    assert matched([keyword], text) == {keyword: words}


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("курс", "курсовая работа"),  # not a place: no курс|овой
        ("Плен", "плёнка и пленка"),  # capitalized, but a common word: no плен|ка
        ("Мир", "мирянин"),
    ],
)
def test_common_words_get_no_name_derivatives(keyword: str, text: str) -> None:
    assert matched([keyword], text) == {}


@pytest.mark.parametrize(
    ("keyword", "text", "words"),
    [
        ("херсон", "херсонский порт", ["херсонский"]),  # a lowercase place name
        ("Костянтинівка", "костянтинівський напрямок", ["костянтинівський"]),  # not Russian
        ("Торецк", "торецкое направление", ["торецкое"]),  # unknown to both dictionaries
    ],
)
def test_names_without_capitals_or_dictionary_entries(
    keyword: str, text: str, words: list[str]
) -> None:
    assert matched([keyword], text) == {keyword: words}


def test_phrase_words_in_order_with_a_small_gap() -> None:
    rule = '"взять в плен"'
    assert matched([rule], "Бойцы взяли в плен солдата") == {rule: ["взяли", "в", "плен"]}
    assert matched([rule], "взяли их в плен") == {rule: ["взяли", "в", "плен"]}
    assert matched([rule], "в плен взяли") == {}  # out of order
    assert matched([rule], "взяли город, а в нём много людей, плен") == {}  # gap too long
    assert matched([rule], "Взяли высоту. В плен никто не попал") == {}  # across sentences


def test_each_phrase_occurrence_is_reported() -> None:
    rule = '"сдаться в плен"'
    text = "Сдались в плен двое. Потом сдался в плен третий"
    words = matched([rule], text)[rule]
    assert words == ["Сдались", "в", "плен", "сдался", "в", "плен"]


def test_exclusions_suppress_the_rule_in_any_inflection() -> None:
    rules = ['Белгород -not учения -not "футбольный клуб"']
    assert matched(rules, "В Белгороде прошли учения") == {}
    assert matched(rules, "Белгород: на учениях") == {}
    assert matched(rules, "футбольного клуба из Белгорода") == {}
    assert matched(rules, "Белгород обстреляли") == {rules[0]: ["Белгород"]}
    assert matched(rules, "клуб футбольный Белгород") == {rules[0]: ["Белгород"]}


def test_channel_scope() -> None:
    rules = ["пленный in @Rybar,@dva_majors", "пленный in -1001234567"]
    text = "пленные"
    assert set(matched(rules, text, "rybar")) == {rules[0]}
    assert set(matched(rules, text, "@DVA_MAJORS")) == {rules[0]}
    assert set(matched(rules, text, 1234567)) == {rules[1]}
    assert set(matched(rules, text, (1234567, "rybar"))) == set(rules)
    assert matched(rules, text, "other") == {}
    assert matched(rules, text, None) == {}


def test_regex_rules_match_the_original_text() -> None:
    rule = r"re:/ЧВК\s+«?\w+/i"
    assert matched([rule], "бойцы чвк «Вагнер» вошли") == {rule: ["чвк «Вагнер"]}
    assert matched([r"re:/ЧВК/"], "чвк") == {}  # case-sensitive without the i flag


def test_offsets_slice_the_original_text() -> None:
    text = "Читать https://t.me/x/1 — Пле́нных из Бeлгoрoдской области «взяли в плен»"
    matcher = compile_rules(parse_rule(r) for r in ["пленный", "Белгород", '"взять в плен"'])
    matches = matcher.match(analyze(text))
    assert [m.rule_id for m in matches] == ["пленный", "Белгород", '"взять в плен"']
    for m in matches:
        for w in m.words:
            assert text[w.start : w.end] == w.text
    assert matches[1].to_dict() == {
        "rule": "Белгород",
        "words": [{"text": "Бeлгoрoдской", "start": 38, "end": 50}],
    }


def test_results_follow_rule_order_and_each_rule_reports_once() -> None:
    result = compile_rules(parse_rule(r) for r in ["плен", "пленный"]).match(
        analyze("пленный в плену, пленные")
    )
    assert result == [
        KeywordMatch("плен", result[0].words),
        KeywordMatch("пленный", result[1].words),
    ]
    assert [w.text for w in result[1].words] == ["пленный", "пленные"]


def test_matches_as_words_and_spans_say_what_match_says() -> None:
    """match_words() (what the pipeline keeps) gives each rule's distinct words and
    every occurrence's span, as match() does, for words, phrases, exclusions, places,
    regexes and channel scopes."""
    rules = [
        "плен",
        "пленный",
        '"взять в плен" -not учения',
        "Белгород",
        r"re:/ЧВК\s+«?\w+/i",
        "пленный in @rybar",
        "сдаться в плен",
    ]
    matcher = compile_rules(parse_rule(r) for r in rules)
    texts = [
        "пленный в плену, пленные. Взяли в плен двоих под Белгородом, белгородские власти",
        "Бойцы чвк «Вагнер» и ЧВК Редут взяли в плен; учения",
        "Сдались в плен двое. Потом сдался в плен третий, пленных в Белгород",
        "Ничего не случилось",
    ]
    checked = 0
    for text in texts:
        for channel in (None, "rybar"):
            analysis = analyze(text)
            expected = [
                (
                    m.rule_id,
                    tuple(dict.fromkeys(w.text for w in m.words)),
                    tuple((w.start, w.end) for w in m.words),
                )
                for m in matcher.match(analysis, channel)
            ]
            found = matcher.match_words(analysis, channel)
            assert found == expected
            # alert planning relies on it: a rule's spans come in order, each once
            assert all(list(spans) == sorted(set(spans)) for _, _, spans in found)
            checked += len(expected)
    assert checked > 15
    words = matcher.match_words(analyze("Сдались в плен двое. Потом сдался в плен третий"))
    assert words[-1] == (
        "сдаться в плен",
        ("Сдались", "в", "плен", "сдался"),
        ((0, 7), (8, 9), (10, 14), (27, 33), (34, 35), (36, 40)),
    )


class CountingDict(dict[str, Any]):
    lookups = 0

    def get(self, key: str, default: Any = None) -> Any:
        CountingDict.lookups += 1
        return super().get(key, default)


def made_up_word(i: int) -> str:
    letters = "бвгджзклмнпрстфхцчшщ"
    tail = ""
    while True:
        i, digit = divmod(i, len(letters))
        tail += letters[digit]
        if not i:
            return "ква" + tail


def lookups(matcher: Matcher, text: str) -> tuple[int, list[str]]:
    matcher.exact = CountingDict(matcher.exact)
    matcher.stems = CountingDict(matcher.stems)
    CountingDict.lookups = 0
    found = [m.rule_id for m in matcher.match(analyze(text))]
    return CountingDict.lookups, found


def test_all_rules_compile_into_one_index_whose_cost_does_not_grow_with_rules() -> None:
    base = ["пленный", "Белгород", '"взять в плен"']
    filler = [f"[r{i}] {made_up_word(i)}" for i in range(10_000)]
    small = compile_rules(parse_rule(r) for r in base + filler[:7])
    large = compile_rules(parse_rule(r) for r in base + filler)
    assert large.stats()["patterns"] == 10_003
    # One key per distinct word, each pointing at its rule words.
    assert large.exact["пленный"] == ((0, 0),)
    assert large.exact["плен"] == ((2, 2),)
    assert large.exact[made_up_word(9999)] == ((10_002, 0),)
    text = "Под Белгородом взяли в плен двоих, пленные дали показания"
    small_lookups, small_found = lookups(small, text)
    large_lookups, large_found = lookups(large, text)
    assert small_found == large_found == base
    assert small_lookups == large_lookups


def test_rule_text_syntax() -> None:
    rule = parse_rule('[pow] "взять в плен" in @rybar -not учения -not "фильм про войну"')
    assert rule == Rule(
        id="pow",
        phrase="взять в плен",
        exclude=("учения", "фильм про войну"),
        channels=frozenset({"rybar"}),
    )
    assert parse_rule("Белгород").id == "Белгород"
    assert parse_rule("«сдаться в плен»").phrase == "сдаться в плен"
    assert parse_rule("re:/a b/i -not c").regex == "(?i)a b"
    assert parse_rule("плен —not кино").exclude == ("кино",)  # a phone's auto-dash


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty rule"),
        ('"взять в плен', "unclosed quote"),
        ("плен -not", "-not needs a word"),
        ("плен in", "in needs a word"),
        ("-not плен", "no keyword"),
        ("плен -foo", "unknown option '-foo'"),
        ("-foo", "unknown option"),
        ("re:/(unclosed/", "bad regex"),
        ("re:/abc", "re:/pattern/"),
        ('"..."', "has no words"),
        ("re:/a/ плен", "one keyword per rule"),
    ],
)
def test_parse_rule_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule(text)


def test_rules_file_errors_name_every_bad_line() -> None:
    text = "# POW rules\nпленный\n\nre:/x/ в плен\nплен -not\nпленный\n"
    with pytest.raises(RuleFileError) as info:
        parse_rules(text)
    assert str(info.value).splitlines() == [
        "line 4: unexpected 'в': one keyword per rule (a regex goes alone)",
        "line 5: -not needs a word after it",
        "line 6: rule 'пленный' already defined on line 2",
    ]


def test_load_rules_file(tmp_path: Path) -> None:
    good = tmp_path / "rules.txt"
    good.write_text('# comment\nпленный\n"взять в плен" -not кино\n', encoding="utf-8")
    assert [r.id for r in load_rules(good)] == ["пленный", '"взять в плен" -not кино']
    bad = tmp_path / "bad.txt"
    bad.write_text('ok\n"oops\n', encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"bad\.txt: line 2: unclosed quote"):
        load_rules(bad)
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules(tmp_path / "missing.txt")


@pytest.mark.parametrize(
    ("text", "phrase", "channels"),
    [
        ("Новая Таволжанка", "Новая Таволжанка", set()),
        ("взять в плен in @rybar -not учения", "взять в плен", {"rybar"}),
        ('"взять в" плен', "взять в плен", set()),
        # only `in @channel`, `in t.me/...` or `in <id>` is a filter; else `in` is a word
        ("soldiers captured in Bakhmut", "soldiers captured in Bakhmut", set()),
        ("captured in t.me/rybar", "captured", {"rybar"}),
    ],
)
def test_several_words_without_quotes_are_a_phrase(
    text: str, phrase: str, channels: set[str]
) -> None:
    rule = parse_rule(text)
    assert (rule.phrase, set(rule.channels)) == (phrase, channels)
    assert parse_rules(text + "\n")[0].phrase == phrase  # a rules file line too


def test_a_phrase_rule_without_quotes_matches_as_a_quoted_one() -> None:
    text = "Бой у села Новая Таволжанка. В Таволжанке тихо, новая школа цела"
    assert matched(["Новая Таволжанка"], text) == {"Новая Таволжанка": ["Новая", "Таволжанка"]}
    assert matched(["взять в плен"], "взяли их в плен") == {"взять в плен": ["взяли", "в", "плен"]}


def test_rule_needs_exactly_one_term() -> None:
    with pytest.raises(ValueError, match="either"):
        Rule(id="x")
    with pytest.raises(ValueError, match="either"):
        Rule(id="x", phrase="a", regex="b")


@pytest.mark.parametrize(
    ("raw", "norm"),
    [("@Rybar", "rybar"), ("https://t.me/Rybar", "rybar"), ("-1001234", "1234"), (1234, "1234")],
)
def test_normalize_channel(raw: str | int, norm: str) -> None:
    assert normalize_channel(raw) == norm
