from __future__ import annotations

import argparse
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from bot.cli import classify


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    classify.add_arguments(parser)
    return parser.parse_args(list(argv))


def run(lines: list[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = StringIO()
    code = classify.run(parse_args(*argv), StringIO("\n".join(lines) + "\n"), out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_one_output_line_per_input_line_and_errors_do_not_stop_processing() -> None:
    text = "Бойцы взяли в плен трёх солдат под Белгородом"
    lines = [
        json.dumps({"id": 7, "text": text}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "x"}),
        "",
        "[1, 2]",
        json.dumps({"text": "Курсы валют на сегодня"}, ensure_ascii=False),
    ]
    code, out = run(lines, "--keyword", "Белгород", "-k", '"взять в плен"')
    assert code == 0
    assert len(out) == 5
    first = out[0]
    assert first["id"] == 7
    assert first["lang"] == "ru"
    assert first["label"] == "claim" and first["claim"] is True
    assert first["count"] == 3
    assert 0 < first["score"] <= 1
    assert {"unverified", "evidence"} <= first.keys()
    assert [k["rule"] for k in first["keywords"]] == ["Белгород", '"взять в плен"']
    place = first["keywords"][0]["words"][0]
    assert text[place["start"] : place["end"]] == place["text"] == "Белгородом"
    assert out[1]["line"] == 2 and "not JSON" in out[1]["error"]
    assert out[2] == {"line": 3, "error": 'no "text" string'}
    assert out[3] == {"line": 5, "error": "not a JSON object"}
    assert "id" not in out[4]
    assert out[4]["keywords"] == [] and out[4]["label"] == "none"


def test_output_keeps_non_ascii_readable() -> None:
    out = StringIO()
    line = json.dumps({"text": "пленные"}, ensure_ascii=False)
    classify.run(parse_args("-k", "пленный"), StringIO(line), out)
    assert '"rule": "пленный"' in out.getvalue()


def test_rules_file_and_channel_scope(tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("# scoped\nпленный in @rybar\nКурск\n", encoding="utf-8")
    lines = [
        json.dumps({"text": "пленные из Курской области", "channel": "rybar"}),
        json.dumps({"text": "пленные из Курской области", "channel_id": 42}),
    ]
    code, out = run(lines, "--rules", str(rules))
    assert code == 0
    assert [k["rule"] for k in out[0]["keywords"]] == ["пленный in @rybar", "Курск"]
    assert [k["rule"] for k in out[1]["keywords"]] == ["Курск"]


def test_bad_rules_file_exits_2_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("пленный\nre:/x/ в плен\n", encoding="utf-8")
    out = StringIO()
    code = classify.run(parse_args("--rules", str(rules)), StringIO('{"text": "x"}\n'), out)
    assert code == 2
    assert out.getvalue() == ""
    assert "rules.txt: line 2: unexpected" in capsys.readouterr().err


def test_a_keyword_of_several_words_is_a_phrase() -> None:
    out = StringIO()
    lines = '{"id": 1, "text": "Обстрел села Новая Таволжанка"}\n{"id": 2, "text": "Новая школа"}\n'
    code = classify.run(parse_args("--keyword", "Новая Таволжанка"), StringIO(lines), out)
    assert code == 0
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [[k["rule"] for k in r["keywords"]] for r in results] == [["Новая Таволжанка"], []]


def test_bad_keyword_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = classify.run(parse_args("-k", '"unclosed'), StringIO(""), StringIO())
    assert code == 2
    assert "--keyword #1" in capsys.readouterr().err


def test_missing_rules_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = classify.run(parse_args("--rules", str(tmp_path / "nope")), StringIO(""), StringIO())
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def test_detect_runs_analysis_keywords_and_claims_together() -> None:
    from bot.detection import compile_rules, detect, parse_rule

    text = "ВСУ заявили, что взяли в плен двоих у Белгорода"
    result = detect(text, compile_rules([parse_rule("Белгород")]), channel="any")
    assert result.analysis.text == text
    assert [k.rule_id for k in result.keywords] == ["Белгород"]
    assert result.claim.label == "claim"
    assert detect(text).keywords == ()
    as_dict = result.to_dict()
    assert as_dict["lang"] == "ru" and as_dict["claim"] is True
    assert as_dict["keywords"][0]["words"][0]["text"] == "Белгорода"
