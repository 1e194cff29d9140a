"""Archive queries at scale: search latency, export throughput and memory, import speed.

    python bench/archive.py [--quick] [--keep DIR]

Builds an archive of 1,000,000 posts (100,000 with --quick) from the real-post
corpus (22,099 posts; each copy shifts dates, channels and ids), then measures:

* search p50/p95 (LIMIT 50, newest first) for a rare word, a common word, a
  phrase and a prefix, through `bot.query.search` (what `chanwatch search`
  runs), and the common word ranked by bm25 (`--rank`);
* `chanwatch export --format jsonl` of the whole archive in a child process:
  rows/s and the child's peak RSS;
* `chanwatch import` of a Telegram Desktop export built from the corpus (read,
  validate, pipeline with lemmas and FTS), against a plain executemany of the
  same rows into the same schema in the same run (ratio = import / plain).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import corpus, figure, plain_insert_seconds  # noqa: E402
from bot.cli import importer  # noqa: E402
from bot.detection import analyze  # noqa: E402
from bot.pipeline import lemma_text  # noqa: E402
from bot.query import compile_query, search  # noqa: E402
from storage.archive import post_key  # noqa: E402
from storage.db import open_database  # noqa: E402
from storage.models import canonical_json  # noqa: E402
from storage.search import Filters  # noqa: E402

BATCH = 50_000
RUNS = 40
COMMON = "россия"
PHRASE = '"в том числе"'
PREFIX = "плен*"
INSERT = """INSERT INTO posts (id, channel_id, msg_id, date, text, lemmas, views, forwards,
    raw, raw_sha256, captured_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def _raw(row: dict[str, Any], channel_id: int, msg_id: int, date: str) -> str:
    return canonical_json(
        {
            "_": "Message",
            "id": msg_id,
            "peer_id": {"_": "PeerChannel", "channel_id": channel_id},
            "date": date,
            "message": row["text"],
            "out": False,
            "post": True,
            "views": 1000 + msg_id % 5000,
            "forwards": msg_id % 40,
        }
    )


def _rows(
    posts: list[dict[str, Any]], lemmas: list[str], n: int, now: str
) -> Iterator[tuple[Any, ...]]:
    """n archive rows: copy k of the corpus moves to its own channels, ids and dates."""
    channels = {cid: i for i, cid in enumerate(sorted({p["channel_id"] for p in posts}))}
    taken: set[int] = set()
    for i in range(n):
        k, j = divmod(i, len(posts))
        row = posts[j]
        channel_id = 1 + channels[row["channel_id"]] + 1000 * k
        msg_id = row["message_id"]
        date = datetime.fromisoformat(row["date"]) + timedelta(hours=7 * k)
        key = post_key(date, channel_id, msg_id)
        while key in taken:
            key += 1
        taken.add(key)
        stamp = date.astimezone(UTC).isoformat(timespec="seconds")
        raw = _raw(row, channel_id, msg_id, stamp)
        yield (
            key,
            channel_id,
            msg_id,
            stamp,
            row["text"],
            lemmas[j],
            1000 + msg_id % 5000,
            msg_id % 40,
            raw,
            hashlib.sha256(raw.encode()).hexdigest(),
            now,
            now,
        )


def build(path: Path, posts: list[dict[str, Any]], lemmas: list[str], n: int) -> float:
    """The big archive: real schema, batched inserts, FTS index rebuilt once at the end."""
    asyncio.run(_migrate(path))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: FTS segment merges stay in memory
    conn.execute("PRAGMA temp_store = MEMORY")
    started = time.perf_counter()
    trigger = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'posts_fts_insert'"
    ).fetchone()[0]
    conn.execute("DROP TRIGGER posts_fts_insert")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    copies = -(-n // len(posts))
    channel_ids = sorted({p["channel_id"] for p in posts})
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO channels (id, username, title, added_at) VALUES (?, ?, ?, ?)",
        [
            (1 + i + 1000 * k, f"bench_{k}_{i}", f"Bench {k}/{i}", now)
            for k in range(copies)
            for i in range(len(channel_ids))
        ],
    )
    conn.execute("COMMIT")
    batch: list[tuple[Any, ...]] = []
    for row in _rows(posts, lemmas, n, now):
        batch.append(row)
        if len(batch) >= BATCH:
            conn.execute("BEGIN")
            conn.executemany(INSERT, batch)
            conn.execute("COMMIT")
            batch.clear()
    if batch:
        conn.execute("BEGIN")
        conn.executemany(INSERT, batch)
        conn.execute("COMMIT")
    conn.execute("INSERT INTO posts_fts (posts_fts) VALUES ('rebuild')")
    conn.execute(trigger)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


async def _migrate(path: Path) -> None:
    db = await open_database(path)
    await db.close()


def _rare_word(lemmas: list[str]) -> str:
    """A word in exactly two corpus posts (so 2 per copy of the corpus)."""
    df: Counter[str] = Counter()
    for text in lemmas:
        df.update(set(text.split()))
    candidates = sorted(w for w, c in df.items() if c == 2 and len(w) >= 8 and w.isalpha())
    return candidates[len(candidates) // 2]


async def _search_figures(path: Path, rare: str) -> dict[str, dict[str, Any]]:
    db = await open_database(path, readonly=True)
    out: dict[str, dict[str, Any]] = {}
    try:
        cases = {"rare": (rare, False), "common": (COMMON, False), "phrase": (PHRASE, False)}
        cases |= {"prefix": (PREFIX, False), "common_rank": (COMMON, True)}
        for name, (query, rank) in cases.items():
            await search(db, query, Filters(), limit=50, rank=rank)  # warm the cache
            times = []
            for _ in range(RUNS // 4 if rank else RUNS):
                started = time.perf_counter()
                hits = await search(db, query, Filters(), limit=50, rank=rank)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            out[f"search_p50_ms_{name}"] = figure(statistics.median(times), "ms")
            out[f"search_p95_ms_{name}"] = figure(p95, "ms")
            row = await db.fetchone(
                "SELECT count(*) FROM posts_fts WHERE posts_fts MATCH ?",
                (_fts(query),),
            )
            out[f"search_hits_{name}"] = figure(row[0] if row else 0, "posts")
            assert len(hits) <= 50
    finally:
        await db.close()
    return out


def _fts(query: str) -> str:
    return compile_query(query).fts


# Runs `chanwatch export` and reports the child's own peak RSS (VmHWM): ru_maxrss of
# a child counts the parent's memory it was spawned from.
_CHILD = """
import sys
from bot.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM"))
sys.stderr.write("VmHWM " + peak + "\\n")
sys.exit(code)
"""


def _export_figures(path: Path, workdir: Path, n: int) -> dict[str, dict[str, Any]]:
    out_file = workdir / "export.jsonl"
    out_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _CHILD, "--env-file", os.devnull, "--log-level", "WARNING"]
    cmd += ["export", "--db", str(path), "--format", "jsonl", "-o", str(out_file), "--manifest"]
    started = time.perf_counter()
    done = subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    peak_kb = int(done.stderr.rsplit("VmHWM ", 1)[1].split()[0])
    size = out_file.stat().st_size
    out_file.unlink()
    return {
        "export_rows_per_s": figure(n / elapsed, "rows/s"),
        "export_peak_rss_mb": figure(peak_kb / 1024, "MiB"),
        "export_mb": figure(size / 2**20, "MiB"),
    }


def _desktop_export(posts: list[dict[str, Any]], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    messages = [
        {
            "id": i + 1,
            "type": "message",
            "date": row["date"][:19],
            "date_unixtime": str(int(datetime.fromisoformat(row["date"]).timestamp())),
            "from": "Bench",
            "from_id": "channel4242",
            "text": row["text"],
            "text_entities": [{"type": "plain", "text": row["text"]}],
        }
        for i, row in enumerate(posts)
    ]
    data = {"name": "Bench", "type": "public_channel", "id": 4242, "messages": messages}
    path = folder / "result.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


async def _import_figures(posts: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    export = _desktop_export(posts, workdir / "desktop")
    db = await open_database(workdir / "import.db")
    started = time.perf_counter()
    plan = importer.load(export)
    results = await importer.ingest(db, plan)
    import_s = time.perf_counter() - started
    await db.close()
    assert sum(r.statuses["new"] for r in results) == len(posts)

    plain_s = await plain_insert_seconds(
        workdir / "plain.db", [(row["date"], row["text"]) for row in posts]
    )
    n = len(posts)
    return {"import_posts_per_s": figure(n / import_s, "posts/s", baseline=n / plain_s)}


def run(quick: bool = False, keep: Path | None = None) -> dict[str, dict[str, Any]]:
    n = 100_000 if quick else 1_000_000
    posts = corpus()[:: 8 if quick else 1]  # quick: fewer distinct texts, every channel
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="chanwatch-bench-") as tmp:
        workdir = keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        # Import first, while the lemma cache is cold, as it is for a real import.
        results |= asyncio.run(_import_figures(posts[: 1_000 if quick else 20_000], workdir))
        started = time.perf_counter()
        lemmas = [lemma_text(analyze(row["text"])) for row in posts]
        results["lemmatize_corpus_s"] = figure(time.perf_counter() - started, "s")
        path = workdir / "archive.db"
        path.unlink(missing_ok=True)
        results["build_rows_per_s"] = figure(n / build(path, posts, lemmas, n), "rows/s")
        results["archive_mb"] = figure(path.stat().st_size / 2**20, "MiB")
        rare = _rare_word(lemmas)
        del posts, lemmas
        gc.collect()
        gc.freeze()  # the corpus is gone; keep the collector off the bench's own heap
        results |= asyncio.run(_search_figures(path, rare))
        results |= _export_figures(path, workdir, n)
        results["archive_posts"] = figure(n, "posts")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 posts instead of 1,000,000")
    parser.add_argument("--keep", type=Path, help="build in DIR and keep it (default: a tmp dir)")
    options = parser.parse_args()
    print(json.dumps(run(options.quick, options.keep), indent=2, ensure_ascii=False))
