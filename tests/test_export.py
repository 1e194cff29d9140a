"""Exports: every field round-trips, CSV and JSON lines parse, manifests verify."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import parser as cli
from bot.pipeline import Pipeline
from bot.query import compile_query, prepare
from storage import archive, export
from storage.db import Database, open_database
from storage.models import Channel, Forward, Media, Post
from storage.search import Filters

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def _post(msg_id: int, text: str, **kw: object) -> Post:
    return Post(
        channel_id=kw.pop("channel_id", 100),  # type: ignore[arg-type]
        msg_id=msg_id,
        date=T0 + timedelta(hours=msg_id),
        text=text,
        raw={"id": msg_id, "message": text, "edit": str(kw.get("edit_date"))},
        **kw,  # type: ignore[arg-type]
    )


async def build(path: Path | str) -> Database:
    db = await open_database(path)
    await archive.save_channel(db, Channel(100, 1, "frontnews", "Front news"))
    await archive.save_channel(db, Channel(200, 2, None, "Digest"))
    pipeline = Pipeline(db)
    await pipeline.ingest(
        [
            _post(
                1,
                "Взяли в плен двух военных",
                entities=({"_": "MessageEntityBold", "offset": 0, "length": 5},),
                views=1200,
                forwards=7,
                reactions={"👍": 3},
                media=(Media(kind="photo", mime="image/jpeg", size=1000, width=1280, height=720),),
            ),
            _post(2, 'Обмен пленными, текст с "кавычками",\nзапятыми и\tтабуляцией'),
            _post(3, "Прогноз погоды", fwd_from=Forward(channel_id=200, msg_id=9, date=T0)),
        ],
        "catchup",
    )
    await pipeline.ingest([_post(4, "Пленный дал интервью", channel_id=200)], "catchup")
    # an edit keeps the first text as a revision; a deletion only marks the post
    await pipeline.ingest(
        [_post(1, "Взяли в плен трёх военных", edit_date=T0 + timedelta(days=1))], "live"
    )
    await pipeline.deleted(100, [3], when=T0 + timedelta(days=2))
    return db


@pytest.fixture
async def db(archive_target: Path | str) -> AsyncIterator[Database]:
    database = await build(archive_target)
    yield database
    await database.close()


async def _jsonl(db: Database, tmp_path: Path, **kw: object) -> list[dict]:
    out = tmp_path / "out.jsonl"
    await export.export_to_file(db, export.Selection(**kw), "jsonl", out)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.read_text("utf-8").splitlines()]


async def test_jsonl_carries_every_field_revisions_media_and_evidence(
    db: Database, tmp_path: Path
) -> None:
    records = await _jsonl(db, tmp_path, filters=Filters(include_deleted=True))
    assert [(r["channel_id"], r["msg_id"]) for r in records] == [
        (100, 1),
        (100, 2),
        (100, 3),
        (200, 4),
    ]  # oldest first
    columns = set(await db.columns("posts"))
    for record in records:
        assert columns <= set(record), columns - set(record)
        assert hashlib.sha256(record["raw"].encode()).hexdigest() == record["raw_sha256"]
        assert record["captured_at"]
    first = records[0]
    assert first["text"] == "Взяли в плен трёх военных"
    assert first["entities"] is None  # the edit dropped the bold; the revision keeps it
    assert first["revisions"][0]["entities"] == [
        {"_": "MessageEntityBold", "length": 5, "offset": 0}
    ]
    assert first["reactions"] == {"👍": 3} and first["views"] == 1200
    assert first["link"] == "https://t.me/frontnews/1"
    assert [rev["text"] for rev in first["revisions"]] == ["Взяли в плен двух военных"]
    media = first["media"][0]
    assert (media["kind"], media["mime"], media["width"], media["height"], media["size"]) == (
        "photo",
        "image/jpeg",
        1280,
        720,
        1000,
    )
    assert records[2]["deleted_at"] == "2024-05-03T08:00:00+00:00"
    assert records[2]["fwd_from"]["channel_id"] == 200
    assert records[3]["link"] == "https://t.me/c/200/4"


async def test_deleted_posts_filters_and_query(db: Database, tmp_path: Path) -> None:
    assert [r["msg_id"] for r in await _jsonl(db, tmp_path)] == [1, 2, 4]
    query = compile_query("пленный")
    assert [r["msg_id"] for r in await _jsonl(db, tmp_path, query=query)] == [2, 4]
    only_100 = Filters(channels=(100,), media_only=True)
    assert [r["msg_id"] for r in await _jsonl(db, tmp_path, filters=only_100)] == [1]
    assert await export.count(db, export.Selection(query=query)) == 2


async def test_export_streams_in_chunks(db: Database, tmp_path: Path) -> None:
    chunks = [
        len(batch)
        async for batch in export.records(db, export.Selection(Filters(include_deleted=True)), 3)
    ]
    assert chunks == [3, 1]


async def test_csv_opens_with_the_csv_module(db: Database, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = await export.export_to_file(
        db, export.Selection(Filters(include_deleted=True)), "csv", out, chunk=2
    )
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert result.rows == len(rows) == 4
    assert rows[1]["text"] == 'Обмен пленными, текст с "кавычками",\nзапятыми и\tтабуляцией'
    assert json.loads(rows[0]["revisions"])[0]["text"] == "Взяли в плен двух военных"
    assert json.loads(rows[0]["media"])[0]["kind"] == "photo"
    assert rows[2]["deleted_at"] and rows[0]["raw_sha256"]
    assert hashlib.sha256(rows[0]["raw"].encode()).hexdigest() == rows[0]["raw_sha256"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_manifest_verifies_and_fails_when_one_byte_changes(
    db: Database, tmp_path: Path, fmt: export.Format
) -> None:
    out = tmp_path / f"out.{fmt}"
    selection = export.Selection(Filters(channels=(100,)), compile_query("плен*"))
    result = await export.export_to_file(db, selection, fmt, out, manifest=True)
    assert result.manifest == tmp_path / f"out.{fmt}.manifest.json"
    manifest = json.loads(result.manifest.read_text())
    assert (
        manifest["rows"] == 2 and manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    )
    assert manifest["filters"]["query"] == "плен*" and manifest["filters"]["channels"] == [100]
    assert manifest["tool"]["name"] == "chanwatch" and manifest["created_at"]
    assert export.verify_export(out).ok

    data = bytearray(out.read_bytes())
    where = data.index("двух".encode())
    data[where + 1] ^= 1  # one byte of a revision's text
    out.write_bytes(bytes(data))
    check = await asyncio.to_thread(export.verify_export, out)
    assert not check.ok
    assert any("SHA-256" in problem for problem in check.problems)


async def test_tampered_raw_is_named(db: Database, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await export.export_to_file(db, export.Selection(), "jsonl", out, manifest=True)
    text = out.read_text("utf-8").replace("Обмен пленными", "Обмен пленным")
    out.write_text(text, "utf-8")
    problems = export.verify_export(out).problems
    assert any("raw does not hash" in p and "100/2" in p for p in problems)


# --- the command line -------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


@pytest.fixture
def db_file(archive_target: Path | str) -> Path | str:
    async def make() -> None:
        await (await build(archive_target)).close()

    asyncio.run(make())
    return archive_target


def _run(db_file: Path | str, *argv: str) -> int:
    env = ["--env-file", "/nonexistent.env"]
    return cli.main([*env, argv[0], "--db", str(db_file), *argv[1:]])


def test_cli_export_and_verify(db_file: Path | str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "posts.jsonl"
    assert _run(db_file, "export", "--format", "jsonl", "-o", str(out), "--manifest") == 0
    assert "exported 3 posts" in capsys.readouterr().err
    assert cli.main(["verify-export", str(out)]) == 0
    assert capsys.readouterr().out.startswith("OK:")
    # an existing file is never clobbered without --force
    assert _run(db_file, "export", "-o", str(out)) == 2
    assert "exists" in capsys.readouterr().err
    out.write_bytes(out.read_bytes() + b"\n")
    assert cli.main(["verify-export", str(out)]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert _run(db_file, "export", "--manifest") == 2
    assert "--manifest needs -o FILE" in capsys.readouterr().err
    assert _run(db_file, "export", '"unclosed') == 2
    assert not list(tmp_path.glob("*.partial"))


def test_cli_export_to_stdout(db_file: Path | str, capsysbinary) -> None:
    assert _run(db_file, "export", "--format", "csv", "--channel", "frontnews") == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert lines[0].startswith("id,channel_id,msg_id,date")


async def test_export_query_matches_like_the_rules(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "rules.db")
    try:
        await archive.save_channel(db, Channel(100, 1, "frontnews", "Front news"))
        texts = [
            "Обстрел Шебекино Белгородской области",  # a place-name adjective
            "Взяли их в плен у Козинки",  # a phrase with a word between
            "В плен никто не попал. Взяли высоту",  # the phrase's words, out of order
            "Киев и Kyiv",  # aliases
        ]
        posts = [_post(i + 1, text) for i, text in enumerate(texts)]
        await Pipeline(db).ingest(posts, "catchup")

        async def exported(query: str) -> list[int]:
            records = await _jsonl(db, tmp_path, query=await prepare(db, query))
            return [r["msg_id"] for r in records]

        assert await exported("Белгород") == [1]
        assert await exported('"взять в плен"') == [2]
        assert await exported("взять в плен") == [2, 3]  # words, not a phrase, in a query
        assert await exported("Київ") == [4]
        assert await exported('"взять в плен" OR Белгород') == [1, 2]
        assert await exported('Козинка -"взять в плен"') == []
    finally:
        await db.close()
