"""FloodWaits while watching: the real Telethon client, the simulator, a real archive.

A FloodWait holds back only the kind of request Telegram named and only the work that
needs it: a live post whose gap fetch hits one waits for it (nothing dropped), other
channels are resolved and caught up meanwhile, and no request of that kind is sent
before the wait is over (checked against the simulator's log of every request, whose
send times come from the client's own MTProto message ids).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from bot.floodgate import FloodGate
from bot.service.app import App
from bot.simulator import RequestRecord, SimChannel, Simulator
from storage import archive
from tests.watch_helpers import TIMEOUT, eventually, running, settings_for


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    """WARNING lines the service logged (not the simulator's)."""
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m).rstrip()),
        level="WARNING",
        filter=lambda r: not r["name"].startswith("bot.simulator") and r["level"].no < 40,
        format="{message}",
    )
    yield lines
    logger.remove(sink)


# A request handed to the connection just before the answer with the wait arrives can
# leave one turn of the event loop later; anything later was sent knowing of the wait.
IN_FLIGHT = 0.05


def sent_during_waits(sim: Simulator, gate: FloodGate) -> list[tuple[str, RequestRecord]]:
    """Requests the client sent while a FloodWait on their kind was known to it (send
    times from the server's log, read from the client's own message ids)."""
    return [
        (f"{c.kind} wait of {c.seconds:.0f} s known at {c.at:.3f} until {c.until:.3f}", r)
        for c in gate.closures
        for r in sim.request_log
        if r.name == c.kind and c.at + IN_FLIGHT < r.sent_at < c.until
    ]


def flood_waits_issued(sim: Simulator, kind: str) -> list[RequestRecord]:
    return [r for r in sim.request_log if r.name == kind and (r.error or "").startswith("FLOOD")]


async def archived(app: App, channel: SimChannel, msg_ids: list[int]) -> bool:
    for msg_id in msg_ids:
        if await archive.get_post(app.db, channel.id, msg_id) is None:
            return False
    return True


async def all_archived(app: App, expected: dict[SimChannel, list[int]]) -> bool:
    for channel, msg_ids in expected.items():
        if not await archived(app, channel, msg_ids):
            return False
    return True


async def test_the_simulators_send_times_are_the_clients_clock(sim: Simulator) -> None:
    """The checks below compare the client's wait times with the send times the
    simulator reads from message ids: both must be the same clock."""
    client = sim.client_for(sim.add_user(phone="+15550077", first_name="Clock"))
    before = time.time()
    await client.connect()
    try:
        await client.get_me()
    finally:
        await client.disconnect()
    after = time.time()
    assert sim.request_log
    for record in sim.request_log:
        assert before <= record.sent_at <= record.received_at <= after


async def test_a_gap_fetch_that_hits_a_flood_wait_waits_for_it_and_drops_nothing(
    sim, monitor, tmp_path: Path, errors_logged, warnings_logged
):
    channels = [sim.add_channel(username=f"front_{i}", title=f"Фронт {i}") for i in range(3)]
    for channel in channels:
        sim.post(channel, "до запуска")
    names = [c.username for c in channels]
    async with running(sim, monitor, settings_for(tmp_path, *names)) as app:
        assert app.client is not None
        expected: dict[SimChannel, list[int]] = {}
        live: dict[SimChannel, int] = {}
        for channel in channels:
            sim.fail(request="GetHistoryRequest", error="FLOOD_WAIT_2", channel=channel)
        for channel in channels:
            hidden = [sim.post(channel, f"не доставлено {i}", push=False) for i in range(5)]
            live[channel] = sim.post(channel, "доставлено")  # ids jump: the gap is fetched
            expected[channel] = [*hidden, live[channel]]
        await eventually(app, lambda: all_archived(app, expected))
        for channel in channels:
            head = (await archive.find_channel(app.db, channel.id)).last_msg_id
            assert head == live[channel]
        assert len(flood_waits_issued(sim, "messages.GetHistoryRequest")) == 3
        assert sent_during_waits(sim, app.client.flood_gate) == []
    assert errors_logged == []  # no "could not archive a live post", no traceback
    floods = [w for w in warnings_logged if "FloodWait" in w]
    assert len(floods) == 3, floods  # one per channel and wait
    for channel in channels:
        (line,) = [w for w in floods if f"@{channel.username}:" in w]
        assert "wait 2 s" in line and f"live post {live[channel]}" in line


async def test_known_channels_are_caught_up_while_new_ones_wait_to_be_resolved(
    sim, monitor, tmp_path: Path, errors_logged
):
    known = [sim.add_channel(username=f"known_{i}", title=f"Известный {i}") for i in range(6)]
    known_names = [c.username for c in known]
    async with running(sim, monitor, settings_for(tmp_path, *known_names)):
        pass
    missed = {c: [sim.post(c, f"пропущено {i}", push=False) for i in range(3)] for c in known}
    new = [sim.add_channel(username=f"new_{i}", title=f"Новый {i}") for i in range(3)]
    for channel in new:
        sim.post(channel, "история")
    # A long wait on resolving, longer than the test waits: known channels (never
    # resolved again) must not wait for it. New channels come first and take slots.
    sim.fail(request="ResolveUsernameRequest", error="FLOOD_WAIT_120", times=3)
    settings = settings_for(tmp_path, *[c.username for c in new], *known_names)
    app = App(
        settings,
        session=sim.session_for(monitor),
        client_options={"flood_sleep_threshold": 60, "retry_delay": 0.1},
        page_wait=0,
    )
    task = asyncio.create_task(app.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            await sim.wait_until(lambda: app.pipeline is not None or task.done(), timeout=TIMEOUT)
            await eventually(app, lambda: all_archived(app, missed))
        assert not app.ready.is_set()  # the new channels are still waiting
        assert {c.id for c in new}.isdisjoint(app.watcher.channels)
        waited = {what for what, _ in app.watcher.flood_waits}
        assert waited and waited <= {f"@{c.username}" for c in new}
        assert app.watcher.flood_waits and all(s == 120 for _, s in app.watcher.flood_waits)
        assert sent_during_waits(sim, app.client.flood_gate) == []
    finally:
        app.stop()  # a stop does not wait for the FloodWait to pass
        async with asyncio.timeout(TIMEOUT):
            await task
    assert errors_logged == []


async def test_waits_on_resolving_and_history_at_start_overlap_and_hold_no_one_else(
    sim, monitor, tmp_path: Path, errors_logged
):
    channels = [sim.add_channel(username=f"chan_{i}", title=f"Канал {i}") for i in range(10)]
    posts = {c: [sim.post(c, f"пост {i}") for i in range(3)] for c in channels}
    sim.fail(request="GetHistoryRequest", error="FLOOD_WAIT_3", times=5)
    sim.fail(request="ResolveUsernameRequest", error="FLOOD_WAIT_3", times=3)
    started = time.monotonic()
    async with running(
        sim, monitor, settings_for(tmp_path, *[c.username for c in channels])
    ) as app:
        ready_after = time.monotonic() - started
        assert await all_archived(app, posts)
        assert len(flood_waits_issued(sim, "contacts.ResolveUsernameRequest")) == 3
        assert len(flood_waits_issued(sim, "messages.GetHistoryRequest")) == 5
        assert sent_during_waits(sim, app.client.flood_gate) == []
        later = {c: [sim.post(c, "после запуска")] for c in channels}
        await eventually(app, lambda: all_archived(app, later))
    assert errors_logged == []
    print(f"READY {ready_after:.1f} s after start with eight 3 s FloodWaits")


async def test_a_flood_wait_on_history_in_a_catch_up_sets_up_no_more_reads_than_slots(
    sim, monitor, tmp_path: Path, errors_logged
):
    """A FloodWait on history reads holds back every channel's catch-up. The channels
    given the slots of those waiting must wait for it before setting up their reads:
    otherwise each would set one up, hit the wait and pass its slot on, so that every
    channel's read is held at once (the service's memory then steps up after each such
    reconnect, and the allocator keeps the step)."""
    channels = [sim.add_channel(username=f"chan_{i}", title=f"Канал {i}") for i in range(16)]
    for channel in channels:
        sim.post(channel, "первый")
    slots = 2
    settings = settings_for(tmp_path, *[c.username for c in channels], catchup_concurrency=slots)
    async with running(sim, monitor, settings) as app:
        assert app.watcher is not None
        reading = most = 0
        fetch = app.watcher._fetch_above

        async def counted(*args: Any, **kwargs: Any) -> int:
            nonlocal reading, most
            reading += 1
            most = max(most, reading)
            try:
                return await fetch(*args, **kwargs)
            finally:
                reading -= 1

        app.watcher._fetch_above = counted  # type: ignore[method-assign]
        missed = {c: [sim.post(c, "пропущено", push=False)] for c in channels}
        sim.fail(request="GetHistoryRequest", error="FLOOD_WAIT_2", times=1)
        await sim.drop_connections()
        await eventually(app, lambda: all_archived(app, missed))
        assert len(flood_waits_issued(sim, "messages.GetHistoryRequest")) == 1
        assert sent_during_waits(sim, app.client.flood_gate) == []
    # the reads the wait caught, and as many begun by channels given their slots once
    # it is over, before the caught ones have theirs back
    assert 0 < most <= 2 * slots
    assert errors_logged == []
