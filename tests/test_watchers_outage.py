"""The PostgreSQL server goes away under a running watcher: the service keeps running,
its lease expires so its channels could go to another watcher, and once the server is
back it takes its share again, catches up what was posted meanwhile and alerts it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.simulator import Simulator
from tests.bot_helpers import add_rule, bot_settings, make_analyst, received, service
from tests.pg_server import PgServer, find_bin_dir

TIMEOUT = 30


@pytest.fixture
def own_server(pg_server: PgServer) -> Iterator[PgServer]:
    """A server of this test's own, to stop and start (the shared one stays up)."""
    bin_dir = find_bin_dir()
    assert bin_dir is not None  # pg_server skipped or failed already otherwise
    server = PgServer(bin_dir).start()
    yield server
    server.remove()


async def test_a_server_outage_loses_nothing_and_the_watcher_takes_its_share_again(
    sim: Simulator,
    monitor,
    bot,
    admin,
    ann,
    rdk,
    tmp_path: Path,
    own_server: PgServer,
    errors_logged: list[str],
) -> None:
    url = own_server.create_database()
    settings = bot_settings(
        tmp_path, bot, [admin], "rdk_channel", db_path=url, watcher="a", lease_seconds=2
    )
    async with service(sim, monitor, bot, settings) as app:
        assert app.sharing is not None and app.watcher is not None
        await make_analyst(app, ann, "Ann")
        await add_rule(app, ann, "Белгород")
        first = sim.post(rdk, "Обстрел Белгорода утром")
        await received(sim, ann, bot, 1)

        await asyncio.to_thread(own_server.stop)
        async with asyncio.timeout(TIMEOUT):
            await app.sharing.expired.wait()  # renewals failed for the lease time
        assert app.watcher.channels == {}  # left for another watcher to take
        during = [sim.post(rdk, f"Белгород, сводка {i}") for i in range(3)]

        await asyncio.to_thread(own_server.restart)
        alerts = await received(sim, ann, bot, 4, within=TIMEOUT)
        assert not app.sharing.expired.is_set()
        assert not app.task.done()  # type: ignore[attr-defined]
        assert app.db is not None
        rows = await app.db.fetchall("SELECT msg_id, text FROM posts ORDER BY msg_id")
    assert [r[0] for r in rows] == [first, *during]
    assert errors_logged == []  # an outage is warned about, not logged as a failure
    linked = " ".join(a.text for a in alerts)
    assert all(f"https://t.me/rdk_channel/{msg_id}" in linked for msg_id in [first, *during])
