"""Ingest throughput: posts through the whole pipeline in catch-up batches.

    python bench/ingest.py [--quick]

Pipeline = analyze (lemmas) + archive with FTS over text and lemmas + claim
detection + 1,000 keyword rules of 50 analysts + alert planning into the
outbox, one transaction per batch of 100. Baseline, in the same run: plain
executemany of the same rows (text and lemmas) into the same schema and FTS
index, in one transaction.

Two rule sets: `ingest_posts_per_s` has the worst case (the 1,000 most frequent
words, so a post alerts ~17 of the 50 analysts); `ingest_realistic_posts_per_s`
gives each of the 50 analysts 20 keywords drawn from rarer words (ranks 500 to
3,000 of the corpus's content words), with claim alerts on. Catch-up batches
go through the detection workers, as in the service.

`reread_posts_per_s`: the same posts read again as reconcile and metrics snapshots
read them (each with a new view count), into the realistic archive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpus, cycle, figure, plain_insert_seconds  # noqa: E402
from bench.detect import build_rules, frequent_lemmas  # noqa: E402
from bot.alerts.policy import Policy  # noqa: E402
from bot.detection import analyze  # noqa: E402
from bot.pipeline import Pipeline, Source, lemma_text  # noqa: E402
from bot.pool import DetectionPool  # noqa: E402
from storage import archive, subscribers  # noqa: E402
from storage.db import Database, open_database  # noqa: E402
from storage.models import Channel, Post, iso  # noqa: E402

BATCH = 100
ANALYSTS = 50
RULES = 1_000


def _posts(rows: list[dict[str, Any]]) -> list[Post]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Post(
            channel_id=1,
            msg_id=i + 1,
            date=start + timedelta(seconds=30 * i),
            text=row["text"],
            raw={"id": i + 1, "message": row["text"]},
        )
        for i, row in enumerate(rows)
    ]


async def _pipeline(
    posts: list[Post], rules: list[str], workdir: Path, pool: DetectionPool | None = None
) -> float:
    return await _pipeline_on(workdir / "pipeline.db", posts, rules, pool)


async def _pipeline_on(
    target: Path | str, posts: list[Post], rules: list[str], pool: DetectionPool | None = None
) -> float:
    """Seconds to ingest `posts` into the archive at `target` (a file or a URL)."""
    db = await open_database(target)
    await archive.save_channel(db, Channel(1, 1, "corpus", "Corpus"))
    for analyst in range(ANALYSTS):
        chat = 10_000 + analyst
        await subscribers.upsert(db, chat, "analyst", name=f"analyst {analyst}")
        await subscribers.set_preferences(db, chat, claims=1)
        for text in rules[analyst::ANALYSTS]:
            await subscribers.add_rule(db, chat, text, None)
    return await _streamed(db, posts, "catchup", pool)  # as the catch-up reads pages


async def _reread(target: Path, posts: list[Post], pool: DetectionPool) -> float:
    """Seconds to archive `posts` again as re-read by reconcile: texts as archived,
    the view counts moved (so every row is updated)."""
    again = [replace(p, views=7, raw={**p.raw, "views": 7}) for p in posts]
    return await _streamed(await open_database(target), again, "reconcile", pool)


async def _streamed(
    db: Database, posts: list[Post], source: Source, pool: DetectionPool | None
) -> float:
    """Seconds to ingest `posts` in pages of BATCH; closes `db`."""
    # old posts are archived only, like a deep catch-up; planning still runs
    pipeline = Pipeline(db, policy=Policy(max_age=timedelta(days=36500)), pool=pool)

    async def batches() -> AsyncIterator[list[Post]]:
        for i in range(0, len(posts), BATCH):
            yield posts[i : i + BATCH]

    started = time.perf_counter()
    await pipeline.ingest_stream(batches(), source)
    elapsed = time.perf_counter() - started
    await db.close()
    return elapsed


async def _plain(posts: list[Post], workdir: Path) -> float:
    lemmas = [lemma_text(analyze(p.text)) for p in posts]  # not timed: the baseline has them
    rows = [(iso(p.date), p.text) for p in posts]
    return await plain_insert_seconds(workdir / "plain.db", rows, lemmas)


def realistic_rules(texts: list[str], n: int = RULES, seed: int = 13) -> list[str]:
    """n keywords drawn at random from the corpus's rarer content words."""
    words = frequent_lemmas(texts, 3_000)[500:]
    return random.Random(seed).sample(words, n)


async def _run(n: int) -> dict[str, dict[str, Any]]:
    rows = corpus()
    sample = [r["text"] for r in rows[:1500]]
    rules = build_rules(frequent_lemmas(sample, RULES), RULES)
    rule_texts = [f'"{r.phrase}"' if " " in r.phrase else r.phrase for r in rules]
    realistic = realistic_rules(sample)
    posts = _posts(list(cycle(rows, n)))
    pool = DetectionPool()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            plain_s = await _plain(posts, workdir)
            pipeline_s = await _pipeline(posts, rule_texts, workdir, pool)
            (workdir / "pipeline.db").unlink()
            realistic_s = await _pipeline(posts, realistic, workdir, pool)
            reread_s = await _reread(workdir / "pipeline.db", posts, pool)
    finally:
        pool.close()
    return {
        "ingest_posts_per_s": figure(n / pipeline_s, "posts/s", baseline=n / plain_s),
        "ingest_realistic_posts_per_s": figure(n / realistic_s, "posts/s", baseline=n / plain_s),
        "reread_posts_per_s": figure(n / reread_s, "posts/s", baseline=n / plain_s),
    }


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(1_500 if quick else 22_099))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500 posts instead of 22,099")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
