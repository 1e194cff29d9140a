import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import archive, search
from storage.db import SCHEMA_VERSION, Database, StorageError, open_database
from storage.models import Channel, Forward, Media, Post

T0 = datetime(2023, 5, 22, 12, 0, tzinfo=UTC)


def make_post(msg_id: int, text: str, **kw: object) -> Post:
    fields: dict = {"channel_id": 100, "msg_id": msg_id, "date": T0 + timedelta(minutes=msg_id)}
    fields.update(kw)
    return Post(
        text=text,
        raw={"id": msg_id, "message": text, **{k: str(v) for k, v in kw.items()}},
        **fields,
    )


@pytest.fixture
async def db(archive_target: Path | str):
    database = await open_database(archive_target)
    await archive.save_channel(database, Channel(100, 555, "rdk_channel", "РДК"))
    yield database
    await database.close()


def fts(db: Database, word: str, column: str | None = None) -> str:
    """A low-level full-text query for `search.match` in the backend's own syntax."""
    if db.dialect == "postgresql":
        weight = {"text": "A", "lemmas": "B", None: "AB"}[column]
        return f"'{word.lower()}':{weight}"
    return f"{column}:{word}" if column else word


async def test_migrations_from_empty_file_and_rerun_is_noop(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    database = await open_database(path)
    tables = {row[0] for row in await database.fetchall("SELECT name FROM sqlite_master")}
    assert {"channels", "posts", "post_revisions", "media", "metrics", "posts_fts"} <= tables
    await database.close()
    schema_before = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master").fetchall()
    database = await open_database(path)
    version = (await database.fetchone("PRAGMA user_version"))[0]
    mode = (await database.fetchone("PRAGMA journal_mode"))[0]
    await database.close()
    assert version == SCHEMA_VERSION
    assert mode == "wal"
    assert (
        sqlite3.connect(path).execute("SELECT sql FROM sqlite_master").fetchall() == schema_before
    )


async def test_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer than this chanwatch"):
        await open_database(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


async def test_corrupt_file_gives_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(StorageError) as caught:
        await open_database(path)
    assert str(path) in str(caught.value) and "backup" in str(caught.value)


async def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.db as dbmod

    good = dbmod.migrations()
    broken = [
        *good,
        (len(good) + 1, "9999_broken.sql", "CREATE TABLE x (a); SELECT nope FROM nowhere;"),
    ]
    monkeypatch.setattr(dbmod, "migrations", lambda: broken)
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(broken))
    path = tmp_path / "m.db"
    with pytest.raises(StorageError):
        await open_database(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(good)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'x'").fetchone()[0] == 0


async def test_upsert_is_idempotent(db) -> None:
    post = make_post(1, "Бойцы взяли в плен двоих", views=10)
    first = await archive.archive_post(db, post)
    again = await archive.archive_posts(db, [(post, ""), (post, "")])
    assert first.status == "new"
    assert [a.status for a in again] == ["unchanged", "unchanged"]
    assert (await db.fetchone("SELECT count(*) FROM posts"))[0] == 1
    assert (await db.fetchone("SELECT count(*) FROM post_revisions"))[0] == 0
    assert (await archive.find_channel(db, "rdk_channel")).last_msg_id == 1


async def test_counters_update_without_revision(db) -> None:
    await archive.archive_post(db, make_post(1, "текст", views=10))
    result = await archive.archive_post(db, make_post(1, "текст", views=99))
    row = await archive.get_post(db, 100, 1)
    assert result.status == "unchanged" and row["views"] == 99
    assert await archive.post_revisions(db, row["id"]) == []


async def test_each_edit_keeps_a_revision_and_stale_versions_are_ignored(db) -> None:
    await archive.archive_post(db, make_post(1, "v1"))
    e1 = await archive.archive_post(db, make_post(1, "v2", edit_date=T0 + timedelta(hours=1)))
    e2 = await archive.archive_post(db, make_post(1, "v3", edit_date=T0 + timedelta(hours=2)))
    stale = await archive.archive_post(db, make_post(1, "v2", edit_date=T0 + timedelta(hours=1)))
    assert (e1.status, e1.previous_text, e2.status, stale.status) == (
        "edited",
        "v1",
        "edited",
        "stale",
    )
    row = await archive.get_post(db, 100, 1)
    assert row["text"] == "v3"
    assert [r["text"] for r in await archive.post_revisions(db, row["id"])] == ["v1", "v2"]


async def test_a_batch_of_updates_counts_the_rows_it_changed(db) -> None:
    done = await archive.archive_posts(db, [(make_post(i, f"пост {i}"), "") for i in (1, 2, 3)])
    ids = [a.post_id for a in done]
    missing = max(ids) + 1  # no such post: changes nothing
    changed = await archive.save_redetection(
        db, [], [("лемма", ids[0]), ("", ids[1]), ("другая", ids[2]), ("x", missing)]
    )
    assert changed == 2  # the second post's lemmas were already ""
    rows = await db.fetchall("SELECT id, lemmas FROM posts ORDER BY id")
    assert [(r["id"], r["lemmas"]) for r in rows] == list(
        zip(ids, ["лемма", "", "другая"], strict=True)
    )
    assert await archive.save_redetection(db, [], [("лемма", ids[0])]) == 0


async def test_deletion_keeps_text_and_is_reported_once(db) -> None:
    await archive.archive_post(db, make_post(1, "удалённый пост"))
    first = await archive.mark_deleted(db, 100, [1, 2])
    second = await archive.mark_deleted(db, 100, [1])
    row = await archive.get_post(db, 100, 1)
    assert len(first) == 1 and second == []
    assert row["text"] == "удалённый пост" and row["deleted_at"] is not None


async def test_media_album_and_forward_are_kept(db) -> None:
    photo = Media(kind="photo", width=1280, height=720, size=1000, tg_id=7)
    video = Media(kind="video", mime="video/mp4", duration=12.5, size=5000, tg_id=8)
    fwd = Forward(channel_id=200, msg_id=77, date=T0)
    await archive.archive_posts(
        db,
        [
            (make_post(5, "альбом", grouped_id=42, media=(photo,)), ""),
            (make_post(6, "", grouped_id=42, media=(video,), fwd_from=fwd), ""),
        ],
    )
    rows = await db.fetchall("SELECT msg_id, grouped_id, fwd_key FROM posts ORDER BY msg_id")
    assert [tuple(r) for r in rows] == [(5, 42, None), (6, 42, "200/77")]
    media = await archive.post_media(db, (await archive.get_post(db, 100, 6))["id"])
    assert [(m["kind"], m["mime"], m["duration"]) for m in media] == [("video", "video/mp4", 12.5)]


async def test_rowid_follows_post_time_even_when_archived_late(db) -> None:
    await archive.archive_post(db, make_post(50, "новый пост"))
    await archive.archive_post(db, make_post(10, "старый пост"))
    await archive.archive_post(db, make_post(30, "средний пост"))
    hits = await search.match(db, fts(db, "пост"))
    assert [h["msg_id"] for h in hits] == [50, 30, 10]


async def test_key_collisions_are_resolved(db) -> None:
    other = 100 + (1 << archive.KEY_BITS)
    await archive.save_channel(db, Channel(other, 1, "other", "Other"))
    # same second and same spread: 7919 * 2**KEY_BITS is a multiple of 2**KEY_BITS
    a = Post(channel_id=100, msg_id=1, date=T0, text="a")
    b = Post(channel_id=other, msg_id=1, date=T0, text="b")
    assert archive.post_key(a.date, 100, 1) == archive.post_key(b.date, other, 1)
    results = await archive.archive_posts(db, [(a, ""), (b, "")])
    assert len({r.post_id for r in results}) == 2


async def test_fts_follows_insert_edit_and_delete(db) -> None:
    await archive.archive_post(
        db, make_post(1, "Колонна вошла в Козинку"), lemmas="колонна войти в козинка"
    )
    assert [h["msg_id"] for h in await search.match(db, fts(db, "Козинку"))] == [1]
    assert [h["msg_id"] for h in await search.match(db, fts(db, "козинка", "lemmas"))] == [1]
    assert await search.match(db, fts(db, "козинка", "text")) == []
    edited = make_post(1, "Колонна вошла в Грайворон", edit_date=T0 + timedelta(hours=1))
    await archive.archive_post(db, edited, lemmas="колонна войти в грайворон")
    assert await search.match(db, fts(db, "Козинку")) == []
    assert [h["msg_id"] for h in await search.match(db, fts(db, "Грайворон"))] == [1]
    await archive.mark_deleted(db, 100, [1])
    assert await search.match(db, fts(db, "Грайворон")) == []
    hits = await search.match(db, fts(db, "Грайворон"), include_deleted=True)
    assert [h["msg_id"] for h in hits] == [1]
    if db.dialect == "sqlite":
        # raises if the external-content index drifted from the posts table
        await db.execute("INSERT INTO posts_fts (posts_fts, rank) VALUES ('integrity-check', 1)")
    else:
        drift = await db.fetchone(
            """SELECT count(*) FROM posts p LEFT JOIN posts_fts f ON f.id = p.id
               WHERE f.tsv IS DISTINCT FROM chanwatch_tsv(p.text, p.lemmas)"""
        )
        assert drift[0] == 0
