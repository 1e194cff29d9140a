"""`chanwatch redetect`: re-run detection over the archive, store the new verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.pipeline import Pipeline
from bot.redetect import redetect
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

    from bot import cli

    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)
    path = archive_target
    asyncio.run(_archive(path))
    monkeypatch.setenv("CHANWATCH_DB", str(path))
    assert cli.main(["--env-file", str(tmp_path / "none.env"), "redetect"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("re-detected 3 posts in ") and "3 changed label, 1 claims" in out
