"""Channels added or removed by admins from the bot; they win over the configuration."""

from __future__ import annotations

from collections.abc import Sequence

from config.settings import ChannelSpec
from storage.db import Database


async def mark(db: Database, channel_id: int, watch: str) -> None:
    """Record 'added' or 'removed' for a resolved channel."""
    active = int(watch == "added")
    await db.execute(
        "UPDATE channels SET watch = ?, active = ? WHERE id = ?", (watch, active, channel_id)
    )


async def effective_specs(db: Database, configured: Sequence[ChannelSpec]) -> list[ChannelSpec]:
    """The configured channels without those removed from the bot, plus those added there."""
    rows = await db.fetchall(
        "SELECT id, username, mode, watch FROM channels WHERE watch IS NOT NULL ORDER BY id"
    )
    removed: set[str | int] = set()
    added: list[ChannelSpec] = []
    for row in rows:
        refs = {row["id"]} | ({row["username"].lower()} if row["username"] else set())
        if row["watch"] == "removed":
            removed |= refs
        else:
            added.append(
                ChannelSpec(row["username"].lower() if row["username"] else row["id"], row["mode"])
            )
    specs = [s for s in configured if s.ref not in removed]
    known = {s.ref for s in specs}
    specs.extend(s for s in added if s.ref not in known)
    return specs
