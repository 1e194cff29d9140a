"""Which watcher holds which channel, and each account's access hashes.

A round (`share_round`) is one transaction under a lock: the watcher renews its
own row, the rows of watchers that stopped renewing are removed with their
leases, and the caller's `decide` says which leases the watcher takes, gives up
or reads in another mode. Storage keeps the rows; the sharing rule is the
caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.db import Database, lock_in

LOCK = "chanwatch:shares"


@dataclass(frozen=True, slots=True)
class WatcherRow:
    name: str
    live_limit: int
    started_at: float
    renewed_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class LeaseRow:
    channel: str
    watcher: str
    mode: str
    since: float


@dataclass(frozen=True, slots=True)
class Changes:
    claim: dict[str, str]
    release: list[str]
    remode: dict[str, str]


@dataclass(frozen=True, slots=True)
class Shares:
    watchers: list[WatcherRow]
    leases: list[LeaseRow]

    def held_by(self, watcher: str) -> dict[str, str]:
        return {lease.channel: lease.mode for lease in self.leases if lease.watcher == watcher}


Decide = Callable[[list[WatcherRow], list[LeaseRow]], Changes]


_WATCHERS = (
    "SELECT name, live_limit, started_at, renewed_at, expires_at FROM watchers ORDER BY name"
)
_LEASES = "SELECT channel, watcher, mode, since FROM channel_leases ORDER BY channel"


async def _read(conn: Any) -> Shares:
    async with conn.execute(_WATCHERS) as cursor:
        watchers = [WatcherRow(*row) for row in await cursor.fetchall()]
    async with conn.execute(_LEASES) as cursor:
        leases = [LeaseRow(*row) for row in await cursor.fetchall()]
    return Shares(watchers, leases)


async def share_round(
    db: Database, me: str, live_limit: int, *, now: float, ttl: float, decide: Decide
) -> Shares:
    """Renew `me`, expire the watchers that stopped renewing, apply `decide`'s
    changes to `me`'s leases; returns the shares after the round."""
    async with db.transaction() as conn:
        await lock_in(conn, LOCK)
        await conn.execute(
            """INSERT INTO watchers (name, live_limit, started_at, renewed_at, expires_at)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET live_limit = excluded.live_limit,
                   renewed_at = excluded.renewed_at, expires_at = excluded.expires_at""",
            (me, live_limit, now, now, now + ttl),
        )
        await conn.execute(
            """DELETE FROM channel_leases WHERE watcher NOT IN (
                   SELECT name FROM watchers WHERE expires_at >= ?)""",
            (now,),
        )
        await conn.execute("DELETE FROM watchers WHERE expires_at < ?", (now,))
        before = await _read(conn)
        changes = decide(before.watchers, before.leases)
        for channel in changes.release:
            await conn.execute(
                "DELETE FROM channel_leases WHERE channel = ? AND watcher = ?", (channel, me)
            )
        for channel, mode in changes.remode.items():
            await conn.execute(
                "UPDATE channel_leases SET mode = ? WHERE channel = ? AND watcher = ?",
                (mode, channel, me),
            )
        for channel, mode in changes.claim.items():
            await conn.execute(
                """INSERT INTO channel_leases (channel, watcher, mode, since)
                   VALUES (?, ?, ?, ?) ON CONFLICT (channel) DO NOTHING""",
                (channel, me, mode, now),
            )
        return await _read(conn)


async def leave(db: Database, me: str) -> None:
    """A watcher that stops gives its channels up at once (no waiting for expiry)."""
    async with db.transaction() as conn:
        await lock_in(conn, LOCK)
        await conn.execute("DELETE FROM channel_leases WHERE watcher = ?", (me,))
        await conn.execute("DELETE FROM watchers WHERE name = ?", (me,))


async def current(db: Database) -> Shares:
    """The rows as they are (expired watchers included: `chanwatch status` shows them)."""
    watchers = await db.fetchall(_WATCHERS)
    leases = await db.fetchall(_LEASES)
    return Shares([WatcherRow(*r) for r in watchers], [LeaseRow(*r) for r in leases])


async def access_hash(db: Database, watcher: str, channel_id: int) -> int | None:
    row = await db.fetchone(
        "SELECT access_hash FROM channel_access WHERE watcher = ? AND channel_id = ?",
        (watcher, channel_id),
    )
    return int(row[0]) if row else None


async def save_access_hash(db: Database, watcher: str, channel_id: int, value: int) -> None:
    await db.execute(
        """INSERT INTO channel_access (watcher, channel_id, access_hash) VALUES (?, ?, ?)
           ON CONFLICT (watcher, channel_id) DO UPDATE SET access_hash = excluded.access_hash""",
        (watcher, channel_id, value),
    )


async def set_joined(db: Database, watcher: str, channel_id: int, joined: bool) -> None:
    await db.execute(
        "UPDATE channel_access SET joined = ? WHERE watcher = ? AND channel_id = ?",
        (int(joined), watcher, channel_id),
    )


async def joined_channels(db: Database, watcher: str) -> list[tuple[int, int]]:
    """(channel id, access hash) of the channels this account is a member of."""
    rows = await db.fetchall(
        "SELECT channel_id, access_hash FROM channel_access WHERE watcher = ? AND joined = 1",
        (watcher,),
    )
    return [(int(row[0]), int(row[1])) for row in rows]
