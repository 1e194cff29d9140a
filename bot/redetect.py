"""Re-run detection over the archive (after the detector improves); no alerts are sent.

Posts are read in id order in batches and their claim verdict and language
rewritten in one transaction per batch, so an interrupted run can simply be
started again (`--since-id` resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from bot.pipeline import SAVE_DETECTION, detect_chunk
from bot.pool import DetectionPool
from storage.db import Database, open_database
from storage.models import iso, utcnow

BATCH = 500


@dataclass(frozen=True, slots=True)
class Redetected:
    posts: int
    changed: int  # posts whose claim label changed
    claims: int  # posts labelled claim afterwards
    last_id: int
    seconds: float


async def redetect(
    db: Database,
    *,
    since_id: int = 0,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
    pool: DetectionPool | None = None,
) -> Redetected:
    """`pool`: worker processes to detect in (the batches are spread over them)."""
    started = time.monotonic()
    total = await db.fetchone("SELECT count(*) FROM posts WHERE id > ?", (since_id,))
    todo = int(total[0]) if total else 0
    done = changed = claims = 0
    last = since_id
    while True:
        rows = await db.fetchall(
            "SELECT id, text, claim_label FROM posts WHERE id > ? ORDER BY id LIMIT ?",
            (last, batch),
        )
        if not rows:
            break
        stamp = iso(utcnow())
        updates = []
        items = [(row["text"], ()) for row in rows]
        if pool is not None and pool.enabled:
            found = await pool.map(detect_chunk, pool.chunks(items), 0, b"")
        else:
            found = detect_chunk(items, 0, b"")
        for row, detected in zip(rows, found, strict=True):
            verdict = detected.verdict
            if verdict is None:
                logger.bind(post=row["id"]).error(
                    "could not detect claims in post {id}; its verdict is left as it was\n{error}",
                    id=row["id"],
                    error=detected.analysis_error or detected.claim_error,
                )
                continue
            updates.append(verdict.row(detected.lang, stamp, row["id"]))
            changed += int(verdict.label != row["claim_label"])
            claims += int(verdict.label == "claim")
        async with db.transaction() as conn:
            await conn.executemany(SAVE_DETECTION, updates)
        done += len(rows)
        last = rows[-1]["id"]
        if progress is not None:
            progress(done, todo)
    result = Redetected(done, changed, claims, last, time.monotonic() - started)
    logger.bind(db=str(db.path)).info(
        "re-detected {n} posts: {changed} changed label, {claims} claims",
        n=done,
        changed=changed,
        claims=claims,
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since-id", type=int, default=0, help="only posts with a larger id (resume a run)"
    )


def run(args: argparse.Namespace, db_path: Path) -> int:
    async def main() -> Redetected:
        db = await open_database(db_path)
        pool = DetectionPool()
        try:
            return await redetect(db, since_id=args.since_id, progress=_progress, pool=pool)
        finally:
            pool.close()
            await db.close()

    result = asyncio.run(main())
    print(
        f"re-detected {result.posts} posts in {result.seconds:.1f} s: "
        f"{result.changed} changed label, {result.claims} claims; last id {result.last_id}",
        file=sys.stdout,
    )
    return 0


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True)
