"""A stream's batches already waiting behind one are written with it in one transaction;
a source slower than the pipeline has each batch written alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from bot.alerts.policy import Policy
from bot.pipeline import JOIN_POSTS, Pipeline
from storage import archive
from storage.archive import Archived
from storage.db import Database, open_database
from storage.models import Channel, Post

NOW = datetime.now(UTC).replace(microsecond=0)


def page(first: int, n: int) -> list[Post]:
    return [
        Post(10, i, NOW - timedelta(minutes=10_000 - i), f"Обстрел Шебекино, сообщение {i}")
        for i in range(first, first + n)
    ]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_database(tmp_path / "stream.db")
    await archive.save_channel(db, Channel(10, 1, "rdk_channel", "РДК"))
    yield db
    await db.close()


async def count(db: Database) -> int:
    return (await db.fetchone("SELECT count(*) FROM posts"))[0]


async def has(db: Database, n: int) -> bool:
    return await count(db) >= n


async def test_pages_waiting_behind_one_are_written_with_it(db: Database) -> None:
    """Six pages of 100 are all read before the first is written: four go in the first
    transaction (JOIN_POSTS), the two left (and the end of the stream, already read
    behind them) in the second."""
    written: list[int] = []

    async def pages() -> AsyncIterator[list[Post]]:
        for i in range(6):
            yield page(1 + 100 * i, 100)

    def done(posts: Sequence[Post], result: list[Archived]) -> None:
        assert [a.post.msg_id for a in result] == [p.msg_id for p in posts]
        written.append(len(posts))

    pipeline = Pipeline(db, policy=Policy(max_age=None))
    total = await asyncio.wait_for(pipeline.ingest_stream(pages(), "catchup", done=done), 60)
    assert JOIN_POSTS == 400
    assert written == [400, 200]
    assert total == 600 == await count(db)


async def test_a_polled_stream_is_not_joined(db: Database) -> None:
    """Polled posts are detected in-process, for latency: pages read ahead are still
    written one by one."""
    written: list[int] = []

    async def pages() -> AsyncIterator[list[Post]]:
        for i in range(3):
            yield page(1 + 100 * i, 100)

    pipeline = Pipeline(db, policy=Policy(max_age=None))
    await asyncio.wait_for(
        pipeline.ingest_stream(pages(), "poll", done=lambda p, r: written.append(len(p))), 60
    )
    assert written == [100, 100, 100]
    assert await count(db) == 300


async def test_a_source_slower_than_the_pipeline_has_each_page_written_alone(
    db: Database,
) -> None:
    """The source gives the next page only once the one before is committed: nothing
    waits behind a page, so each is its own transaction, as it came."""
    written: list[int] = []
    pipeline = Pipeline(db, policy=Policy(max_age=None))

    async def pages() -> AsyncIterator[list[Post]]:
        archived = 0
        for n in (100, 30, 100):
            if archived:
                await asyncio.wait_for(pipeline.wait_until(partial(has, db, archived)), 30)
            yield page(1 + archived, n)
            archived += n

    await asyncio.wait_for(
        pipeline.ingest_stream(pages(), "catchup", done=lambda p, r: written.append(len(p))),
        60,
    )
    assert written == [100, 30, 100]
    assert await count(db) == 230


async def test_what_went_wrong_reading_comes_after_the_pages_read_before_it(
    db: Database,
) -> None:
    """The third page cannot be fetched: the two before it, read ahead and joined,
    are archived, and the error reaches the caller."""
    written: list[int] = []

    async def pages() -> AsyncIterator[list[Post]]:
        yield page(1, 100)
        yield page(101, 100)
        raise ConnectionError("the connection dropped")

    pipeline = Pipeline(db, policy=Policy(max_age=None))
    with pytest.raises(ConnectionError, match="dropped"):
        await asyncio.wait_for(
            pipeline.ingest_stream(pages(), "catchup", done=lambda p, r: written.append(len(p))),
            60,
        )
    assert written == [200]
    assert await count(db) == 200


async def test_a_source_cancelled_from_outside_ends_the_stream_with_an_error(
    db: Database,
) -> None:
    """The source awaits something that is cancelled under it (as Telethon cancels the
    requests in flight when its client disconnects): the stream does not wait forever
    for the next page; it raises ConnectionError after archiving the page before."""
    request: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def pages() -> AsyncIterator[list[Post]]:
        yield page(1, 100)
        await request  # the next page's request, cancelled below
        yield page(101, 100)

    pipeline = Pipeline(db, policy=Policy(max_age=None))
    stream = asyncio.create_task(pipeline.ingest_stream(pages(), "catchup"))
    await asyncio.wait_for(pipeline.wait_until(partial(has, db, 100)), 30)
    request.cancel()
    with pytest.raises(ConnectionError, match="cancelled"):
        await asyncio.wait_for(stream, 30)
    assert await count(db) == 100


async def test_a_stream_stopped_early_stops_reading_its_source(db: Database) -> None:
    """A stream cancelled while its source still has pages: the task reading ahead is
    gone, the source was closed, and what was committed stays."""
    closed = asyncio.Event()
    pipeline = Pipeline(db, policy=Policy(max_age=None))

    async def pages() -> AsyncIterator[list[Post]]:
        try:
            yield page(1, 100)
            await asyncio.Event().wait()  # the next page never comes
            yield page(101, 100)
        finally:
            closed.set()

    tasks_before = asyncio.all_tasks()
    stream = asyncio.create_task(pipeline.ingest_stream(pages(), "catchup"))
    await asyncio.wait_for(pipeline.wait_until(partial(has, db, 100)), 30)
    stream.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(stream, 30)
    assert closed.is_set()
    assert asyncio.all_tasks() - tasks_before == set()
    assert await count(db) >= 100
