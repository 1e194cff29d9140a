"""`chanwatch migrate-archive`: a SQLite archive moved into a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.cli import parser as cli
from bot.query import search
from storage import archive, move, outbox, subscribers
from storage.db import open_database
from tests.pg_server import PgServer
from tests.test_export import build


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


async def _source(path: Path) -> None:
    db = await build(path)  # posts with an edit, a deletion, media, a forward
    await subscribers.upsert(db, 7, "analyst", name="Ann")
    await subscribers.add_rule(db, 7, "пленный", None)
    first = await archive.get_post(db, 100, 1)
    async with db.transaction() as conn:
        await outbox.add_in(conn, [outbox.NewAlert(7, first["id"], "alert", "100/1", {})])
    await db.close()


async def test_copy_is_complete_resumable_and_verified(
    tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "archive.db"
    await _source(path)
    url = pg_server.create_database()
    src = await open_database(path, readonly=True)
    dst = await open_database(url)
    # interrupted after the first batch of posts
    real = dst.transaction
    written: list[int] = []

    def failing_after_three():  # type: ignore[no-untyped-def]
        written.append(1)
        if len(written) > 3:
            raise ConnectionResetError("server went away")
        return real()

    monkeypatch.setattr(dst, "transaction", failing_after_three)
    with pytest.raises(ConnectionResetError):
        await move.copy_archive(src, dst, batch=2)
    monkeypatch.undo()
    assert not (await move.compare(src, dst)).equal
    copied = await move.copy_archive(src, dst, batch=2)  # run again: goes on
    result = await move.compare(src, dst)
    assert result.equal, result
    assert copied["posts"] == 4 and result.counts["post_revisions"] == (1, 1)
    assert result.counts["alerts"] == (1, 1) and result.channels_compared == 2
    # the copy searches like the original, and new rows get fresh ids
    for query in ("пленный", "плен*", '"взяли в плен"'):
        mine = [(h.channel_id, h.msg_id) for h in await search(src, query)]
        assert [(h.channel_id, h.msg_id) for h in await search(dst, query)] == mine
    rule = await subscribers.add_rule(dst, 7, "обмен", None)
    assert rule.id > 1
    # a post changed on one side only is found
    await dst.execute("UPDATE posts SET text = 'подмена' WHERE msg_id = 2")
    assert (await move.compare(src, dst)).channels_differing == [100]
    await src.close()
    await dst.close()


def test_cli_migrates_and_reports(tmp_path: Path, pg_server: PgServer, capsys) -> None:
    path = tmp_path / "archive.db"
    asyncio.run(_source(path))
    url = pg_server.create_database()
    argv = ["--env-file", "/nonexistent.env", "migrate-archive", "--from", str(path), "--to", url]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "posts: 4 -> 4 ok" in out and out.rstrip().endswith("the same checksum")
    assert cli.main(argv) == 0  # again: nothing new, still equal
    assert "OK:" in capsys.readouterr().out
    assert cli.main([*argv[:-1], str(tmp_path / "x.db")]) == 2
    assert "postgresql://" in capsys.readouterr().err
