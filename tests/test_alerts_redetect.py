"""`chanwatch redetect`: re-run detection over the archive, store the new verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.cli.redetect import redetect
from bot.pipeline import Pipeline
from storage import archive
from storage.db import open_database
from storage.models import Channel, Post

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TEXTS = ["Бойцы РДК взяли в плен двоих военнослужащих", "Обстановка спокойная", "Тиша"]


async def _archive(path: Path | str) -> None:
    db = await open_database(path)
    await archive.save_channel(db, Channel(10, 1, "rdk_channel", "РДК"))
    posts = [Post(10, i + 1, T0, text) for i, text in enumerate(TEXTS)]
    await Pipeline(db).ingest(posts, "import")
    await db.execute("UPDATE posts SET claim_label = NULL, claim_score = NULL, lang = NULL")
    await db.close()


async def test_redetect_restores_every_verdict_and_can_resume(archive_target: Path | str) -> None:
    path = archive_target
    await _archive(path)
    db = await open_database(path)
    try:
        seen: list[tuple[int, int]] = []
        result = await redetect(
            db, batch=2, progress=lambda done, total: seen.append((done, total))
        )
        assert (result.posts, result.changed, result.claims) == (3, 3, 1)
        assert seen == [(2, 3), (3, 3)]
        rows = await db.fetchall("SELECT claim_label, lang FROM posts ORDER BY msg_id")
        assert [tuple(r) for r in rows] == [("claim", "ru"), ("none", "ru"), ("none", "uk")]
        again = await redetect(db, since_id=result.last_id)
        assert again.posts == 0
    finally:
        await db.close()


def test_redetect_command(
    tmp_path: Path, archive_target: Path | str, monkeypatch, capsys
) -> None:
    import asyncio

    from bot.cli import parser as cli

    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)
    path = archive_target
    asyncio.run(_archive(path))
    monkeypatch.setenv("CHANWATCH_DB", str(path))
    assert cli.main(["--env-file", str(tmp_path / "none.env"), "redetect"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("re-detected 3 posts in ") and "3 changed label, 1 claims" in out


def _info_lines() -> tuple[list[str], int]:
    from loguru import logger

    lines: list[str] = []
    return lines, logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")


def test_redetect_db_option_and_one_summary(tmp_path: Path, monkeypatch, capsys) -> None:
    import asyncio

    from loguru import logger

    from bot.cli import parser as cli

    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)
    monkeypatch.delenv("CHANWATCH_DB", raising=False)
    path = tmp_path / "elsewhere.db"
    asyncio.run(_archive(path))
    logged, sink = _info_lines()
    try:
        argv = ["--env-file", str(tmp_path / "none.env"), "redetect", "--db", str(path)]
        assert cli.main(argv) == 0
    finally:
        logger.remove(sink)
    out = capsys.readouterr().out
    assert out.count("re-detected 3 posts") == 1
    assert not [line for line in logged if "re-detected" in line]  # printed, not logged too


async def test_redetect_brings_the_lemmas_of_an_older_archive_up_to_date(tmp_path: Path) -> None:
    from bot.query import search

    path = tmp_path / "archive.db"
    db = await open_database(path)
    try:
        await archive.save_channel(db, Channel(10, 1, "rdk_channel", "РДК"))
        text = "Two captives were held. Бойцы взяли в плен пленных"
        await Pipeline(db).ingest([Post(10, 1, T0, text)], "import")
        # lemmas as an older version stored them: Snowball stems, one lemma a word
        await db.execute("UPDATE posts SET lemmas = 'two captiv were held бойц взять в плен плен'")
        assert await search(db, "captive") == []
        result = await redetect(db)
        assert result.relemmatized == 1
        assert [h.msg_id for h in await search(db, "captive")] == [1]
        assert (await redetect(db)).relemmatized == 0  # nothing left to change
    finally:
        await db.close()
