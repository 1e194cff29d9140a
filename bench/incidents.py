"""Incidents over the real-post corpus: how many, how big, what they look like, and what
grouping costs the pipeline.

    python bench/incidents.py [--limit N] [--sample K]

The corpus (22,099 posts of 24 Russian news channels, Aug 2023 – Dec 2024) goes
through the real pipeline in date order, in catch-up batches of 100: once to warm
every word cache, then with grouping switched off (the baseline) and on, all in
the same process; then the
incidents are counted by size and a sample is printed for a person to read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402

from bench.common import corpus, figure  # noqa: E402
from bot import incident_join  # noqa: E402
from bot.incidents import minhash  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from storage import archive, incidents  # noqa: E402
from storage.db import open_database  # noqa: E402
from storage.models import Channel, Post  # noqa: E402

BATCH = 100


def posts_of(rows: list[dict[str, Any]]) -> tuple[list[Post], dict[int, str]]:
    channels: dict[int, str] = {}
    posts = []
    for row in rows:
        channels[row["channel_id"]] = row["channel"]
        date = datetime.fromisoformat(row["date"])
        posts.append(Post(row["channel_id"], row["message_id"], date, row["text"]))
    posts.sort(key=lambda p: p.date)
    return posts, channels


async def ingest(path: Path, posts: list[Post], channels: dict[int, str]) -> float:
    db = await open_database(path)
    try:
        for channel_id, title in channels.items():
            await archive.save_channel(db, Channel(channel_id, 1, None, title))
        pipeline = Pipeline(db)
        started = time.perf_counter()
        for i in range(0, len(posts), BATCH):
            await pipeline.ingest(posts[i : i + BATCH], "catchup")
        return time.perf_counter() - started
    finally:
        await db.close()


async def _no_grouping(conn: Any, items: Any) -> dict[int, int]:
    return {}


async def measure(limit: int | None, sample: int, workdir: Path) -> dict[str, Any]:
    posts, channels = posts_of(corpus(limit))
    grouped = workdir / "grouped.db"
    await ingest(workdir / "warm.db", posts, channels)  # warms every word cache
    original = incident_join.join_in
    incident_join.join_in = _no_grouping  # type: ignore[assignment]
    try:
        without = await ingest(workdir / "plain.db", posts, channels)
    finally:
        incident_join.join_in = original  # type: ignore[assignment]
    minhash.signature_of.cache_clear()  # texts are new to a service; words are not
    spent = [0.0]

    async def timed(conn: Any, items: Any) -> dict[int, int]:
        started = time.perf_counter()
        try:
            return await original(conn, items)
        finally:
            spent[0] += time.perf_counter() - started

    incident_join.join_in = timed  # type: ignore[assignment]
    try:
        with_grouping = await ingest(grouped, posts, channels)
    finally:
        incident_join.join_in = original  # type: ignore[assignment]
    db = await open_database(grouped, readonly=True)
    try:
        found = await incidents.recent(db, limit=100_000)
        claimish = await db.fetchone(
            "SELECT count(*) FROM posts WHERE claim_label IN ('claim', 'denial', 'exchange')"
        )
        grouped_posts = await db.fetchone(
            "SELECT count(*) FROM incident_posts WHERE incident_id IS NOT NULL"
        )
        sizes = Counter(i.posts for i in found)
        biggest = sorted(found, key=lambda i: (-i.posts, i.id))[:sample]
        samples = [(i, await incidents.timeline(db, i.id)) for i in biggest]
    finally:
        await db.close()
    return {
        "posts": len(posts),
        "claimish": claimish[0] if claimish else 0,
        "grouped": grouped_posts[0] if grouped_posts else 0,
        "incidents": found,
        "sizes": sizes,
        "samples": samples,
        "rate": len(posts) / with_grouping,
        "share": spent[0] / with_grouping,
        "baseline": len(posts) / without,
    }


def report(result: dict[str, Any]) -> None:
    found = result["incidents"]
    sizes: Counter[int] = result["sizes"]
    print(f"posts: {result['posts']:,}; claims, denials and exchanges: {result['claimish']:,}")
    print(f"incidents: {len(found):,}, holding {result['grouped']:,} posts")
    buckets = {"1 post": 0, "2-3 posts": 0, "4-9 posts": 0, "10+ posts": 0}
    for n, count in sizes.items():
        key = "1 post" if n == 1 else "2-3 posts" if n <= 3 else "4-9 posts" if n <= 9 else "10+"
        buckets[key if key in buckets else "10+ posts"] += count
    print("sizes: " + ", ".join(f"{k}: {v}" for k, v in buckets.items()))
    multi = sum(1 for i in found if i.channels > 1)
    print(f"incidents told by more than one channel: {multi}")
    print(
        f"ingest with grouping: {result['rate']:.0f} posts/s; without: "
        f"{result['baseline']:.0f} posts/s (ratio {result['rate'] / result['baseline']:.3f}); "
        f"grouping took {result['share']:.0%} of the ingest time"
    )
    for incident, members in result["samples"]:
        print(
            f"\n#{incident.id} {incident.title} — {incident.posts} posts, "
            f"{incident.channels} channels, counts {list(incident.counts)}"
        )
        for m in members[:12]:
            text = " ".join(m.text.split())[:110]
            ties = ", ".join(f"{t['kind']} {t['detail']} {t['score']}" for t in m.ties)
            print(f"  {m.date:%Y-%m-%d %H:%M} [{m.label}] {m.channel[:24]}: {text}  <{ties}>")


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(5_000 if quick else None, 0, Path(tmp)))
    return {
        "incidents_count": figure(len(result["incidents"]), "incidents"),
        "incidents_ingest_posts_per_s": figure(result["rate"], "posts/s", result["baseline"]),
        "incidents_share_of_ingest": figure(result["share"], "fraction"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N posts of the corpus")
    parser.add_argument("--sample", type=int, default=8, help="print the K biggest incidents")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        report(asyncio.run(measure(args.limit, args.sample, Path(tmp))))


if __name__ == "__main__":
    main()
