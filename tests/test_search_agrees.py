"""One notion of "matches": a keyword rule alerts on a post exactly when a search
for that keyword over an archive holding the post finds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.detection import analyze, compile_rules, parse_rule
from bot.pipeline import Pipeline
from bot.query import search
from storage import archive
from storage.db import Database, open_database
from storage.models import Channel, Post
from tests import test_keywords

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

# Phrase cases of tests/test_keywords.py written as plain asserts there.
PHRASES = [
    ('"взять в плен"', "Бойцы взяли в плен солдата"),
    ('"взять в плен"', "взяли их в плен"),
    ('"взять в плен"', "в плен взяли"),
    ('"взять в плен"', "взяли город, а в нём много людей, плен"),
    ('"взять в плен"', "Взяли высоту. В плен никто не попал"),
    ('"сдаться в плен"', "Сдались в плен двое. Потом сдался в плен третий"),
    ("Белгород", "футбольного клуба из Белгорода"),
    ("Белгород", "Губернатор: Шебекино Белгородской области обстреляли"),
    ("Київ", "Kyiv and Киев"),
]


def keyword_cases() -> list[tuple[str, str]]:
    """Every (keyword, text) pair of the keyword tests' parametrized cases."""
    cases: list[tuple[str, str]] = []
    for name in dir(test_keywords):
        for mark in getattr(getattr(test_keywords, name), "pytestmark", []):
            if mark.name != "parametrize":
                continue
            names = (
                [n.strip() for n in mark.args[0]]
                if not isinstance(mark.args[0], str)
                else [n.strip() for n in mark.args[0].split(",")]
            )
            if names[:2] != ["keyword", "text"]:
                continue
            cases.extend((values[0], values[1]) for values in mark.args[1])
    return cases + PHRASES


CASES = keyword_cases()


@pytest.fixture
async def archive_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_database(tmp_path / "archive.db")
    await archive.save_channel(db, Channel(100, 1, "frontnews", "Front news"))
    texts = list(dict.fromkeys(text for _, text in CASES))
    posts = [
        Post(channel_id=100, msg_id=i + 1, date=T0 + timedelta(minutes=i), text=t, raw={"id": i})
        for i, t in enumerate(texts)
    ]
    await Pipeline(db).ingest(posts, "catchup")
    yield db
    await db.close()


def test_the_cases_cover_every_kind_of_keyword() -> None:
    assert len(CASES) > 40
    assert any(k == "Киев" for k, _ in CASES) and any(k == "soldier" for k, _ in CASES)


async def test_a_rule_matches_exactly_what_a_search_for_it_finds(archive_db: Database) -> None:
    texts = list(dict.fromkeys(text for _, text in CASES))
    msg_of = {t: i + 1 for i, t in enumerate(texts)}
    disagree: list[str] = []
    for keyword, text in CASES:
        matcher = compile_rules([parse_rule(keyword)])
        alerts = bool(matcher.match(analyze(text)))
        found = {h.msg_id for h in await search(archive_db, keyword, limit=500)}
        if alerts != (msg_of[text] in found):
            disagree.append(f"{keyword!r} on {text!r}: rule {alerts}, search {not alerts}")
    assert disagree == []
