"""`chanwatch search`: full-text search of the archive from the command line.

Shared with `chanwatch export`: the filter options and opening the archive
read-only.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.cli.options import add_db_option
from bot.query import compile_query, search
from storage.db import ArchiveTarget, Database, StorageError, open_database
from storage.search import (
    MARK_END,
    MARK_START,
    Filters,
    Hit,
    QueryError,
    parse_when,
    resolve_channels,
)

FORMATS = ("table", "json", "csv")
HIT_FIELDS = (
    "date",
    "channel_id",
    "channel",
    "channel_title",
    "msg_id",
    "link",
    "snippet",
    "text",
    "deleted_at",
)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="C",
        help="only this channel (username, t.me link or numeric id); repeatable",
    )
    parser.add_argument("--since", metavar="D", help="posts on or after D (YYYY-MM-DD[THH:MM])")
    parser.add_argument("--until", metavar="D", help="posts on or before D (a day is inclusive)")
    parser.add_argument(
        "--claims", action="store_true", help="only posts detected as captured-soldier claims"
    )
    parser.add_argument(
        "--include-deleted", action="store_true", help="include posts deleted from the channel"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "query",
        nargs="+",
        metavar="QUERY",
        help='words (any inflection), "a phrase", prefix*, AND/OR/NOT, -word, (groups); '
        "several arguments are one query",
    )
    add_filter_arguments(parser)
    parser.add_argument("--limit", type=int, default=50, metavar="N", help="at most N posts (50)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output (table)")
    parser.add_argument("--rank", action="store_true", help="best match first instead of newest")


def require_archive(path: ArchiveTarget) -> ArchiveTarget:
    """A missing archive is explained rather than created (a PostgreSQL server explains
    a missing database itself)."""
    if isinstance(path, Path) and not path.is_file():
        raise StorageError(
            f"no archive at {path}: set CHANWATCH_DB or pass --db, "
            "or run `chanwatch run` / `chanwatch import` first"
        )
    return path


async def open_archive(path: ArchiveTarget) -> Database:
    """The archive, read-only."""
    return await open_database(path, readonly=True)


async def filters_from(db: Database, args: argparse.Namespace, **extra: Any) -> Filters:
    return Filters(
        channels=await resolve_channels(db, args.channel),
        since=parse_when(args.since, end=False, option="--since") if args.since else None,
        until=parse_when(args.until, end=True, option="--until") if args.until else None,
        include_deleted=args.include_deleted,
        claims=args.claims,
        **extra,
    )


def _escape_marks(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def plain_snippet(snippet: str) -> str:
    """Matches in `**…**`; a `*` or `\\` of the text itself is escaped with a backslash,
    so `**` only ever marks a match."""
    parts = snippet.replace(MARK_END, MARK_START).split(MARK_START)
    return "".join(
        f"**{_escape_marks(part)}**" if i % 2 else _escape_marks(part)
        for i, part in enumerate(parts)
    )


def _channel_label(hit: Hit) -> str:
    if hit.username:
        return "@" + hit.username
    return hit.title or str(hit.channel_id)


def _short_date(iso_date: str) -> str:
    return iso_date[:16].replace("T", " ")


def hit_record(hit: Hit) -> dict[str, Any]:
    return {
        "date": hit.date,
        "channel_id": hit.channel_id,
        "channel": hit.username,
        "channel_title": hit.title,
        "msg_id": hit.msg_id,
        "link": hit.link,
        "snippet": plain_snippet(hit.snippet),
        "text": hit.text,
        "deleted_at": hit.deleted_at,
    }


def _rich_table(hits: list[Hit], out: TextIO) -> None:
    """Date and channel stacked in a narrow column, the snippet with the link under
    it in the rest: at 80 columns the snippet keeps ~55 of them."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=True, expand=True)
    table.add_column("date · channel", no_wrap=True, max_width=18)
    table.add_column("post", ratio=1, overflow="fold")
    for hit in hits:
        snippet = Text()
        for i, part in enumerate(hit.snippet.replace(MARK_END, MARK_START).split(MARK_START)):
            snippet.append(part, style="bold yellow" if i % 2 else "")
        snippet.append("\n")
        snippet.append(hit.link, style="dim")
        meta = Text(_short_date(hit.date))
        meta.append("\n" + _channel_label(hit), style="cyan")
        if hit.deleted_at:
            meta.append("\n(deleted)", style="red")
        table.add_row(meta, snippet)
    Console(file=out).print(table)


def write_hits(hits: list[Hit], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump([hit_record(h) for h in hits], out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=HIT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(hit_record(h) for h in hits)
    elif out.isatty():
        _rich_table(hits, out)
    else:
        for hit in hits:
            fields = [
                _short_date(hit.date),
                _channel_label(hit),
                hit.link,
                plain_snippet(hit.snippet),
            ]
            out.write("\t".join(f.replace("\t", " ") for f in fields) + "\n")


def query_text(words: list[str] | str | None) -> str | None:
    """The query given as one argument or several (`chanwatch search Белгород -плен`)."""
    if words is None or isinstance(words, str):
        return words
    # the command line passes a `-word` through argparse with a minus sign; see cli
    words = ["-" + w[1:] if w.startswith("\u2212") else w for w in words]
    return " ".join(words) if words else None


async def _search(
    args: argparse.Namespace, db_path: ArchiveTarget, out: TextIO, err: TextIO
) -> int:
    args.query = query_text(args.query)
    compile_query(args.query)  # a bad query fails before the archive is opened
    db = await open_archive(db_path)
    try:
        filters = await filters_from(db, args)
        hits = await search(db, args.query, filters, limit=args.limit, rank=args.rank)
    finally:
        await db.close()
    write_hits(hits, args.format, out)
    if not hits:
        err.write(f"no posts match {args.query!r}\n")
    return 0


def run(
    args: argparse.Namespace,
    db_path: ArchiveTarget,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        return asyncio.run(_search(args, require_archive(args.db or db_path), out, err))
    except QueryError as exc:
        err.write(f"chanwatch search: {exc}\n")
        return 2
