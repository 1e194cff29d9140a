"""`chanwatch incidents` (the list, with a sparkline) and `chanwatch incident N` (its timeline)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.alerts import incident_format as ifmt
from bot.cli.options import add_db_option
from bot.cli.search import open_archive, require_archive
from storage import incidents
from storage.db import ArchiveTarget, Database
from storage.incidents import Incident, Member
from storage.search import QueryError, parse_when, resolve_channels

FORMATS = ("table", "json", "csv")


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument("--since", metavar="D", help="incidents active on or after D (YYYY-MM-DD)")
    parser.add_argument("--channel", metavar="C", help="only incidents this channel is part of")
    parser.add_argument("--limit", type=int, default=50, help="at most N incidents (50)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="(table)")


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", type=int, metavar="N", help="the incident's number")
    add_db_option(parser)
    parser.add_argument("--format", choices=("table", "json"), default="table", help="(table)")


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "place": incident.place,
        "started_at": incident.started_at.isoformat(),
        "last_at": incident.last_at.isoformat(),
        "posts": incident.posts,
        "channels": incident.channels,
        "channel_names": list(incident.channel_names),
        "counts": list(incident.counts),
        "labels": incident.labels,
        "media": incident.media,
    }


def member_json(member: Member) -> dict[str, Any]:
    return {
        "post_id": member.post_id,
        "date": member.date.isoformat(),
        "channel": member.channel,
        "link": member.link,
        "label": member.label,
        "count": member.count,
        "media": list(member.media),
        "forward_of": member.fwd_key,
        "deleted": member.deleted,
        "score": member.score,
        "ties": member.ties,
        "text": member.text,
    }


async def _list(args: argparse.Namespace, db: Database, out: TextIO) -> int:
    since = parse_when(args.since, end=False, option="--since") if args.since else None
    channel = (await resolve_channels(db, [args.channel]))[0] if args.channel else None
    found = await incidents.recent(db, since=since, channel_id=channel, limit=args.limit)
    if args.format == "json":
        out.write(json.dumps([incident_json(i) for i in found], ensure_ascii=False, indent=1))
        out.write("\n")
        return 0
    if args.format == "csv":
        writer = csv.writer(out)
        writer.writerow(["id", "title", "started_at", "last_at", "channels", "posts", "counts"])
        for i in found:
            counts = " > ".join(map(str, i.counts))
            row = [i.id, i.title, i.started_at.isoformat(), i.last_at.isoformat()]
            writer.writerow([*row, i.channels, i.posts, counts])
        return 0
    if not found:
        out.write("no incidents yet (claims, denials and exchanges open them as they arrive)\n")
        return 0
    for i in found:
        line = await _spark(db, i.id)
        out.write(f"#{i.id:<5} {i.title:<40} {ifmt.size(i)}\n")
        out.write(f"       {line}  {i.started_at:%Y-%m-%d %H:%M} → {i.last_at:%Y-%m-%d %H:%M} UTC")
        out.write(f"  {', '.join(i.channel_names[:4])}\n")
    return 0


async def _spark(db: Database, incident_id: int) -> str:
    return ifmt.sparkline(ifmt.per_hour(await incidents.timeline(db, incident_id)))


async def _show(args: argparse.Namespace, db: Database, out: TextIO) -> int:
    incident = await incidents.get(db, args.number)
    if incident is None:
        gone = await incidents.merged_into(db, args.number)
        if gone:
            raise QueryError(f"incident {args.number} was merged into incident {gone}")
        raise QueryError(f"no incident {args.number}; `chanwatch incidents` lists them")
    members = await incidents.timeline(db, incident.id)
    if args.format == "json":
        body = {**incident_json(incident), "timeline": [member_json(m) for m in members]}
        out.write(json.dumps(body, ensure_ascii=False, indent=1) + "\n")
        return 0
    out.write(f"incident #{incident.id} · {incident.title}\n{ifmt.size(incident)}\n")
    out.write(f"channels: {', '.join(incident.channel_names)}\n")
    out.write(f"activity: {ifmt.sparkline(ifmt.per_hour(members))}\n\n")
    for n, m in enumerate(members, start=1):
        label = ifmt.LABEL.get(m.label or "none", "post")
        if m.fwd_key:
            label = "repost"
        extra = f" · {len(m.media)} media" if m.media else ""
        out.write(f"{n:>3}. {m.date:%Y-%m-%d %H:%M} {m.channel} — {label}{extra}\n")
        out.write(f"     {m.link}\n")
        text = " ".join(m.text.split())
        if text:
            out.write(f"     {text[:160]}{'…' if len(text) > 160 else ''}\n")
        out.write(f"     why: {ifmt.why_joined(m)}\n")
    return 0


def _run(kind: str, args: argparse.Namespace, db_path: Path, out: TextIO, err: TextIO) -> int:
    async def main() -> int:
        db = await open_archive(require_archive(args.db or db_path))
        try:
            if kind == "list":
                return await _list(args, db, out)
            return await _show(args, db, out)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except QueryError as exc:
        err.write(f"chanwatch {'incidents' if kind == 'list' else 'incident'}: {exc}\n")
        return 2


def run_list(args: argparse.Namespace, db_path: ArchiveTarget, out: TextIO | None = None) -> int:
    return _run("list", args, db_path, out or sys.stdout, sys.stderr)


def run_show(args: argparse.Namespace, db_path: ArchiveTarget, out: TextIO | None = None) -> int:
    return _run("show", args, db_path, out or sys.stdout, sys.stderr)
