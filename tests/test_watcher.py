"""The watcher end to end: real Telethon client, the simulator, a real SQLite archive."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.pipeline import JOIN_POSTS, JOIN_WAITING, READ_AHEAD_TASK
from bot.service.app import App
from bot.simulator import Simulator
from config.settings import Backfill, ChannelSpec
from storage import archive
from tests.watch_helpers import eventually, running, settings_for


@pytest.fixture
def user(sim: Simulator):
    return sim.add_user(phone="+15550001", first_name="Monitor")


async def post_count(app, channel_id: int, *, deleted: bool | None = None) -> int:
    sql = "SELECT count(*) FROM posts WHERE channel_id = ?"
    if deleted is not None:
        sql += " AND deleted_at IS " + ("NOT NULL" if deleted else "NULL")
    return (await app.db.fetchone(sql, (channel_id,)))[0]


async def test_live_posts_edits_and_deletions_of_several_channels(
    sim, user, tmp_path: Path, archive_target: Path | str
):
    rdk = sim.add_channel(username="rdk_channel", title="РДК")
    gov = sim.add_channel(username="gladkov", title="Гладков")
    sim.post(rdk, "архивный пост")
    settings = settings_for(tmp_path, "rdk_channel", "gladkov", db_path=archive_target)
    async with running(sim, user, settings) as app:
        assert await post_count(app, rdk.id) == 1
        a = sim.post(rdk, "Бойцы РДК взяли в плен двоих")
        b = sim.post(gov, "Обстановка в Шебекино")
        await eventually(app, lambda: _both(app, rdk.id, a, gov.id, b))
        sim.edit(gov, b, "Обстановка в Шебекино напряжённая")
        sim.delete(rdk, [a])
        await eventually(app, lambda: _edited_and_deleted(app, rdk.id, a, gov.id, b))
        row = await archive.get_post(app.db, rdk.id, a)
        assert row["text"] == "Бойцы РДК взяли в плен двоих"  # deletion keeps the text


async def _both(app, c1: int, m1: int, c2: int, m2: int) -> bool:
    return bool(await archive.get_post(app.db, c1, m1) and await archive.get_post(app.db, c2, m2))


async def _edited_and_deleted(app, c1: int, m1: int, c2: int, m2: int) -> bool:
    deleted = await archive.get_post(app.db, c1, m1)
    edited = await archive.get_post(app.db, c2, m2)
    if deleted["deleted_at"] is None or edited["text"] != "Обстановка в Шебекино напряжённая":
        return False
    revisions = await archive.post_revisions(app.db, edited["id"])
    return [r["text"] for r in revisions] == ["Обстановка в Шебекино"]


async def _outage(sim, ch) -> tuple[list[int], int, int]:
    """Posts, an edit and a deletion nobody is told about."""
    new = [sim.post(ch, f"пост во время простоя {i}", push=False) for i in range(150)]
    return new, new[0], new[1]


async def test_outage_is_recovered_after_restart(
    sim, user, tmp_path: Path, archive_target: Path | str
):
    ch = sim.add_channel(username="legion", title="Легион")
    before = [sim.post(ch, f"до простоя {i}") for i in range(3)]
    settings = settings_for(tmp_path, "legion", db_path=archive_target)
    async with running(sim, user, settings) as app:
        assert await post_count(app, ch.id) == 3
    new, _, _ = await _outage(sim, ch)
    sim.edit(ch, before[1], "до простоя 1 (исправлено)", push=False)
    sim.delete(ch, [before[2]], push=False)
    async with running(sim, user, settings) as app:
        assert await post_count(app, ch.id) == 153
        assert await post_count(app, ch.id, deleted=True) == 1
        edited = await archive.get_post(app.db, ch.id, before[1])
        assert edited["text"] == "до простоя 1 (исправлено)"
        assert len(await archive.post_revisions(app.db, edited["id"])) == 1
        assert (await archive.find_channel(app.db, ch.id)).last_msg_id == new[-1]


async def test_outage_is_recovered_after_a_dropped_connection(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="legion", title="Легион")
    first = sim.post(ch, "первый")
    async with running(sim, user, settings_for(tmp_path, "legion")) as app:
        catchups = app.catchups
        missed = [sim.post(ch, f"пропущенный {i}", push=False) for i in range(5)]
        sim.edit(ch, first, "первый (правка)", push=False)
        await sim.drop_connections()
        await eventually(app, lambda: _has(app, ch.id, missed[-1]))
        await eventually(app, lambda: _text_is(app, ch.id, first, "первый (правка)"))
        assert await post_count(app, ch.id) == 6
        assert app.catchups > catchups
        # still live after the reconnect
        later = sim.post(ch, "после переподключения")
        await eventually(app, lambda: _has(app, ch.id, later))


async def _has(app, channel_id: int, msg_id: int) -> bool:
    return await archive.get_post(app.db, channel_id, msg_id) is not None


async def _deleted(app, channel_id: int, msg_id: int) -> bool:
    row = await archive.get_post(app.db, channel_id, msg_id)
    return row is not None and row["deleted_at"] is not None


async def _text_is(app, channel_id: int, msg_id: int, text: str) -> bool:
    row = await archive.get_post(app.db, channel_id, msg_id)
    return row is not None and row["text"] == text


async def test_gap_in_live_updates_is_filled(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    async with running(sim, user, settings_for(tmp_path, "rdk_channel")) as app:
        # Before any pushed update Telethon does not know the channel's pts, so
        # only the watcher's id-jump check can notice the first gap.
        for round_ in range(2):
            hidden = sim.post(ch, f"не доставлено {round_}", push=False)
            shown = sim.post(ch, f"доставлено {round_}")
            await eventually(app, lambda s=shown: _has(app, ch.id, s))
            await eventually(app, lambda h=hidden: _has(app, ch.id, h))
        assert await post_count(app, ch.id) == 4


async def test_flood_wait_on_resolve_and_history_is_waited_out(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    for i in range(5):
        sim.post(ch, f"пост {i}")
    sim.fail(request="ResolveUsernameRequest", error="FLOOD_WAIT_1", times=1)
    sim.fail(request="GetHistoryRequest", error="FLOOD_WAIT_1", times=1)
    async with running(sim, user, settings_for(tmp_path, "rdk_channel")) as app:
        assert await post_count(app, ch.id) == 5
        waited = {what for what, _ in app.watcher.flood_waits}
        assert waited == {"@rdk_channel", str(ch.id)}
        later = sim.post(ch, "после паузы")
        await eventually(app, lambda: _has(app, ch.id, later))


async def test_known_channel_is_not_resolved_again(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    settings = settings_for(tmp_path, "rdk_channel")
    async with running(sim, user, settings):
        pass
    assert sim.requests_seen("ResolveUsernameRequest") == 1
    sim.post(ch, "новый")
    async with running(sim, user, settings) as app:
        assert await post_count(app, ch.id) == 1
    assert sim.requests_seen("ResolveUsernameRequest") == 1


async def test_albums_forwards_and_media_keep_their_shape(sim, user, tmp_path: Path):
    src = sim.add_channel(username="rdk_channel", title="РДК")
    dst = sim.add_channel(username="news_agg", title="Новости")
    original = sim.post(src, "Видео с позиций")
    async with running(sim, user, settings_for(tmp_path, "rdk_channel", "news_agg")) as app:
        album = sim.post_album(
            src, [sim.photo(), sim.photo(), sim.video(duration=12)], caption="Фото и видео"
        )
        fwd = sim.forward(src, original, to=dst)
        await eventually(app, lambda: _has(app, src.id, album[-1]))
        await eventually(app, lambda: _has(app, dst.id, fwd))
        rows = await app.db.fetchall(
            "SELECT msg_id, grouped_id FROM posts WHERE channel_id = ? AND msg_id IN (?, ?, ?)",
            (src.id, *album),
        )
        assert len(rows) == 3 and len({r["grouped_id"] for r in rows}) == 1
        assert rows[0]["grouped_id"] is not None
        kinds = await app.db.fetchall(
            "SELECT m.kind, m.duration FROM media m JOIN posts p ON p.id = m.post_id "
            "WHERE p.channel_id = ? AND p.grouped_id IS NOT NULL ORDER BY p.msg_id",
            (src.id,),
        )
        assert [k["kind"] for k in kinds] == ["photo", "photo", "video"]
        assert kinds[2]["duration"] == 12
        forwarded = await archive.get_post(app.db, dst.id, fwd)
        assert forwarded["fwd_key"] == f"{src.id}/{original}"


async def test_unknown_channel_is_reported_once_and_others_keep_working(sim, user, tmp_path: Path):
    from loguru import logger

    ch = sim.add_channel(username="rdk_channel", title="РДК")
    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        async with running(
            sim, user, settings_for(tmp_path, "no_such_channel", "rdk_channel")
        ) as app:
            later = sim.post(ch, "работаем")
            await eventually(app, lambda: _has(app, ch.id, later))
            await app.watcher.resolve_all()  # a second pass does not report it again
            assert "@no_such_channel" in app.watcher.unavailable
            assert await archive.unresolved_error(app.db, "@no_such_channel")
    finally:
        logger.remove(sink)
    assert len([e for e in errors if "no_such_channel" in e]) == 1


async def test_first_time_channel_gets_the_configured_backfill(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    ids = [sim.post(ch, f"история {i}") for i in range(30)]
    settings = settings_for(
        tmp_path, ChannelSpec("rdk_channel", "live"), backfill=Backfill(posts=10)
    )
    async with running(sim, user, settings) as app:
        rows = await app.db.fetchall("SELECT msg_id FROM posts ORDER BY msg_id")
        assert [r["msg_id"] for r in rows] == ids[-10:]


async def test_server_outage_reconnects_with_backoff_and_catches_up(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    async with running(
        sim, user, settings_for(tmp_path, "rdk_channel"), connection_retries=1
    ) as app:
        first_catchups = app.catchups
        await sim.stop()  # the server goes away; Telethon gives up after one retry
        missed = [sim.post(ch, f"пока сервер лежал {i}", push=False) for i in range(3)]
        async with asyncio.timeout(15):
            await app.connection_lost.wait()
        await sim.start()  # back on the same port: chanwatch's own backoff reconnects
        await eventually(app, lambda: _has(app, ch.id, missed[-1]))
        assert app.catchups > first_catchups
        assert await post_count(app, ch.id) == 3
        later = sim.post(ch, "снова в эфире")
        await eventually(app, lambda: _has(app, ch.id, later))


async def test_a_channel_that_cannot_be_joined_is_polled_instead(sim, user, tmp_path: Path):
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    sim.post(ch, "до запуска")
    sim.fail(request="JoinChannelRequest", error="CHANNELS_TOO_MUCH", code=400)
    async with running(sim, user, settings_for(tmp_path, "rdk_channel")) as app:
        assert app.watcher.channels[ch.id].channel.mode == "poll"
        assert user.id not in ch.members
        assert await post_count(app, ch.id) == 1  # caught up all the same


async def test_an_edit_pushed_while_the_service_starts_is_not_dropped(sim, user, tmp_path: Path):
    """Handlers are in place before connecting: an edit of an old post (beyond the
    reconcile depth) pushed while channels are still being resolved is kept and
    replayed once the channel is known."""
    old = sim.add_channel(username="rdk_channel", title="РДК")
    ids = [sim.post(old, f"пост {i}") for i in range(150)]
    async with running(sim, user, settings_for(tmp_path, "rdk_channel")):
        pass
    sim.add_channel(username="new_channel", title="Новый")
    sim.fail(request="ResolveUsernameRequest", error="FLOOD_WAIT_1", times=1)
    settings = settings_for(tmp_path, "new_channel", "rdk_channel")
    app = App(
        settings,
        session=sim.session_for(user),
        client_options={"flood_sleep_threshold": 0, "retry_delay": 0.1},
        page_wait=0,
    )
    task = asyncio.create_task(app.run())
    try:
        async with asyncio.timeout(15):
            await sim.wait_until(lambda: sim.online(user), timeout=15)
            sim.edit(old, ids[0], "пост 0 (исправлено)")  # while resolving waits 1 s
            await app.ready.wait()
        await eventually(app, lambda: _text_is(app, old.id, ids[0], "пост 0 (исправлено)"))
    finally:
        app.stop()
        async with asyncio.timeout(15):
            await task


async def test_a_catch_up_stopped_by_the_pipeline_stops_reading_history(sim, user, tmp_path: Path):
    """History is read ahead of the pipeline; when the pipeline gives up on a catch-up
    (its first write fails) the read stops too: a bounded number of pages was asked for
    and nothing keeps reading in the background."""
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    for i in range(3000):
        sim.post(ch, f"история {i}", push=False)
    async with running(sim, user, settings_for(tmp_path, "rdk_channel")) as app:
        watcher = app.watcher
        assert watcher is not None and app.pipeline is not None
        watched = watcher.channels[ch.id]
        written: list[int] = []

        async def fails(posts, *args):
            written.append(len(posts))
            raise RuntimeError("disk on fire")

        app.pipeline._write = fails  # type: ignore[method-assign]
        before = sim.requests_seen("GetHistoryRequest")
        with pytest.raises(RuntimeError, match="disk on fire"):
            await watcher._fetch_above(watched, 0, "catchup")
        asked = sim.requests_seen("GetHistoryRequest") - before
        assert written and len(written) <= 2
        # the pages written or being detected (JOIN_POSTS), those waiting (JOIN_WAITING),
        # one waiting to be queued and one being read: not the channel's 30
        assert 1 <= asked <= 2 * JOIN_POSTS // 100 + JOIN_WAITING + 2
        assert not [t for t in asyncio.all_tasks() if t.get_name() == READ_AHEAD_TASK]


async def test_edits_and_deletions_a_channel_difference_carries_are_recorded_live(
    sim, user, tmp_path: Path
):
    # Each time, the client misses one update of the channel and the next one pushed
    # opens a gap, which Telethon fills with getChannelDifference: the difference
    # carries the missed post as a new message and the pushed edit or deletion among
    # its other updates (which Telethon 1.45 alone skips as already seen). The
    # reconcile runs far later than this test (the default 15 minutes).
    ch = sim.add_channel(username="rdk_channel", title="РДК")
    async with running(sim, user, settings_for(tmp_path, "rdk_channel")) as app:
        first = sim.post(ch, "первый")  # pushed: Telethon now knows the channel's pts
        await eventually(app, lambda: _has(app, ch.id, first))

        missed = sim.post(ch, "не доставлено", push=False)
        sim.edit(ch, first, "первый, исправлено")  # pushed with a pts past the gap
        await eventually(app, lambda: _has(app, ch.id, missed))  # the gap was filled
        await eventually(app, lambda: _text_is(app, ch.id, first, "первый, исправлено"))

        missed_again = sim.post(ch, "снова не доставлено", push=False)
        sim.delete(ch, [first])
        await eventually(app, lambda: _has(app, ch.id, missed_again))
        await eventually(app, lambda: _deleted(app, ch.id, first))

        marker = sim.post(ch, "после")  # pushed after the gaps: nothing is held up
        await eventually(app, lambda: _has(app, ch.id, marker))
        assert await post_count(app, ch.id, deleted=True) == 1
        assert await post_count(app, ch.id) == 4
