"""Shared fixtures.

* ``simulator_errors`` (autouse): fails any test during which the loopback Telegram
  (``bot.simulator``) logged at ERROR or above, so a bug in the fake cannot hide behind
  Telethon's silent retries. A test that provokes such an error on purpose inspects the
  list and clears it.
* ``sim``: a started ``bot.simulator.Simulator``, stopped (and its clients disconnected)
  after the test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from loguru import logger

from bot.simulator import Simulator
from tests.pg_server import INSTALL_HINT, PgServer, find_bin_dir


@pytest.fixture(autouse=True)
def simulator_errors() -> Iterator[list[str]]:
    errors: list[str] = []

    def sink(message: object) -> None:
        errors.append(str(message).rstrip())

    sink_id = logger.add(
        sink,
        level="ERROR",
        filter=lambda record: record["name"].startswith("bot.simulator"),
        format="{name}:{line} {message}\n{exception}",
    )
    try:
        yield errors
    finally:
        logger.remove(sink_id)
    if errors:
        pytest.fail("the simulator logged errors:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def errors_logged() -> Iterator[list[str]]:
    """ERROR lines the service logged (`name | message`; the simulator's own errors
    fail the test through ``simulator_errors`` instead)."""
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m)),
        level="ERROR",
        filter=lambda r: not r["name"].startswith("bot.simulator"),
        format="{name} | {message}",
    )
    yield lines
    logger.remove(sink)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


# The cast most service tests share: the monitoring account, the bot, an admin, an
# analyst, and a channel.


@pytest.fixture
def monitor(sim: Simulator):
    return sim.add_user(phone="+15550001", first_name="Monitor")


@pytest.fixture
def bot(sim: Simulator):
    return sim.add_bot(username="watch_bot")


@pytest.fixture
def admin(sim: Simulator):
    return sim.add_user(phone="+15550002", first_name="Admin")


@pytest.fixture
def ann(sim: Simulator):
    return sim.add_user(phone="+15550003", first_name="Ann", username="ann")


@pytest.fixture
def rdk(sim: Simulator):
    return sim.add_channel(username="rdk_channel", title="РДК")


# --- archives on both backends ---------------------------------------------------
# The storage, search, export, import and outbox tests take `archive_target`: once a
# SQLite file, once a fresh database on a PostgreSQL server the suite starts itself.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = f"PostgreSQL server not installed: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests. {message}", pytrace=False)
        pytest.skip(message)
    server = PgServer(bin_dir).start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's archive lives: a SQLite file, or the URL of an empty PostgreSQL
    database."""
    if request.param == "sqlite":
        return tmp_path / "archive.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database()
