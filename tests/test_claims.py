"""Captured-soldier claim detector against the labelled set and targeted cases.

tests/data/claims_labelled.jsonl: records with ``source: "corpus"`` are real posts
from bench/data/ru_news_posts.jsonl.gz, derived from the dataset of
NKTKLN/telegram-news-classifier (CC BY 4.0); ``source: "dev"`` are the shared
starting set; ``source: "written"`` were written for this set.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bot.detection.claims import LABELS, ClaimResult, detect_claim
from bot.detection.text import analyze

LABELLED = Path(__file__).parent / "data" / "claims_labelled.jsonl"
F1_MIN = 0.90
# tests/data/claims_heldout.jsonl: 150 texts written before the detector was read, to
# estimate how it does on posts nobody tuned it on. Its first run scored F1 0.95 ru,
# 0.86 uk, 0.80 en; the general fixes that followed were drawn from those errors, so
# the set is no longer unseen and its current score overstates what a fresh set would
# give. The bar is therefore below the labelled set's: a drop under it means a change
# lost a whole construction, not one text.
HELDOUT = Path(__file__).parent / "data" / "claims_heldout.jsonl"
HELDOUT_F1_MIN = 0.85
# Captures of saboteurs, spotters, "servicemen of unit N" and of gear rather than
# soldiers, with near misses (a recording "captured" them, they captured a village).
PERSONS_EQUIPMENT = Path(__file__).parent / "data" / "claims_persons_equipment.jsonl"


@cache
def records() -> tuple[dict[str, Any], ...]:
    with LABELLED.open(encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())


@cache
def results() -> tuple[ClaimResult, ...]:
    return tuple(detect_claim(analyze(rec["text"])) for rec in records())


def detect(text: str) -> ClaimResult:
    return detect_claim(analyze(text))


def test_labelled_set_is_large_and_mixed() -> None:
    recs = records()
    by_lang = {lang: [r for r in recs if r["lang"] == lang] for lang in ("ru", "uk", "en")}
    assert len(recs) >= 300
    assert len(by_lang["ru"]) >= 150 and len(by_lang["uk"]) >= 80 and len(by_lang["en"]) >= 50
    share = sum(r["label"] for r in recs) / len(recs)
    assert 0.25 <= share <= 0.45
    assert sum(r.get("source") == "corpus" for r in recs) >= 50
    for rec in recs:
        assert rec["label"] in (0, 1) and rec["kind"] and rec["text"]


@cache
def heldout() -> tuple[dict[str, Any], ...]:
    with HELDOUT.open(encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())


def _prf(
    recs: tuple[dict[str, Any], ...], res: tuple[ClaimResult, ...], lang: str
) -> tuple[float, float, float]:
    tp = fp = fn = 0
    for rec, r in zip(recs, res, strict=True):
        if rec["lang"] != lang:
            continue
        tp += r.claim and rec["label"] == 1
        fp += r.claim and rec["label"] == 0
        fn += not r.claim and rec["label"] == 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@pytest.mark.parametrize("lang", ["ru", "uk", "en"])
def test_f1_per_language(lang: str) -> None:
    precision, recall, f1 = _prf(records(), results(), lang)
    assert f1 >= F1_MIN, f"{lang}: P={precision:.3f} R={recall:.3f} F1={f1:.3f}"


def test_heldout_set_is_mixed() -> None:
    recs = heldout()
    counts = {lang: sum(r["lang"] == lang for r in recs) for lang in ("ru", "uk", "en")}
    assert counts["ru"] >= 70 and counts["uk"] >= 45 and counts["en"] >= 35
    assert 0.3 <= sum(r["label"] for r in recs) / len(recs) <= 0.5
    for rec in recs:
        assert rec["label"] in (0, 1) and rec["kind"] and rec["text"]


@pytest.mark.parametrize("lang", ["ru", "uk", "en"])
def test_heldout_f1_per_language(lang: str) -> None:
    recs = heldout()
    res = tuple(detect_claim(analyze(rec["text"])) for rec in recs)
    precision, recall, f1 = _prf(recs, res, lang)
    assert f1 >= HELDOUT_F1_MIN, f"{lang}: P={precision:.3f} R={recall:.3f} F1={f1:.3f}"


def test_denials_are_labelled_denial() -> None:
    pairs = [(r, x) for r, x in zip(records(), results(), strict=True) if r["kind"] == "denial"]
    assert pairs
    wrong = [r["text"] for r, x in pairs if x.label != "denial"]
    assert not wrong


def test_exchanges_never_alert_and_are_mostly_labelled_exchange() -> None:
    pairs = [(r, x) for r, x in zip(records(), results(), strict=True) if r["kind"] == "exchange"]
    assert pairs
    assert not [r["text"] for r, x in pairs if x.claim]
    # Exchange talk with no captivity word at all ("обмен «всех на всех»") stays "none".
    assert sum(x.label == "exchange" for _, x in pairs) / len(pairs) >= 0.85


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (
            "Гладков: информация о пленении военнослужащих не соответствует действительности.",
            "denial",
        ),
        ("Наши бойцы никого не брали в плен, видео постановочное.", "denial"),
        ("Жоден прикордонник не потрапив у полон, заявили в ДПСУ.", "denial"),
        ("Officials denied that any soldiers were captured during the raid.", "denial"),
        ("No servicemen were taken prisoner, the ministry said.", "denial"),
        ("Обмен пленными: домой вернулись 90 военнослужащих.", "exchange"),
        ("Ще 75 оборонців повернулися з полону.", "exchange"),
        ("A prisoner swap brought 75 POWs home.", "exchange"),
        ("РДК заявил о захвате в плен двух военнослужащих.", "claim"),
        ("Российский город оказался в плену снегопадов.", "none"),
        ("Russian troops captured the village of Krynky.", "none"),
        ("A drone captured the moment soldiers fled.", "none"),
        ("Если попадёте в плен, называйте только имя.", "none"),
        ("Сколько наших бойцов сейчас в плену?", "none"),
        ("В 1943 году в плен попали тысячи немецких солдат.", "none"),
        ("Координаційний штаб з питань поводження з військовополоненими провів брифінг.", "none"),
        # constructions beyond the labelled set
        ("Вчера на нашем участке ещё трое сдались.", "claim"),
        ("Наши морпехи взяли 12 пленных под Угледаром.", "claim"),
        ("Військові взяли в полон понад сто російських строковиків.", "claim"),
        ("Біля Торецька до наших рук потрапили четверо окупантів.", "claim"),
        ("Пятеро бойцов ВСУ сложили оружие у Работино.", "claim"),
        ("Four Russian soldiers laid down their arms near Kupiansk.", "claim"),
        ("Russia says it captured a Ukrainian sabotage group of four men.", "claim"),
        ("Ukrainian militants who surrendered near Sudzha are being treated.", "claim"),
        ("RDK says it captured several Russian servicemen and offers to swap them.", "claim"),
        ("Один из пленных — гражданин Румынии — дал показания.", "claim"),
        ("Добровольная сдача в плен карается сроком до 10 лет.", "none"),
        ("Солдаты, сдавайтесь в плен! Звоните на горячую линию.", "none"),
        ("Два года назад защитники Мариуполя вышли в плен.", "none"),
        ("Штурмовики захопили опорний пункт окупантів біля Бахмута.", "none"),
        ("Командир наказав своїм бійцям не брати полонених, кажуть свідки.", "none"),
        ("Командування закликало окупантів здаватися в полон.", "none"),
        ("Україна в полоні стереотипів, а ця пісня полонила серця мільйонів.", "none"),
        ("European politics has been held captive by fear of escalation.", "none"),
        ("The UN says both sides have mistreated prisoners of war.", "none"),
    ],
)
def test_label(text: str, label: str) -> None:
    res = detect(text)
    assert res.label == label, res.evidence
    assert res.claim is (label == "claim")


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("Бойцы РДК взяли в плен 3 военнослужащих.", 3),
        ("Двое контрактников сдались в плен добровольцам.", 2),
        ("Легион сообщил о пленении двоих пограничников.", 2),
        ("В плен попали трое срочников.", 3),
        ("Ещё пятеро оккупантов сдались в плен.", 5),
        ("За сутки в плен сдались 17 военнослужащих ВСУ, 40 ликвидированы.", 17),
        ("Десантники взяли в полон двох окупантів.", 2),
        ("Ще п'ятеро росіян здалися в полон.", 5),
        ("У полон потрапили 11 окупантів.", 11),
        ("Троє військових РФ опинилися в полоні.", 3),
        ("The Legion says it captured two Russian soldiers.", 2),
        ("Three conscripts surrendered to Ukrainian troops.", 3),
        ("Ukrainian forces took 14 Russian soldiers prisoner.", 14),
        ("Бойцы 155-й бригады взяли в плен снайпера.", None),
        ("A Russian officer was taken prisoner near Bakhmut.", None),
    ],
)
def test_count(text: str, count: int | None) -> None:
    res = detect(text)
    assert res.claim
    assert res.count == count, res.evidence


def test_count_on_labelled_records() -> None:
    checked = 0
    for rec, res in zip(records(), results(), strict=True):
        if "count" in rec:
            checked += 1
            assert res.count == rec["count"], rec["text"]
    assert checked >= 30


def test_hedged_claims_are_unverified_claims() -> None:
    pairs = [(r, x) for r, x in zip(records(), results(), strict=True) if r.get("unverified")]
    assert len(pairs) >= 15
    for rec, res in pairs:
        assert res.claim and res.unverified, rec["text"]


@pytest.mark.parametrize(
    ("text", "unverified"),
    [
        ("Якобы в плен взяты 12 контрактников.", True),
        ("По данным военкоров, двое бойцов сдались в плен.", True),
        ("Нібито в полон потрапили троє бійців.", True),
        ("Five Russian conscripts allegedly surrendered.", True),
        ("Reportedly, two soldiers were captured near Avdiivka.", True),
        ("Бойцы Легиона взяли в плен российского контрактника.", False),
        ("Десантники взяли в полон двох окупантів.", False),
        ("Three conscripts surrendered to Ukrainian troops.", False),
    ],
)
def test_unverified(text: str, unverified: bool) -> None:
    res = detect(text)
    assert res.claim
    assert res.unverified is unverified


def test_evidence_offsets_slice_the_original_text() -> None:
    extra = [
        "ＲＤＫ:  Бойцы  взяли в плён двоих военнослужащих 🔥 https://t.me/x/1",
        "Пленённые под Кременной морпехи\u00ad дали интервью.",
        "Військовополонені розповіли про обстріли — відео: https://example.org/v",
    ]
    texts = [r["text"] for r in records()] + extra
    for text in texts:
        res = detect(text)
        for ev in res.evidence:
            assert text[ev.start : ev.end] == ev.text, (text, ev)
            assert ev.kind in {"cue", "blocker", "negation", "denial", "hedge", "exchange", "count"}
            assert ev.rule
        if res.label != "none":
            assert any(ev.kind == "cue" for ev in res.evidence)


def test_scores_are_probabilities_that_agree_with_the_label() -> None:
    for res in results():
        assert 0.0 <= res.score <= 1.0
        assert res.label in LABELS
        assert res.claim is (res.label == "claim")
        if res.claim:
            assert res.score >= 0.5
        else:
            assert res.score < 0.5
            assert res.count is None and not res.unverified


def test_no_cue_is_cheap_and_empty() -> None:
    res = detect("Курс доллара на Мосбирже превысил 92 рубля. Наступление продолжается.")
    assert res == ClaimResult("none", False, 0.0, None, False, ())
    assert detect("").label == "none"


def test_pure_and_json_ready() -> None:
    text = "РДК: у нас в руках трое пленных, якобы из Росгвардии."
    first, second = detect(text), detect(text)
    assert first == second
    data = json.loads(json.dumps(first.to_dict(), ensure_ascii=False))
    assert data["label"] == "claim" and data["claim"] is True
    assert data["count"] == 3 and data["unverified"] is True
    assert {"kind", "text", "start", "end", "rule"} <= set(data["evidence"][0])


def test_people_outside_the_military_lexicon_and_gear_instead_of_soldiers() -> None:
    with PERSONS_EQUIPMENT.open(encoding="utf-8") as handle:
        recs = [json.loads(line) for line in handle if line.strip()]
    assert {r["lang"] for r in recs} == {"ru", "uk", "en"} and len(recs) >= 30
    wrong = [
        (r["kind"], r["text"])
        for r in recs
        if (detect(r["text"]).label == "claim") != (r["label"] == 1)
    ]
    assert wrong == []
