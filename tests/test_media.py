"""Media download (by kind and size, dedup by SHA-256, resumable) and media retention,
with the real Telethon client downloading from the simulator."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from bot.simulator import Simulator
from bot.simulator.handlers import file_content
from bot.watch.media import file_name_for
from config.settings import JobSettings
from storage.models import iso
from tests.jobs_helpers import FakeClock, run, running_jobs
from tests.watch_helpers import settings_for


@pytest.fixture
def user(sim: Simulator):
    return sim.add_user(phone="+15550001", first_name="Monitor")


def media_settings(tmp_path: Path, *channels: str, **jobs: object):
    config = {
        "media_download": True,
        "media_kinds": frozenset({"photo", "video"}),
        "media_max_size": 2_000_000,
        **jobs,
    }
    return settings_for(
        tmp_path, *channels, media_dir=tmp_path / "media", jobs=JobSettings(**config)
    )


async def media_rows(app) -> list:
    return await app.db.fetchall(
        """SELECT p.channel_id, p.msg_id, m.kind, m.size, m.tg_id, m.sha256, m.local_path,
                  m.downloaded_at, m.download_error
           FROM media m JOIN posts p ON p.id = m.post_id ORDER BY p.channel_id, p.msg_id"""
    )


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_files_are_named_by_content_and_type() -> None:
    sha = "ab" + "0" * 62
    assert file_name_for(sha, "image/jpeg", None) == f"ab/{sha}.jpg"
    assert file_name_for(sha, "video/mp4", "clip.MOV") == f"ab/{sha}.mp4"
    assert file_name_for(sha, None, "clip.MOV") == f"ab/{sha}.mov"
    assert file_name_for(sha, None, "../../etc/passwd") == f"ab/{sha}"


@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def test_downloads_wanted_media_once_per_content(sim, user, tmp_path: Path, usual_umask):
    src = sim.add_channel(username="rdk_channel", title="РДК")
    dst = sim.add_channel(username="news_agg", title="Новости")
    photo = sim.post(src, "фото", media=sim.photo())
    video = sim.post(src, "видео", media=sim.video(duration=4))  # 1,000,000 bytes
    big = sim.post(src, "длинное видео", media=sim.video(duration=60))  # 15 MB
    pdf = sim.post(src, "документ", media=sim.document())
    copy = sim.forward(src, photo, to=dst)
    clock = FakeClock()
    settings = media_settings(tmp_path, "rdk_channel", "news_agg")
    async with running_jobs(sim, user, settings, clock) as app:
        assert app.jobs is not None
        assert await run(app.jobs.download_media()) == 3
        rows = {(r["channel_id"], r["msg_id"]): r for r in await media_rows(app)}
        for key in ((src.id, photo), (src.id, video), (dst.id, copy)):
            row = rows[key]
            path = tmp_path / "media" / row["local_path"]
            content = path.read_bytes()
            assert hashlib.sha256(content).hexdigest() == row["sha256"]
            assert content == file_content(row["tg_id"], len(content))
            assert row["downloaded_at"] == iso(clock())
            assert path.name.startswith(row["sha256"])
            # owner-only whatever the umask (the tests run with the usual 022)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert rows[(src.id, photo)]["local_path"] == rows[(dst.id, copy)]["local_path"]
        assert rows[(src.id, photo)]["local_path"].endswith(".jpg")
        assert rows[(src.id, video)]["local_path"].endswith(".mp4")
        for key in ((src.id, big), (src.id, pdf)):  # too large, or not a wanted kind
            assert rows[key]["downloaded_at"] is None and rows[key]["local_path"] is None
        assert len(files_in(tmp_path / "media")) == 2  # the forward shares the photo's file
        assert app.jobs.media.downloaded == 2 and app.jobs.media.reused == 1
        assert sim.requests_seen("GetFileRequest") > 0
        requests = sim.requests_seen("GetFileRequest")
        assert await run(app.jobs.download_media()) == 0  # nothing left in the queue
        assert sim.requests_seen("GetFileRequest") == requests


async def test_download_is_rate_limited_and_resumes_after_a_restart(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    posts = [sim.post(ch, f"фото {i}", media=sim.photo(w=320, h=240)) for i in range(5)]
    settings = media_settings(tmp_path, "rdk_channel", media_per_minute=2)
    clock = FakeClock()
    async with running_jobs(sim, user, settings, clock) as app:
        assert app.jobs is not None
        assert await run(app.jobs.download_media()) == 2
    # a crash mid-download leaves a partial file; the next run starts that file over
    partial = tmp_path / "media" / ".partial"
    partial.mkdir(exist_ok=True)
    (partial / "junk").write_bytes(b"half a file")
    async with running_jobs(sim, user, settings, clock) as app:
        assert app.jobs is not None
        assert await run(app.jobs.download_media()) == 2
        assert await run(app.jobs.download_media()) == 1
        rows = await media_rows(app)
        assert [r["msg_id"] for r in rows] == posts
        assert all(r["local_path"] for r in rows)
    assert len(files_in(tmp_path / "media")) == 5  # and the partial file is gone


async def test_media_of_a_post_deleted_meanwhile_is_given_up(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    gone = sim.post(ch, "удалят", media=sim.photo())
    kept = sim.post(ch, "останется", media=sim.photo())
    async with running_jobs(sim, user, media_settings(tmp_path, "rdk_channel"), FakeClock()) as app:
        assert app.jobs is not None
        sim.delete(ch, [gone], push=False)  # the archive does not know yet
        assert await run(app.jobs.download_media()) == 1
        rows = {r["msg_id"]: r for r in await media_rows(app)}
        assert rows[gone]["download_error"] == "the post no longer has this media"
        assert rows[kept]["local_path"] is not None
        assert await run(app.jobs.download_media()) == 0


async def test_retention_drops_old_files_but_keeps_posts_and_hashes(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    old = sim.post(ch, "старое фото", media=sim.photo())
    shared = sim.post(ch, "общее фото", media=sim.photo())
    clock = FakeClock()
    settings = media_settings(tmp_path, "rdk_channel", media_retention=timedelta(days=30))
    async with running_jobs(sim, user, settings, clock) as app:
        assert app.jobs is not None and app.db is not None
        assert await run(app.jobs.download_media()) == 2
        clock.advance(timedelta(days=20))
        copy = sim.forward(ch, shared, to=ch)  # the same file again, 20 days later
        await run(app.jobs.reconcile())
        assert await run(app.jobs.download_media()) == 1
        clock.advance(timedelta(days=11))
        assert await run(app.jobs.prune_media()) == 1
        rows = {r["msg_id"]: r for r in await media_rows(app)}
        assert rows[old]["local_path"] is None and rows[old]["sha256"] is not None
        assert rows[old]["downloaded_at"] is not None  # not queued again
        assert rows[shared]["local_path"] == rows[copy]["local_path"] is not None
        assert len(files_in(tmp_path / "media")) == 1
        posts = await app.db.fetchone("SELECT count(*) FROM posts WHERE deleted_at IS NULL")
        assert posts[0] == 3
        assert await run(app.jobs.download_media()) == 0
