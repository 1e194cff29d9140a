"""Datasette metadata: valid, searchable, and every canned query runs on a real archive."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import browse
from bot.cli import parser as cli
from bot.pipeline import Pipeline
from storage import archive
from storage.db import open_database
from storage.models import Channel, Forward, Post

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "chanwatch.db"

    async def make() -> None:
        db = await open_database(path)
        await archive.save_channel(db, Channel(100, 1, "frontnews", "Front news"))
        await archive.save_channel(db, Channel(200, 2, None, "Digest"))
        pipeline = Pipeline(db)
        origin = Forward(channel_id=300, msg_id=9)
        await pipeline.ingest(
            [
                Post(100, 1, T0, "Взяли в плен двух военных", forwards=40, raw={"a": 1}),
                Post(100, 2, T0 + timedelta(days=1), "Обмен пленными", fwd_from=origin),
                Post(100, 3, T0 + timedelta(days=1, hours=1), "Сводка", forwards=3),
            ],
            "catchup",
        )
        await pipeline.ingest(
            [Post(200, 5, T0 + timedelta(days=1), "Обмен пленными", fwd_from=origin)], "live"
        )
        await pipeline.deleted(100, [3])
        await db.close()

    asyncio.run(make())
    return path


def test_metadata_is_valid_and_configures_search_and_facets(db_file: Path) -> None:
    metadata = browse.render_metadata(db_file, browse.posts_columns(db_file))
    json.dumps(metadata)  # serialisable as written for Datasette
    assert list(metadata["databases"]) == ["chanwatch"]  # Datasette names it after the file
    posts = metadata["databases"]["chanwatch"]["tables"]["posts"]
    assert (posts["fts_table"], posts["fts_pk"]) == ("posts_fts", "id")
    assert "channel_id" in posts["facets"] and {"date": "date"} in posts["facets"]
    assert browse.OPTIONAL_KEY not in metadata
    with sqlite3.connect(db_file) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        for name, table in metadata["databases"]["chanwatch"]["tables"].items():
            assert name in tables
            for facet in table.get("facets", []):
                column = facet if isinstance(facet, str) else next(iter(facet.values()))
                conn.execute(f'SELECT "{column}" FROM "{name}" LIMIT 1')  # the column exists


def test_canned_queries_run_on_a_real_archive(db_file: Path) -> None:
    metadata = browse.render_metadata(db_file, browse.posts_columns(db_file))
    queries = browse.canned_queries(metadata)
    assert {"posts_by_day", "most_forwarded", "most_reposted", "deleted_posts"} <= set(queries)
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    results = {name: [dict(r) for r in conn.execute(sql)] for name, sql in queries.items()}
    conn.close()
    assert [(r["day"], r["posts"], r["deleted"]) for r in results["posts_by_day"]] == [
        ("2024-03-02", 3, 1),
        ("2024-03-01", 1, 0),
    ]
    assert [(r["link"], r["forwards"]) for r in results["most_forwarded"]] == [
        ("https://t.me/frontnews/1", 40)
    ]  # the deleted post with 3 forwards is under deleted_posts
    assert [(r["origin"], r["copies"], r["channels"]) for r in results["most_reposted"]] == [
        ("300/9", 2, 2)
    ]
    assert [(r["link"], r["text"]) for r in results["deleted_posts"]] == [
        ("https://t.me/frontnews/3", "Сводка")
    ]


def test_claims_query_only_when_the_archive_has_claims(db_file: Path) -> None:
    columns = browse.posts_columns(db_file)
    without = browse.render_metadata(db_file, columns - {"claim_label"})
    assert "claims_by_day" not in browse.canned_queries(without)
    with_claims = browse.render_metadata(db_file, columns | {"claim_label"})
    sql = browse.canned_queries(with_claims)["claims_by_day"]
    with sqlite3.connect(db_file) as conn:
        if "claim_label" not in columns:
            conn.execute("ALTER TABLE posts ADD COLUMN claim_label TEXT")
        conn.execute("UPDATE posts SET claim_label = NULL")  # whatever detection said
        conn.execute("UPDATE posts SET claim_label = 'claim' WHERE msg_id = 1")
        conn.execute("UPDATE posts SET claim_label = 'exchange' WHERE msg_id IN (2, 5)")
        rows = conn.execute(sql).fetchall()
    assert rows == [("2024-03-02", 0, 0, 2), ("2024-03-01", 1, 0, 0)]


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


def _browse(db_file: Path, *argv: str) -> int:
    env = ["--env-file", str(db_file.parent / "none.env")]
    return cli.main([*env, "browse", "--db", str(db_file), *argv])


def test_without_datasette_says_how_to_install(
    db_file: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(browse, "datasette_available", lambda: False)
    assert _browse(db_file) == 2
    assert "pip install -e '.[browse]'" in capsys.readouterr().err


def test_missing_archive_is_a_message(tmp_path: Path, capsys) -> None:
    assert _browse(tmp_path / "none.db") == 3
    assert "no archive at" in capsys.readouterr().err


@pytest.mark.skipif(
    not browse.datasette_available(), reason="Datasette is not installed (the 'browse' extra)"
)
def test_datasette_serves_search_and_canned_queries_read_only(db_file: Path, capfd) -> None:
    path = "/chanwatch/posts.json?_search=пленный&_shape=array&_col=msg_id"
    assert _browse(db_file, "--get", path) == 0
    rows = json.loads(capfd.readouterr().out)
    # the search box reaches the lemmas column: the dictionary form finds "пленными"
    assert sorted(r["msg_id"] for r in rows) == [2, 5]
    assert _browse(db_file, "--get", "/chanwatch/deleted_posts.json?_shape=array") == 0
    assert [r["text"] for r in json.loads(capfd.readouterr().out)] == ["Сводка"]
    write = "/chanwatch.json?sql=DELETE+FROM+posts"
    _browse(db_file, "--get", write)
    capfd.readouterr()
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 4
