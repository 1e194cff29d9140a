"""Shared helpers for the benchmarks: the corpus, timing, memory."""

from __future__ import annotations

import gzip
import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "data" / "ru_news_posts.jsonl.gz"


def corpus(limit: int | None = None) -> list[dict[str, Any]]:
    """Real posts (channel_id, channel, message_id, date, text), in file order."""
    rows: list[dict[str, Any]] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def cycle(rows: list[dict[str, Any]], n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield rows[i % len(rows)]


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def figure(value: float, unit: str, baseline: float | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"value": round(value, 3), "unit": unit}
    if baseline is not None:
        result["baseline"] = round(baseline, 3)
        result["ratio"] = round(value / baseline, 4) if baseline else None
    return result


async def plain_insert_seconds(
    path: Path, texts: list[tuple[str, str]], lemmas: list[str] | None = None
) -> float:
    """The baseline: (date, text) rows with one plain executemany in one transaction,
    into a fresh archive with the same schema and FTS index; returns seconds."""
    from datetime import UTC, datetime

    from storage import archive
    from storage.db import open_database
    from storage.models import Channel

    db = await open_database(path)
    await archive.save_channel(db, Channel(1, 1, "baseline", "Baseline"))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    words = lemmas if lemmas is not None else [""] * len(texts)
    rows = [
        (i + 1, 1, i + 1, date, text, lemma, "{}", "", now, now)
        for i, ((date, text), lemma) in enumerate(zip(texts, words, strict=True))
    ]
    started = time.perf_counter()
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO posts (id, channel_id, msg_id, date, text, lemmas, raw, raw_sha256, "
            "captured_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    elapsed = time.perf_counter() - started
    await db.close()
    return elapsed
