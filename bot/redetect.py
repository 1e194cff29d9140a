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

from loguru import logger

from bot.detection import analyze
from bot.detection.claims import detect_claim
from bot.pipeline import SAVE_DETECTION, detection_row
from storage.db import ArchiveTarget, Database, open_database
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
) -> Redetected:
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
        for row in rows:
            analysis = analyze(row["text"])
            verdict = detect_claim(analysis)
            updates.append(detection_row(verdict, analysis, stamp, row["id"]))
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


def run(args: argparse.Namespace, db_path: ArchiveTarget) -> int:
    async def main() -> Redetected:
        db = await open_database(db_path)
        try:
            return await redetect(db, since_id=args.since_id, progress=_progress)
        finally:
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
