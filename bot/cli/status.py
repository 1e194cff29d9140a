"""`chanwatch status`: which watcher holds which channels, and who delivers alerts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from bot.cli.options import add_db_option
from bot.cli.search import open_archive, require_archive
from bot.watch.shares import key_of
from config.settings import Settings
from storage import shares, watchlist
from storage.db import Database


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument(
        "--channels", action="store_true", help="list every channel and who holds it"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table", help="(table)")


@dataclass(frozen=True, slots=True)
class WatcherState:
    name: str
    alive: bool
    seconds: float  # since renewed (alive) or since expired
    live: int
    polled: int
    join_limit: int
    delivers: bool


@dataclass(frozen=True, slots=True)
class Status:
    shared: bool
    watchers: list[WatcherState]
    holders: dict[str, tuple[str, str]]  # channel -> (watcher, mode)
    waiting: list[str]  # configured channels no live watcher holds


async def status(db: Database, settings: Settings, now: float | None = None) -> Status:
    now = time.time() if now is None else now
    configured = [key_of(s.ref) for s in await watchlist.effective_specs(db, settings.channels)]
    if db.dialect != "postgresql":
        return Status(False, [], {}, [])
    from storage import leases  # asyncpg: loaded by PostgreSQL archives only

    rows = await shares.current(db)
    delivering = {h.watcher for h in await leases.holders(db) if h.lock == leases.DELIVER}
    alive = {w.name for w in rows.watchers if w.expires_at >= now}
    held = {lease.channel: (lease.watcher, lease.mode) for lease in rows.leases}
    watchers = [
        WatcherState(
            name=w.name,
            alive=w.name in alive,
            seconds=now - w.renewed_at if w.name in alive else now - w.expires_at,
            live=sum(1 for who, mode in held.values() if who == w.name and mode == "live"),
            polled=sum(1 for who, mode in held.values() if who == w.name and mode == "poll"),
            join_limit=w.live_limit,
            delivers=w.name in delivering,
        )
        for w in rows.watchers
    ]
    waiting = [key for key in configured if held.get(key, ("", ""))[0] not in alive]
    return Status(True, watchers, held, waiting)


def _table(state: Status, settings: Settings, list_channels: bool, out: TextIO) -> None:
    if not state.shared:
        print(
            "one watcher: a SQLite archive is written by one `chanwatch run`, which watches "
            f"every configured channel ({len(settings.channels)} in the settings)",
            file=out,
        )
        return
    if not state.watchers:
        print("no watcher has started on this archive (start `chanwatch run`)", file=out)
    for w in state.watchers:
        life = (
            f"alive, renewed {w.seconds:.0f} s ago"
            if w.alive
            else f"lease expired {w.seconds:.0f} s ago (its channels go to the others)"
        )
        print(
            f"{w.name:<12} {life}; {w.live + w.polled} channels ({w.live} live, {w.polled} "
            f"polled; joins at most {w.join_limit}){'; delivers alerts' if w.delivers else ''}",
            file=out,
        )
    if not any(w.delivers for w in state.watchers):
        print("no watcher delivers alerts now", file=out)
    total = len(state.holders) + len([k for k in state.waiting if k not in state.holders])
    print(
        f"{total} channels: {total - len(state.waiting)} held by a live watcher, "
        f"{len(state.waiting)} waiting for one",
        file=out,
    )
    if list_channels:
        for key in sorted(set(state.holders) | set(state.waiting)):
            who, mode = state.holders.get(key, ("-", "-"))
            note = "  (waiting)" if key in state.waiting else ""
            print(f"  {_label(key):<34} {who:<12} {mode}{note}", file=out)


def _label(key: str) -> str:
    return key if key.lstrip("-").isdigit() else "@" + key


def _json(state: Status) -> dict[str, Any]:
    return {
        "shared": state.shared,
        "watchers": [
            {
                "name": w.name,
                "alive": w.alive,
                "seconds": round(w.seconds, 1),
                "live": w.live,
                "polled": w.polled,
                "join_limit": w.join_limit,
                "delivers": w.delivers,
            }
            for w in state.watchers
        ],
        "channels": {key: {"watcher": w, "mode": m} for key, (w, m) in state.holders.items()},
        "waiting": state.waiting,
    }


def run(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    target = require_archive(args.db or settings.db_path)

    async def main() -> Status:
        db = await open_archive(target)
        try:
            return await status(db, settings)
        finally:
            await db.close()

    state = asyncio.run(main())
    if args.format == "json":
        json.dump(_json(state), out, ensure_ascii=False, indent=2)
        print(file=out)
    else:
        _table(state, settings, args.channels, out)
    return 0
