"""Bulk batches detected in worker processes store exactly what in-process detection does."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loguru import logger

from bot.alerts.policy import Policy
from bot.detection.keywords import parse_rule
from bot.pipeline import (
    BULK_GC_THRESHOLD,
    POOL_MIN_TEXTS,
    Pipeline,
    Source,
    detect_chunk,
    pickled_rules,
)
from bot.pool import DetectionPool
from storage import archive, subscribers
from storage.db import Database, open_database
from storage.models import Channel, Post

NOW = datetime.now(UTC).replace(microsecond=0)
TEXTS = [
    "Бойцы РДК взяли в плен двоих военнослужащих у Козинки, Белгородская область.",
    "Обстрел Шебекино: повреждены два дома, пострадавших нет.",
    "Учения под Белгородом завершились.",
    "ЗСУ взяли в полон трьох російських військових під Бахмутом.",
    "Two soldiers were taken prisoner near Bakhmut, officials say.",
    "В Курской области объявлена ракетная опасность.",
]


def posts(channel: int, n: int) -> list[Post]:
    return [
        Post(channel, i + 1, NOW - timedelta(minutes=n - i), f"{TEXTS[i % len(TEXTS)]} №{i}")
        for i in range(n)
    ]


async def archive_with(
    path: Path, pool: DetectionPool | None, batch: list[Post], source: Source = "catchup"
) -> Database:
    db = await open_database(path)
    await archive.save_channel(db, Channel(10, 1, "rdk_channel", "РДК"))
    await archive.save_channel(db, Channel(11, 2, "news_agg", "Новости"))
    await subscribers.upsert(db, 1, "analyst", name="Ann")
    await subscribers.add_rule(db, 1, "Белгород", None)
    await subscribers.add_rule(db, 1, "Шебекино in @news_agg", None)
    await subscribers.upsert(db, 2, "analyst", name="Bob")
    await subscribers.add_rule(db, 2, '"взять в плен" -not учения', None)
    pipeline = Pipeline(db, policy=Policy(max_age=None), pool=pool)

    async def pages() -> AsyncIterator[list[Post]]:
        for i in range(0, len(batch), 50):
            yield batch[i : i + 50]

    await pipeline.ingest_stream(pages(), source)
    return db


async def stored(db: Database) -> tuple[list[tuple], list[tuple], list[tuple]]:
    rows = await db.fetchall(
        "SELECT channel_id, msg_id, lemmas, lang, claim_label, claim_score, claim_evidence "
        "FROM posts ORDER BY channel_id, msg_id"
    )
    alerts = await db.fetchall(
        "SELECT a.chat_id, p.channel_id, p.msg_id, a.payload FROM alerts a "
        "JOIN posts p ON p.id = a.post_id ORDER BY a.chat_id, p.channel_id, p.msg_id"
    )
    grouped = await db.fetchall(
        "SELECT p.channel_id, p.msg_id, i.title, ip.features, ip.score, ip.ties "
        "FROM incident_posts ip JOIN posts p ON p.id = ip.post_id "
        "LEFT JOIN incidents i ON i.id = ip.incident_id ORDER BY p.channel_id, p.msg_id"
    )
    return (
        [tuple(r) for r in rows],
        [(*r[:3], json.loads(r[3])) for r in alerts],
        [tuple(r) for r in grouped],
    )


async def test_bulk_batches_in_workers_store_what_in_process_detection_does(
    tmp_path: Path,
) -> None:
    batch = posts(10, 120) + posts(11, 2 * POOL_MIN_TEXTS)
    pool = DetectionPool(2)
    if not pool.enabled:
        pytest.skip("no fork on this platform")
    warned: list[str] = []
    sink = logger.add(lambda m: warned.append(str(m)), level="WARNING")
    try:
        in_workers = await archive_with(tmp_path / "workers.db", pool, batch)
        assert pool.running  # the batches really went to the workers
        in_process = await archive_with(tmp_path / "inline.db", None, batch)
    finally:
        pool.close()
        logger.remove(sink)
    assert warned == []  # every batch whole: none fell back to one post at a time
    try:
        got, want = await stored(in_workers), await stored(in_process)
        assert got == want
        rows, alerts, grouped = got
        assert len(rows) == len(batch) and all(r[2] for r in rows)  # all archived, lemmatised
        # the workers' incident features (and MinHash signatures) group posts alike
        assert len({title for *_, title, _, _, _ in grouped}) >= 2
        assert any(t["kind"] == "text" for *_, ties in grouped for t in json.loads(ties))
        assert {r[4] for r in rows} == {"claim", "none"}
        # the channel-limited rule fired only in its channel, the exclusion held
        assert {(chat, channel) for chat, channel, _, why in alerts if "rules" in why} == {
            (1, 10),
            (1, 11),
            (2, 10),
            (2, 11),
        }
        shebekino = [
            (channel, why["rules"][0]["rule"])
            for chat, channel, _, why in alerts
            if chat == 1 and "Шебекино" in str(why.get("rules"))
        ]
        assert shebekino and {channel for channel, _ in shebekino} == {11}
    finally:
        await in_workers.close()
        await in_process.close()


async def test_an_import_in_workers_stores_all_but_alerts_and_matches_nothing(
    tmp_path: Path,
) -> None:
    batch = posts(10, 2 * POOL_MIN_TEXTS)
    pool = DetectionPool(2)
    if not pool.enabled:
        pytest.skip("no fork on this platform")
    try:
        imported = await archive_with(tmp_path / "import.db", pool, batch, "import")
        caught_up = await archive_with(tmp_path / "catchup.db", pool, batch)
    finally:
        pool.close()
    try:
        (rows, alerts, grouped), (want_rows, want_alerts, want_grouped) = (
            await stored(imported),
            await stored(caught_up),
        )
        assert (rows, grouped) == (want_rows, want_grouped)  # lemmas, verdicts, incidents
        assert alerts == [] and want_alerts != []
    finally:
        await imported.close()
        await caught_up.close()


def test_a_chunk_left_unmatched_keeps_every_other_result() -> None:
    items = [(text, (10, "rdk_channel")) for text in TEXTS]
    rules = pickled_rules((parse_rule("плен", rule_id="1"), parse_rule("Шебекино", rule_id="2")))
    matched = detect_chunk(items, 1, rules, True)
    unmatched = detect_chunk(items, 1, rules, True, False)
    assert [len(d.matches) for d in matched] == [1, 1, 0, 0, 0, 0]
    assert [d.matches for d in unmatched] == [()] * len(items)
    assert [d._replace(matches=()) for d in matched] == unmatched


def doubled(chunk: list[int]) -> list[int]:
    return [2 * x for x in chunk]


async def test_idle_workers_stop_and_start_again_when_needed() -> None:
    pool = DetectionPool(2, idle_seconds=0.05)
    if not pool.enabled:
        pytest.skip("no fork on this platform")
    try:
        assert not pool.running  # nothing is started before there is work
        assert await pool.map(doubled, pool.chunks([1, 2, 3, 4, 5])) == [2, 4, 6, 8, 10]
        assert pool.running
        await asyncio.wait_for(pool.stopped.wait(), timeout=10)
        assert not pool.running
        assert await pool.map(doubled, pool.chunks([7])) == [14]
        assert pool.running
    finally:
        pool.close()


_LATIN = str.maketrans("абвгдежзик", "abcdefghik")


def test_the_cache_budget_bounds_the_word_cache_and_changes_no_result() -> None:
    from bot.detection import (
        MEMOS_PER_FORM,
        analyze,
        cache_forms,
        morphology,
        set_cache_budget,
        text,
    )
    from config.settings import Settings

    text_ = "Бойцы РДК взяли в плен двоих военнослужащих у Козинки, Белгородская область."
    before = analyze(text_)
    forms = cache_forms(8)  # the smallest budget
    try:
        set_cache_budget(8)
        assert text._WORD_CACHE_LIMIT == forms == 8 * 1024**2 // 660
        memos_emptied = 0
        for i in range(forms + 500):  # the bound is checked at each sentence
            # a new Russian and a new English word each time: new forms for every cache
            tail = "".join("абвгдежзик"[int(d)] for d in str(i))
            stored = morphology._stored
            analyze(f"Слово{tail} были. Word{tail.translate(_LATIN)} stays.")
            # every lemma key's cache counts towards the one bound
            assert sum(map(len, text._WORD_CACHE.values())) <= forms + 4
            assert morphology._stored <= MEMOS_PER_FORM * forms
            memos_emptied += morphology._stored < stored
        assert memos_emptied >= 1  # the memos met their bound
        assert analyze(text_) == before
    finally:
        set_cache_budget(Settings.__dataclass_fields__["cache_mb"].default)


def word_cache_limit(chunk: list[int]) -> list[int]:
    from bot.detection import text

    return [text._WORD_CACHE_LIMIT for _ in chunk]


async def test_workers_take_a_wider_word_cache_budget_than_the_service() -> None:
    from bot.detection import (
        WORKER_BUDGET_FACTOR,
        cache_forms,
        set_cache_budget,
        text,
        widen_cache_budget_for_worker,
    )
    from config.settings import Settings

    pool = DetectionPool(2, setup=widen_cache_budget_for_worker)
    if not pool.enabled:
        pytest.skip("no fork on this platform")
    try:
        set_cache_budget(8)
        limits = await asyncio.wait_for(pool.map(word_cache_limit, pool.chunks([1, 2])), 60)
        assert limits == [cache_forms(8 * WORKER_BUDGET_FACTOR)] * 2
        assert text._WORD_CACHE_LIMIT == cache_forms(8)  # the service keeps its own
    finally:
        pool.close()
        set_cache_budget(Settings.__dataclass_fields__["cache_mb"].default)


async def test_bulk_streams_raise_the_collectors_threshold_until_the_last_one_ends(
    tmp_path: Path,
) -> None:
    """Two streams overlap, the second ends with an error: the collector's first
    threshold is raised while either runs and Python's own is back after both."""
    before = gc.get_threshold()
    db = await open_database(tmp_path / "a.db")
    await archive.save_channel(db, Channel(10, 1, "rdk_channel", "РДК"))
    pipeline = Pipeline(db, policy=Policy(max_age=None))
    seen: list[int] = []
    first_done = asyncio.Event()

    async def pages(batch: list[Post], fail: bool) -> AsyncIterator[list[Post]]:
        yield batch
        seen.append(gc.get_threshold()[0])
        if fail:
            await asyncio.wait_for(first_done.wait(), timeout=10)
            seen.append(gc.get_threshold()[0])
            raise ConnectionError("the page could not be fetched")

    try:
        batch = posts(10, 4)
        second = asyncio.create_task(pipeline.ingest_stream(pages(batch[2:], True), "catchup"))
        await pipeline.ingest_stream(pages(batch[:2], False), "catchup")
        first_done.set()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(second, timeout=10)
        assert seen == [BULK_GC_THRESHOLD] * 3
        assert gc.get_threshold() == before
        # what the failing stream had read was still archived
        assert (await db.fetchone("SELECT count(*) FROM posts"))[0] == 4
    finally:
        gc.set_threshold(*before)
        await db.close()
