"""`chanwatch migrate-archive --to postgresql://...`: move the SQLite archive to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from bot.cli.progress import progress_bar
from config.database_url import redact
from storage.db import ArchiveTarget, StorageError, archive_target, open_database
from storage.move import compare, copy_archive, total_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to", required=True, type=archive_target, metavar="URL", help="postgresql://... target"
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=archive_target,
        metavar="FILE",
        help="the SQLite archive (default: CHANWATCH_DB)",
    )


async def _migrate(source: ArchiveTarget, target: str, out: TextIO, err: TextIO) -> int:
    src = await open_database(source, readonly=True)
    try:
        dst = await open_database(target)
        try:
            total = await total_rows(src)
            with progress_bar("copying", total, err, err.isatty()) as progress:
                copied = await copy_archive(src, dst, progress=progress)
            result = await compare(src, dst)
        finally:
            await dst.close()
    finally:
        await src.close()
    out.write(f"copied {sum(copied.values())} rows from {source} to {redact(target)}\n")
    for table, (mine, theirs) in result.counts.items():
        mark = "ok" if mine == theirs else "DIFFERENT"
        out.write(f"  {table}: {mine} -> {theirs} {mark}\n")
    if not result.equal:
        shown = ", ".join(str(c) for c in result.channels_differing[:10]) or "none"
        out.write(f"FAILED: the archives differ (channels whose posts differ: {shown})\n")
        return 1
    out.write(
        f"OK: every table has the same rows and the posts of all {result.channels_compared} "
        "channels have the same checksum\n"
    )
    return 0


def run(
    args: argparse.Namespace,
    db_path: ArchiveTarget,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    source = args.source or db_path
    if not isinstance(args.to, str):
        err.write("chanwatch migrate-archive: --to must be a postgresql:// URL\n")
        return 2
    if isinstance(source, str):
        err.write(
            "chanwatch migrate-archive: the archive to move is already in PostgreSQL "
            f"({redact(source)}); give the SQLite file with --from\n"
        )
        return 2
    if not source.is_file():
        raise StorageError(f"no archive at {source}: give the SQLite file with --from")
    return asyncio.run(_migrate(source, args.to, out, err))
