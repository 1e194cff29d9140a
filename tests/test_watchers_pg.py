"""Two watchers (two accounts) on one PostgreSQL archive: the channel watched by one of
them, alerts delivered by one of them, both taken over when that one dies."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bot.alerts.notifier import NotifierOptions
from bot.cli.doctor import check_postgres
from bot.simulator import Simulator
from storage import leases
from tests.bot_helpers import add_rule, ask, bot_settings, crash, make_analyst, received, service
from tests.pg_server import PgServer

TIMEOUT = 15


async def _deliverer(app) -> str:
    async with asyncio.timeout(TIMEOUT):
        while True:
            found = await leases.holders(app.db)
            if len(found) == 1:
                return found[0].watcher
            await asyncio.sleep(0.05)  # polling the server's lock table, bounded above


async def _team(
    stack,
    sim: Simulator,
    monitors,
    bot,
    admin,
    tmp_path: Path,
    url: str,
    channels: tuple[str, ...] = ("rdk_channel",),
    notifier: NotifierOptions | None = None,
) -> dict:
    """Watchers a and b (one account each) on `url`, watching `channels`, 2 s leases."""
    apps = {}
    for name, monitor in zip("ab", monitors, strict=True):
        settings = bot_settings(
            tmp_path / name, bot, [admin], *channels, db_path=url, watcher=name, lease_seconds=2
        )
        apps[name] = await stack.enter_async_context(
            service(sim, monitor, bot, settings, notifier=notifier)
        )
    return apps


async def test_one_delivers_and_the_other_takes_over(
    sim: Simulator, bot, admin, ann, rdk, tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.create_database()
    monitors = [sim.add_user(phone=f"+1555009{i}", first_name=f"Monitor {i}") for i in (1, 2)]
    async with contextlib.AsyncExitStack() as stack:
        apps = await _team(stack, sim, monitors, bot, admin, tmp_path, url)
        leader = await _deliverer(apps["a"])
        survivor = "b" if leader == "a" else "a"
        assert (apps[leader].bot is None, apps[survivor].bot is None) == (False, True)
        checks = {c.name: c for c in await check_postgres(url, apps["a"].settings)}
        assert checks["delivery"].ok and f"watcher {leader!r}" in checks["delivery"].detail
        shown = checks["channels"]
        assert shown.ok and shown.detail == "1 held by 2 live watcher(s), 0 waiting"
        await make_analyst(apps[leader], ann, "Ann")
        await add_rule(apps[leader], ann, "Белгород")
        apps[survivor].pipeline.audience_changed()
        first = sim.post(rdk, "Обстрел Белгорода утром")
        (alert,) = await received(sim, ann, bot, 1)
        assert f"https://t.me/rdk_channel/{first}" in alert.text
        watching = [name for name, app in apps.items() if app.watcher.channels]
        assert len(watching) == 1  # the channel is one watcher's share
        rows = await apps["a"].db.fetchall("SELECT count(*) FROM posts WHERE msg_id = ?", (first,))
        assert rows[0][0] == 1
        sent = "SELECT count(*) FROM alerts WHERE status = 'sent'"
        await _until(lambda: _scalar_is(apps[survivor], sent, 1), "the first alert recorded sent")
        await crash(apps[leader])
        assert await _deliverer(apps[survivor]) == survivor
        second = sim.post(rdk, "Снова обстрел Белгорода")
        alerts = await received(sim, ann, bot, 2)
        assert f"https://t.me/rdk_channel/{second}" in alerts[1].text
        assert len(sim.messages_to(ann, from_=bot)) == 2
        planned = await apps[survivor].db.fetchall("SELECT count(*) FROM alerts")
        assert planned[0][0] == 2


async def test_an_alert_the_other_watcher_plans_wakes_the_deliverer(
    sim: Simulator, bot, admin, ann, rdk, tmp_path: Path, pg_server: PgServer
) -> None:
    # The deliverer's notifier looks at the outbox on its own only once an hour here:
    # the alert reaches the analyst because the planning watcher's commit notifies it.
    url = pg_server.create_database()
    legion = sim.add_channel(username="legion", title="Легион")
    monitors = [sim.add_user(phone=f"+1555007{i}", first_name=f"Monitor {i}") for i in (1, 2)]
    hourly = NotifierOptions(idle_check=3600)
    async with contextlib.AsyncExitStack() as stack:
        apps = await _team(
            stack, sim, monitors, bot, admin, tmp_path, url, ("rdk_channel", "legion"), hourly
        )
        leader = await _deliverer(apps["a"])
        other = apps["b" if leader == "a" else "a"]
        await _until(lambda: _one_each(apps), "each watcher holds one channel")
        await make_analyst(apps[leader], ann, "Ann")
        await add_rule(apps[leader], ann, "Белгород")
        other.pipeline.audience_changed()
        channel = rdk if rdk.id in other.watcher.channels else legion
        post = sim.post(channel, "Обстрел Белгорода утром")
        (alert,) = await received(sim, ann, bot, 1)
        assert f"https://t.me/{channel.username}/{post}" in alert.text
        assert channel.id in other.watcher.channels  # planned by the one that does not deliver


async def _one_each(apps) -> bool:
    return all(len(app.watcher.channels) == 1 for app in apps.values())


async def test_watch_and_unwatch_from_the_bot_reach_the_whole_team(
    sim: Simulator, bot, admin, rdk, tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.create_database()
    legion = sim.add_channel(username="legion", title="Легион")
    sim.post(legion, "первый пост")
    monitors = [sim.add_user(phone=f"+1555008{i}", first_name=f"Monitor {i}") for i in (1, 2)]
    async with contextlib.AsyncExitStack() as stack:
        apps = await _team(stack, sim, monitors, bot, admin, tmp_path, url)
        leader = apps[await _deliverer(apps["a"])]
        answer = await ask(sim, admin, bot, "/watch @legion")
        assert answer.text == "Watching Легион (@legion) (live)."
        # one of the two takes it at its next round and catches it up
        await _until(lambda: _held_by_one(apps, legion.id), "legion held by one watcher")
        await _until(lambda: _posts_in(leader, legion.id, 1), "legion caught up")
        listing = (await ask(sim, admin, bot, "/channels")).text
        assert "2 watched channels" in listing  # the team's, not the deliverer's alone
        assert "already watched" in (await ask(sim, admin, bot, "/watch @legion")).text
        bye = await ask(sim, admin, bot, "/unwatch @legion")
        assert bye.text == "Stopped watching Легион (@legion). Its archive is kept."
        await _until(lambda: _held_by_none(apps, legion.id), "legion given up by its holder")
        assert "is not watched" in (await ask(sim, admin, bot, "/unwatch @legion")).text
        assert monitors[0].id not in legion.members and monitors[1].id not in legion.members


async def _until(check, what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not await check():  # noqa: ASYNC110 - rounds run on their own clock
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {TIMEOUT} s: {what}") from None


async def _held_by_one(apps, channel_id: int) -> bool:
    return sum(channel_id in app.watcher.channels for app in apps.values()) == 1


async def _held_by_none(apps, channel_id: int) -> bool:
    return not any(channel_id in app.watcher.channels for app in apps.values())


async def _posts_in(app, channel_id: int, n: int) -> bool:
    row = await app.db.fetchone("SELECT count(*) FROM posts WHERE channel_id = ?", (channel_id,))
    return row[0] >= n


async def _scalar_is(app, sql: str, expected: int) -> bool:
    row = await app.db.fetchone(sql)
    return row[0] == expected
