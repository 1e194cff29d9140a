"""The PostgreSQL archive: driver choice, ingest, and search at scale.

    python bench/postgres.py [--quick] [--posts N]

Starts its own PostgreSQL server from Debian's package (as the tests do; fsync
on, like a real server) and measures, in the same run:

* the driver on the ingest path: the same archive rows (every column, FTS
  trigger on) written with executemany in one transaction by asyncpg and by
  psycopg 3 (when installed: `pip install 'psycopg[binary]'`);
* ingest through the whole pipeline (analysis, archive, FTS, detection, 1,000
  rules of 50 analysts, alert planning), batches of 100, against the raw
  baseline on the same server: a plain executemany of the same rows into the
  same schema and FTS in one transaction (ratio = pipeline / raw, to set beside
  SQLite's ingest ratio);
* search p50/p95 (LIMIT 50, newest first) at 1,000,000 posts (100,000 with
  --quick) for a rare word, a common word, a phrase and a prefix, through
  `storage.search.search`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.archive import COMMON, PHRASE, PREFIX, RUNS, _rare_word, _rows  # noqa: E402
from bench.common import corpus, cycle, figure  # noqa: E402
from bench.detect import build_rules, frequent_lemmas  # noqa: E402
from bench.ingest import _pipeline_on, _posts  # noqa: E402
from bot.detection import analyze  # noqa: E402
from bot.pipeline import lemma_text  # noqa: E402
from bot.query import search  # noqa: E402
from storage import archive  # noqa: E402
from storage.db import open_database  # noqa: E402
from storage.models import Channel, iso  # noqa: E402
from storage.search import Filters  # noqa: E402
from tests.pg_server import PgServer, find_bin_dir  # noqa: E402

DRIVER_ROWS = 5_000
COLUMNS = (
    "id, channel_id, msg_id, date, text, lemmas, views, forwards, raw, raw_sha256, "
    "captured_at, updated_at"
)


async def _fresh(server: PgServer) -> str:
    url = server.create_database()
    db = await open_database(url)
    await archive.save_channel(db, Channel(1, 1, "baseline", "Baseline"))
    await db.close()
    return url


def _archive_rows(n: int) -> list[tuple[Any, ...]]:
    posts = corpus(limit=n)
    lemmas = [lemma_text(analyze(p["text"])) for p in posts]
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return [(r[0], 1, i + 1, *r[3:]) for i, r in enumerate(_rows(posts, lemmas, n, now))]


async def _asyncpg_insert(url: str, rows: list[tuple[Any, ...]]) -> float:
    import asyncpg

    conn = await asyncpg.connect(url)
    marks = ", ".join(f"${i}" for i in range(1, 13))
    started = time.perf_counter()
    async with conn.transaction():
        await conn.executemany(f"INSERT INTO posts ({COLUMNS}) VALUES ({marks})", rows)
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


async def _psycopg_insert(url: str, rows: list[tuple[Any, ...]]) -> float | None:
    try:
        import psycopg
    except ImportError:
        return None
    conn = await psycopg.AsyncConnection.connect(url)
    marks = ", ".join(["%s"] * 12)
    started = time.perf_counter()
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(f"INSERT INTO posts ({COLUMNS}) VALUES ({marks})", rows)
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


async def _drivers(server: PgServer, n: int) -> dict[str, dict[str, Any]]:
    rows = _archive_rows(n)
    asyncpg_s = await _asyncpg_insert(await _fresh(server), rows)
    psycopg_s = await _psycopg_insert(await _fresh(server), rows)
    out = {"pg_driver_asyncpg_rows_per_s": figure(n / asyncpg_s, "rows/s")}
    if psycopg_s is not None:
        out["pg_driver_psycopg_rows_per_s"] = figure(
            n / psycopg_s, "rows/s", baseline=n / asyncpg_s
        )
    return out


async def _ingest(server: PgServer, n: int) -> dict[str, dict[str, Any]]:
    rows = corpus()
    rules = build_rules(frequent_lemmas([r["text"] for r in rows[:1500]], 1_000), 1_000)
    rule_texts = [f'"{r.phrase}"' if " " in r.phrase else r.phrase for r in rules]
    posts = _posts(list(cycle(rows, n)))
    pipeline_s = await _pipeline_on(server.create_database(), posts, rule_texts)
    lemmas = [lemma_text(analyze(p.text)) for p in posts]
    now = datetime.now(UTC).isoformat(timespec="seconds")
    plain = [
        (i + 1, 1, i + 1, iso(p.date), p.text, lemma, None, None, "{}", "", now, now)
        for i, (p, lemma) in enumerate(zip(posts, lemmas, strict=True))
    ]
    plain_s = await _asyncpg_insert(await _fresh(server), plain)
    return {"pg_ingest_posts_per_s": figure(n / pipeline_s, "posts/s", baseline=n / plain_s)}


async def _build(server: PgServer, n: int) -> tuple[str, str, float]:
    """n posts copied from the corpus (as bench/archive.py does), loaded with COPY; the
    full-text table filled and its GIN index built once at the end."""
    import asyncpg

    posts = corpus()
    lemmas = [lemma_text(analyze(p["text"])) for p in posts]
    url = server.create_database()
    await (await open_database(url)).close()
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    copies = -(-n // len(posts))
    channels = len({p["channel_id"] for p in posts})
    await conn.executemany(  # citext has no binary COPY format
        "INSERT INTO channels (id, username, title, added_at) VALUES ($1, $2, $3, $4)",
        [
            (1 + i + 1000 * k, f"bench_{k}_{i}", f"Bench {k}/{i}", now)
            for k in range(copies)
            for i in range(channels)
        ],
    )
    await conn.execute("ALTER TABLE posts DISABLE TRIGGER posts_fts_insert")
    await conn.execute("DROP INDEX posts_fts_tsv")
    batch: list[tuple[Any, ...]] = []
    for row in _rows(posts, lemmas, n, now):
        batch.append(row)
        if len(batch) >= 50_000:
            await conn.copy_records_to_table("posts", records=batch, columns=COLUMNS.split(", "))
            batch.clear()
    if batch:
        await conn.copy_records_to_table("posts", records=batch, columns=COLUMNS.split(", "))
    await conn.execute(
        "INSERT INTO posts_fts (id, tsv) SELECT id, chanwatch_tsv(text, lemmas) FROM posts"
    )
    await conn.execute("CREATE INDEX posts_fts_tsv ON posts_fts USING gin (tsv)")
    await conn.execute("ALTER TABLE posts ENABLE TRIGGER posts_fts_insert")
    await conn.execute("VACUUM ANALYZE")
    await conn.close()
    return url, _rare_word(lemmas), time.perf_counter() - started


async def _search(url: str, rare: str) -> dict[str, dict[str, Any]]:
    db = await open_database(url, readonly=True)
    out: dict[str, dict[str, Any]] = {}
    try:
        cases = {"rare": rare, "common": COMMON, "phrase": PHRASE, "prefix": PREFIX}
        for name, query in cases.items():
            await search(db, query, Filters(), limit=50)  # warm the cache
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                await search(db, query, Filters(), limit=50)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            out[f"pg_search_p50_ms_{name}"] = figure(statistics.median(times), "ms")
            out[f"pg_search_p95_ms_{name}"] = figure(p95, "ms")
    finally:
        await db.close()
    return out


async def _run(quick: bool, posts: int | None) -> dict[str, dict[str, Any]]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    server = PgServer(bin_dir, fsync=True).start()
    try:
        out = await _drivers(server, 1_000 if quick else DRIVER_ROWS)
        out |= await _ingest(server, 500 if quick else 5_000)
        n = posts or (100_000 if quick else 1_000_000)
        url, rare, build_s = await _build(server, n)
        out["pg_archive_build_s"] = figure(build_s, "s")
        out["pg_archive_posts"] = figure(n, "posts")
        out |= await _search(url, rare)
    finally:
        server.remove()
    return out


def run(quick: bool = False, posts: int | None = None) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(quick, posts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--posts", type=int, help="archive size for the search figures")
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.posts), indent=2))
