"""Ingest throughput: posts through the whole pipeline in catch-up batches.

    python bench/ingest.py [--quick]

Pipeline = analyze (lemmas) + archive with FTS over text and lemmas + claim
detection + 1,000 keyword rules of 50 analysts + alert planning into the
outbox, one transaction per batch of 100. Baseline, in the same run: plain
executemany of the same rows (text and lemmas) into the same schema and FTS
index, in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpus, cycle, figure, plain_insert_seconds  # noqa: E402
from bench.detect import build_rules, frequent_lemmas  # noqa: E402
from bot.alerts.policy import Policy  # noqa: E402
from bot.detection import analyze  # noqa: E402
from bot.pipeline import Pipeline, lemma_text  # noqa: E402
from storage import archive, subscribers  # noqa: E402
from storage.db import open_database  # noqa: E402
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


async def _pipeline(posts: list[Post], rules: list[str], workdir: Path) -> float:
    return await _pipeline_on(workdir / "pipeline.db", posts, rules)


async def _pipeline_on(target: Path | str, posts: list[Post], rules: list[str]) -> float:
    """Seconds to ingest `posts` into the archive at `target` (a file or a URL)."""
    db = await open_database(target)
    await archive.save_channel(db, Channel(1, 1, "corpus", "Corpus"))
    for analyst in range(ANALYSTS):
        chat = 10_000 + analyst
        await subscribers.upsert(db, chat, "analyst", name=f"analyst {analyst}")
        await subscribers.set_preferences(db, chat, claims=1)
        for text in rules[analyst::ANALYSTS]:
            await subscribers.add_rule(db, chat, text, None)
    # old posts are archived only, like a deep catch-up; planning still runs
    pipeline = Pipeline(db, policy=Policy(max_age=timedelta(days=36500)))
    started = time.perf_counter()
    for i in range(0, len(posts), BATCH):
        await pipeline.ingest(posts[i : i + BATCH], "catchup")
    elapsed = time.perf_counter() - started
    await db.close()
    return elapsed


async def _plain(posts: list[Post], workdir: Path) -> float:
    lemmas = [lemma_text(analyze(p.text)) for p in posts]  # not timed: the baseline has them
    rows = [(iso(p.date), p.text) for p in posts]
    return await plain_insert_seconds(workdir / "plain.db", rows, lemmas)


async def _run(n: int) -> dict[str, dict[str, Any]]:
    rows = corpus()
    rules = build_rules(frequent_lemmas([r["text"] for r in rows[:1500]], RULES), RULES)
    rule_texts = [f'"{r.phrase}"' if " " in r.phrase else r.phrase for r in rules]
    posts = _posts(list(cycle(rows, n)))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        pipeline_s = await _pipeline(posts, rule_texts, workdir)
        plain_s = await _plain(posts, workdir)
    return {"ingest_posts_per_s": figure(n / pipeline_s, "posts/s", baseline=n / plain_s)}


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(1_500 if quick else 22_099))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500 posts instead of 22,099")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
