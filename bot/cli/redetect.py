"""Re-run detection over the archive (after the detector improves); no alerts are sent.

Posts are read in id order in batches and their claim verdict, language and
lemmas (what search looks words up by) rewritten in one transaction per batch,
so an interrupted run can simply be started again (`--since-id` resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from bot.cli.options import add_db_option
from bot.pipeline import detect_chunk
from bot.pool import DetectionPool
from storage import archive
from storage.db import ArchiveTarget, Database, open_database
from storage.models import iso, utcnow

BATCH = 500


@dataclass(frozen=True, slots=True)
class Redetected:
    posts: int
    changed: int  # posts whose claim label changed
    claims: int  # posts labelled claim afterwards
    relemmatized: int  # posts whose stored lemmas changed
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
    """`pool`: worker processes to detect in (each batch is spread over them)."""
    started = time.monotonic()
    todo = await archive.count_posts_after(db, since_id)
    done = changed = claims = relemmatized = 0
    last = since_id
    while True:
        rows = await archive.texts_after(db, last, batch)
        if not rows:
            break
        stamp = iso(utcnow())
        updates = []
        lemmas: list[tuple[str, int]] = []
        items = [(text, ()) for _, text, _ in rows]
        if pool is not None and pool.enabled:
            found = await pool.map(detect_chunk, pool.chunks(items), 0, b"")
        else:
            found = detect_chunk(items, 0, b"")
        for (post_id, _, label), detected in zip(rows, found, strict=True):
            verdict = detected.verdict
            if verdict is None:
                logger.bind(post=post_id).error(
                    "could not detect claims in post {id}; its verdict is left as it was\n{error}",
                    id=post_id,
                    error=detected.analysis_error or detected.claim_error,
                )
                continue
            updates.append(verdict.row(detected.lang, stamp, post_id))
            lemmas.append((detected.lemmas, post_id))
            changed += int(verdict.label != label)
            claims += int(verdict.label == "claim")
        relemmatized += await archive.save_redetection(db, updates, lemmas)
        done += len(rows)
        last = rows[-1][0]
        if progress is not None:
            progress(done, todo)
    result = Redetected(done, changed, claims, relemmatized, last, time.monotonic() - started)
    # The command prints the summary; the log keeps it for a run without a terminal.
    logger.bind(db=str(db.path)).debug(
        "re-detected {n} posts: {changed} changed label, {claims} claims, {lemmas} re-lemmatized",
        n=done,
        changed=changed,
        claims=claims,
        lemmas=relemmatized,
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument(
        "--since-id", type=int, default=0, help="only posts with a larger id (resume a run)"
    )


def run(args: argparse.Namespace, db_path: ArchiveTarget) -> int:
    async def main() -> Redetected:
        db = await open_database(args.db or db_path)
        pool = DetectionPool()
        try:
            return await redetect(db, since_id=args.since_id, progress=_progress, pool=pool)
        finally:
            pool.close()
            await db.close()

    result = asyncio.run(main())
    print(
        f"re-detected {result.posts} posts in {result.seconds:.1f} s: "
        f"{result.changed} changed label, {result.claims} claims, "
        f"{result.relemmatized} re-lemmatized for search; last id {result.last_id}",
        file=sys.stdout,
    )
    return 0


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True)
