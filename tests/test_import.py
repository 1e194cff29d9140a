"""Telegram Desktop imports: a realistic export, re-import as a no-op, malformed exports."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.policy import Policy
from bot.cli import importer
from bot.cli import parser as cli
from bot.detection.keywords import Matcher
from bot.query import search
from storage import archive, subscribers
from storage.db import Database, open_database
from storage.models import Channel

CHANNEL_ID = 1306128236
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4  # a few bytes that pass for a JPEG


def desktop_export(folder: Path) -> Path:
    """A single-channel export as Telegram Desktop writes it (JSON, machine-readable)."""
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "photo_1@01-03-2024_10-00-00.jpg").write_bytes(PHOTO)
    messages: list[dict[str, Any]] = [
        {
            "id": 1,
            "type": "service",
            "date": "2024-03-01T09:00:00",
            "date_unixtime": "1709283600",
            "actor": "Фронтовые сводки",
            "actor_id": f"channel{CHANNEL_ID}",
            "action": "create_channel",
            "title": "Фронтовые сводки",
            "text": "",
            "text_entities": [],
        },
        {
            "id": 2,
            "type": "message",
            "date": "2024-03-01T10:00:00",
            "date_unixtime": "1709287200",
            "from": "Фронтовые сводки",
            "from_id": f"channel{CHANNEL_ID}",
            "author": "Иван",
            "text": [
                {"type": "bold", "text": "Срочно"},
                ": 🔥 в районе Работино взяли в плен двух военных. ",
                {"type": "text_link", "text": "Видео", "href": "https://example.org/v"},
            ],
            "text_entities": [
                {"type": "bold", "text": "Срочно"},
                {"type": "plain", "text": ": 🔥 в районе Работино взяли в плен двух военных. "},
                {"type": "text_link", "text": "Видео", "href": "https://example.org/v"},
            ],
            "photo": "photos/photo_1@01-03-2024_10-00-00.jpg",
            "width": 1280,
            "height": 720,
            "reactions": [{"type": "emoji", "count": 12, "emoji": "👍"}],
        },
        {
            "id": 3,
            "type": "message",
            "date": "2024-03-01T11:00:00",
            "date_unixtime": "1709290800",
            "edited": "2024-03-01T11:30:00",
            "edited_unixtime": "1709292600",
            "from": "Фронтовые сводки",
            "from_id": f"channel{CHANNEL_ID}",
            "forwarded_from": "Военный обозреватель",
            "text": "Обмен пленными состоялся",
            "text_entities": [{"type": "plain", "text": "Обмен пленными состоялся"}],
        },
        {
            "id": 4,
            "type": "message",
            "date": "2024-03-01T12:00:00",
            "date_unixtime": "1709294400",
            "from": "Фронтовые сводки",
            "from_id": f"channel{CHANNEL_ID}",
            "reply_to_message_id": 2,
            "file": "(File not included. Change data exporting settings to download.)",
            "file_name": "обращение.mp4",
            "file_size": 5242880,
            "thumbnail": "(File not included. Change data exporting settings to download.)",
            "media_type": "video_file",
            "mime_type": "video/mp4",
            "duration_seconds": 95,
            "width": 1920,
            "height": 1080,
            "text": "",
            "text_entities": [],
        },
        {
            "id": 5,
            "type": "service",
            "date": "2024-03-01T12:05:00",
            "date_unixtime": "1709294700",
            "action": "pin_message",
            "message_id": 2,
            "text": "",
            "text_entities": [],
        },
    ]
    data = {
        "name": "Фронтовые сводки",
        "type": "public_channel",
        "id": CHANNEL_ID,
        "messages": messages,
    }
    path = folder / "result.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
    return path


@pytest.fixture
async def db(archive_target: Path | str) -> AsyncIterator[Database]:
    database = await open_database(archive_target)
    yield database
    await database.close()


async def _import(db: Database, path: Path) -> list[importer.ChatResult]:
    plan = await asyncio.to_thread(importer.load, path)
    return await importer.ingest(db, plan)


async def test_realistic_export_is_archived_with_entities_forwards_edits_and_media(
    db: Database, tmp_path: Path
) -> None:
    export = desktop_export(tmp_path / "export")
    [result] = await _import(db, export.parent)
    assert result.statuses == {"new": 3}
    assert result.channel_created
    assert result.chat.service == {"create_channel": 1, "pin_message": 1}

    channel = await archive.find_channel(db, CHANNEL_ID)
    assert channel is not None and channel.username is None and channel.title == "Фронтовые сводки"
    assert not channel.active  # an imported channel is not watched until configured

    post = await archive.get_post(db, CHANNEL_ID, 2)
    assert post["date"] == "2024-03-01T10:00:00+00:00"
    text = "Срочно: 🔥 в районе Работино взяли в плен двух военных. Видео"
    assert post["text"] == text
    entities = json.loads(post["entities"])
    assert entities[0] == {"_": "MessageEntityBold", "offset": 0, "length": 6}
    link = entities[1]
    assert link["_"] == "MessageEntityTextUrl" and link["url"] == "https://example.org/v"
    # offsets count UTF-16 code units: the emoji takes two
    assert link["offset"] == len(text[: text.index("Видео")].encode("utf-16-le")) // 2
    assert link["offset"] == text.index("Видео") + 1
    assert post["post_author"] == "Иван"
    assert json.loads(post["reactions"]) == {"👍": 12}
    assert json.loads(post["raw"])["photo"].startswith("photos/")
    [photo] = await archive.post_media(db, post["id"])
    assert (photo["kind"], photo["mime"], photo["size"], photo["width"], photo["height"]) == (
        "photo",
        "image/jpeg",
        len(PHOTO),
        1280,
        720,
    )
    assert photo["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    assert photo["tg_id"] is None and photo["access_hash"] is None

    forwarded = await archive.get_post(db, CHANNEL_ID, 3)
    assert json.loads(forwarded["fwd_from"])["from_name"] == "Военный обозреватель"
    assert forwarded["fwd_key"] is None
    assert forwarded["edit_date"] == "2024-03-01T11:30:00+00:00"

    video_post = await archive.get_post(db, CHANNEL_ID, 4)
    assert video_post["reply_to"] == 2
    [video] = await archive.post_media(db, video_post["id"])
    assert (video["kind"], video["mime"], video["size"], video["duration"], video["file_name"]) == (
        "video",
        "video/mp4",
        5242880,
        95.0,
        "обращение.mp4",
    )
    assert result.chat.media_missing == 1
    assert await archive.get_post(db, CHANNEL_ID, 1) is None  # service messages skipped

    # imported posts are searchable by lemma like any other
    assert [h.msg_id for h in await search(db, "пленный")] == [3]
    assert [h.msg_id for h in await search(db, '"взять в плен"')] == [2]


async def test_reimport_is_a_no_op(db: Database, tmp_path: Path) -> None:
    export = desktop_export(tmp_path / "export")
    await _import(db, export)
    before = await db.fetchall("SELECT * FROM posts ORDER BY id")
    [again] = await _import(db, export)
    assert again.statuses == {"unchanged": 3}
    assert not again.channel_created
    after = await db.fetchall("SELECT * FROM posts ORDER BY id")
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert (await db.fetchone("SELECT count(*) FROM post_revisions"))[0] == 0
    assert (await db.fetchone("SELECT count(*) FROM media"))[0] == 2


async def test_a_known_channel_keeps_its_username_and_access_hash(
    db: Database, tmp_path: Path
) -> None:
    await archive.save_channel(db, Channel(CHANNEL_ID, 987654321, "frontsvodki", "Сводки"))
    await _import(db, desktop_export(tmp_path / "export"))
    channel = await archive.find_channel(db, CHANNEL_ID)
    assert channel is not None
    assert (channel.username, channel.access_hash, channel.active) == (
        "frontsvodki",
        987654321,
        True,
    )
    assert [h.link for h in await search(db, "пленный")] == ["https://t.me/frontsvodki/3"]


async def test_full_account_export_imports_channels_and_skips_other_chats(
    db: Database, tmp_path: Path
) -> None:
    single = json.loads(desktop_export(tmp_path / "export").read_text("utf-8"))
    personal = {"name": "Мама", "type": "personal_chat", "id": 4242, "messages": []}
    full = {
        "about": "Here is the data you requested.",
        "chats": {"about": "...", "list": [personal, single]},
        "left_chats": {"about": "...", "list": []},
    }
    (tmp_path / "export" / "result.json").write_text(json.dumps(full, ensure_ascii=False))
    plan = importer.load(tmp_path / "export")
    assert [c.channel_id for c in plan.chats] == [CHANNEL_ID]
    assert plan.skipped_chats == [("Мама", "a personal chat, not a channel")]
    await importer.ingest(db, plan)
    assert (await db.fetchone("SELECT count(*) FROM posts"))[0] == 3


async def _alerts(db: Database) -> list[tuple[int, int]]:
    rows = await db.fetchall(
        "SELECT a.chat_id, p.msg_id FROM alerts a JOIN posts p ON p.id = a.post_id ORDER BY a.id"
    )
    return [(row[0], row[1]) for row in rows]


async def test_imports_alert_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # keyword matches only serve alerts: an import that plans none matches nothing
    matched: list[str] = []
    match_words = Matcher.match_words

    def counted(self: Matcher, analysis: Any, channel: Any = None) -> Any:
        matched.append(analysis.text)
        return match_words(self, analysis, channel)

    monkeypatch.setattr(Matcher, "match_words", counted)
    export = desktop_export(tmp_path / "export")
    for alert, expected in ((False, []), (True, [(7, 2)])):
        matched.clear()
        db = await open_database(tmp_path / f"alert-{alert}.db")
        await subscribers.upsert(db, 7, "analyst", name="Ann")
        await subscribers.set_preferences(db, 7, claims=False)
        await subscribers.add_rule(db, 7, "Работино", None)
        plan = importer.load(export)
        # the export is older than any maximum alert age: lift it to see alerts planned
        await importer.ingest(db, plan, alert=alert, policy=Policy(max_age=None))
        assert await _alerts(db) == expected
        assert any("Работино" in text for text in matched) is alert
        # the claim verdict is stored either way
        label = await db.fetchone("SELECT claim_label FROM posts WHERE msg_id = 2")
        assert label[0] == "claim"
        await db.close()


def _broken(folder: Path, change: Any) -> Path:
    path = desktop_export(folder)
    data = json.loads(path.read_text("utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda d: d["messages"][2].update(date="yesterday", date_unixtime=None),
            "messages[2].date: not a date",
        ),
        (
            lambda d: d["messages"][2].pop("date_unixtime") and d["messages"][2].update(date="x"),
            "messages[2].date: not a date: 'x'",
        ),
        (lambda d: d["messages"][3].update(id="four"), "messages[3].id: not a message id"),
        (lambda d: d["messages"][1].update(text_entities=[7]), "messages[1].text_entities[0]"),
        (lambda d: d["messages"][3].update(type="poll"), "messages[3].type: unknown"),
        (lambda d: d.update(id=-100), "id: not a channel id"),
        (lambda d: d["messages"][1].update(photo="../../etc/passwd"), "path leaves the export"),
        (lambda d: d.pop("messages"), "neither a chat export"),
    ],
)
async def test_malformed_export_imports_nothing(
    db: Database, tmp_path: Path, change: Any, problem: str | None
) -> None:
    path = _broken(tmp_path / "export", change)
    with pytest.raises(importer.ImportFailed) as caught:
        importer.load(path)
    assert "nothing was imported" in str(caught.value)
    if problem is not None:
        assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert (await db.fetchone("SELECT count(*) FROM posts"))[0] == 0


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text('{\n  "name": "x",\n  "messages": [,]\n}')
    with pytest.raises(importer.ImportFailed, match="line 3 column"):
        importer.load(path)


# --- the command line --------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


def _run(tmp_path: Path, *argv: str) -> int:
    env = ["--env-file", str(tmp_path / "none.env")]
    return cli.main([*env, "import", "--db", str(tmp_path / "cli.db"), *argv])


def _count(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM posts").fetchone()[0]


def test_cli_import_reports_and_reimport_changes_nothing(tmp_path: Path, capsys) -> None:
    export = desktop_export(tmp_path / "export")
    assert _run(tmp_path, str(export.parent), "--alert") == 0
    captured = capsys.readouterr()
    assert "3 posts: 3 new" in captured.out
    assert "skipped 2 service messages (create_channel 1, pin_message 1)" in captured.out
    assert "1 media files were not included" in captured.out
    assert "alerts were planned" in captured.out
    assert _run(tmp_path, str(export)) == 0
    assert "0 new, 0 updated, 3 already archived" in capsys.readouterr().out
    assert _run(tmp_path, str(export), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "valid: 3 posts would be imported" in out and "already archived" not in out
    assert _count(tmp_path / "cli.db") == 3


def test_cli_malformed_export_is_a_message(tmp_path: Path, capsys) -> None:
    data = json.loads(desktop_export(tmp_path / "export").read_text("utf-8"))
    bad = copy.deepcopy(data)
    bad["messages"][4]["date_unixtime"] = "soon"
    (tmp_path / "export" / "result.json").write_text(json.dumps(bad))
    assert _run(tmp_path, str(tmp_path / "export")) == 2
    err = capsys.readouterr().err
    assert "nothing was imported" in err and "messages[4].date_unixtime: not a Unix time" in err
    assert not (tmp_path / "cli.db").exists()
    assert _run(tmp_path, str(tmp_path / "nowhere")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_reimport_logs_the_counts_it_prints_once(tmp_path: Path, capsys) -> None:
    from loguru import logger

    export = desktop_export(tmp_path / "export")
    assert _run(tmp_path, str(export)) == 0
    capsys.readouterr()
    logged: list[str] = []
    sink = logger.add(
        lambda m: logged.append(str(m).strip()), level="DEBUG", format="{level} {message}"
    )
    try:
        assert _run(tmp_path, str(export)) == 0
    finally:
        logger.remove(sink)
    out = capsys.readouterr().out
    assert out.count("0 new, 0 updated, 3 already archived") == 1
    about_import = [line for line in logged if "Telegram Desktop export" in line]
    assert about_import == [
        "DEBUG imported a Telegram Desktop export: 0 new, 0 updated, 3 already archived of 3 posts"
    ]
