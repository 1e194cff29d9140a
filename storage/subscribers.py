"""Analysts, admins and groups that receive alerts; their rules, invites and strangers.

Admins come from the settings and are upserted at start; analysts join by a
one-time invite code; anyone else is a stranger, refused once and remembered.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from storage.db import Database
from storage.models import iso, utcnow

Role = Literal["admin", "analyst", "group"]
Kind = Literal["user", "group"]

# Settable preferences and the column each one lives in.
PREFERENCES = frozenset(
    {"tz", "claims", "claims_min", "muted_until", "quiet_from", "quiet_to", "digest_at", "name"}
)


@dataclass(frozen=True, slots=True)
class Subscriber:
    chat_id: int
    role: Role
    kind: Kind = "user"
    name: str | None = None
    access_hash: int | None = None
    active: bool = True
    inactive_reason: str | None = None
    tz: str = "UTC"
    claims: bool = True
    claims_min: float = 0.5
    muted_until: datetime | None = None
    quiet_from: str | None = None
    quiet_to: str | None = None
    digest_at: str | None = None
    last_digest_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_group(self) -> bool:
        return self.kind == "group"


@dataclass(frozen=True, slots=True)
class StoredRule:
    id: int
    chat_id: int
    text: str
    channel_id: int | None


@dataclass(frozen=True, slots=True)
class Invite:
    code: str
    created_by: int
    expires_at: datetime


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _subscriber(row: sqlite3.Row) -> Subscriber:
    return Subscriber(
        chat_id=row["chat_id"],
        role=row["role"],
        kind=row["kind"],
        name=row["name"],
        access_hash=row["access_hash"],
        active=bool(row["active"]),
        inactive_reason=row["inactive_reason"],
        tz=row["tz"],
        claims=bool(row["claims"]),
        claims_min=row["claims_min"],
        muted_until=_dt(row["muted_until"]),
        quiet_from=row["quiet_from"],
        quiet_to=row["quiet_to"],
        digest_at=row["digest_at"],
        last_digest_at=_dt(row["last_digest_at"]),
    )


async def get(db: Database, chat_id: int) -> Subscriber | None:
    row = await db.fetchone("SELECT * FROM subscribers WHERE chat_id = ?", (chat_id,))
    return _subscriber(row) if row else None


async def list_all(db: Database, *, active_only: bool = False) -> list[Subscriber]:
    sql = "SELECT * FROM subscribers" + (" WHERE active = 1" if active_only else "")
    return [_subscriber(r) for r in await db.fetchall(sql + " ORDER BY created_at, chat_id")]


async def upsert(
    db: Database,
    chat_id: int,
    role: Role,
    *,
    kind: Kind = "user",
    name: str | None = None,
    access_hash: int | None = None,
    invited_by: int | None = None,
) -> Subscriber:
    """Add a subscriber or re-activate one (a returning analyst keeps rules and settings)."""
    now = iso(utcnow())
    await db.execute(
        """INSERT INTO subscribers (chat_id, access_hash, kind, role, name, invited_by,
                                    created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (chat_id) DO UPDATE SET
             role = excluded.role, kind = excluded.kind, active = 1, inactive_reason = NULL,
             name = coalesce(excluded.name, subscribers.name),
             access_hash = coalesce(excluded.access_hash, subscribers.access_hash),
             invited_by = coalesce(excluded.invited_by, subscribers.invited_by),
             updated_at = excluded.updated_at""",
        (chat_id, access_hash, kind, role, name, invited_by, now, now),
    )
    found = await get(db, chat_id)
    assert found is not None
    return found


async def sync_admins(db: Database, admin_ids: frozenset[int]) -> None:
    """Admins from the settings are subscribers. Someone removed from the settings
    loses access, unless an admin had also invited them (then they stay an analyst)."""
    now = iso(utcnow())
    async with db.transaction() as conn:
        marks = ",".join("?" * len(admin_ids)) or "NULL"
        former = f"role = 'admin' AND chat_id NOT IN ({marks})"
        await conn.execute(
            f"UPDATE subscribers SET active = 0, inactive_reason = 'no longer an admin' "
            f"WHERE {former} AND invited_by IS NULL AND active = 1",
            tuple(sorted(admin_ids)),
        )
        await conn.execute(
            f"UPDATE subscribers SET role = 'analyst', updated_at = ? WHERE {former}",
            (now, *sorted(admin_ids)),
        )
        await conn.executemany(
            """INSERT INTO subscribers (chat_id, role, created_at, updated_at)
               VALUES (?, 'admin', ?, ?)
               ON CONFLICT (chat_id) DO UPDATE SET role = 'admin',
                 active = CASE WHEN subscribers.inactive_reason = 'blocked the bot'
                               THEN subscribers.active ELSE 1 END,
                 inactive_reason = CASE WHEN subscribers.inactive_reason = 'blocked the bot'
                                        THEN subscribers.inactive_reason END,
                 updated_at = excluded.updated_at""",
            [(admin, now, now) for admin in sorted(admin_ids)],
        )


async def seen(db: Database, chat_id: int, *, name: str | None, access_hash: int | None) -> None:
    """Refresh what the bot knows about a subscriber who wrote to it."""
    await db.execute(
        """UPDATE subscribers SET name = coalesce(?, name),
             access_hash = coalesce(?, access_hash) WHERE chat_id = ?""",
        (name, access_hash, chat_id),
    )


async def deactivate(db: Database, chat_id: int, reason: str) -> bool:
    changed = await db.execute(
        """UPDATE subscribers SET active = 0, inactive_reason = ?, updated_at = ?
           WHERE chat_id = ? AND active = 1""",
        (reason, iso(utcnow()), chat_id),
    )
    return changed > 0


async def reactivate(db: Database, chat_id: int) -> bool:
    """A subscriber who had blocked the bot and writes to it again."""
    changed = await db.execute(
        """UPDATE subscribers SET active = 1, inactive_reason = NULL, updated_at = ?
           WHERE chat_id = ? AND active = 0 AND inactive_reason = 'blocked the bot'""",
        (iso(utcnow()), chat_id),
    )
    return changed > 0


async def set_preferences(db: Database, chat_id: int, **values: object) -> None:
    unknown = set(values) - PREFERENCES
    if unknown:
        raise ValueError(f"unknown preferences: {sorted(unknown)}")
    if not values:
        return
    stored = {k: iso(v) if isinstance(v, datetime) else v for k, v in values.items()}
    assignments = ", ".join(f"{column} = ?" for column in stored)
    await db.execute(
        f"UPDATE subscribers SET {assignments}, updated_at = ? WHERE chat_id = ?",
        (*stored.values(), iso(utcnow()), chat_id),
    )


async def set_incident_every_post(db: Database, chat_id: int, on: bool) -> None:
    """Whether every post of an incident alerts on its own (else later ones reply)."""
    await db.execute(
        "UPDATE subscribers SET incident_every_post = ?, updated_at = ? WHERE chat_id = ?",
        (int(on), iso(utcnow()), chat_id),
    )


async def mark_digest_sent(db: Database, chat_id: int, when: datetime) -> None:
    await db.execute(
        "UPDATE subscribers SET last_digest_at = ? WHERE chat_id = ?", (iso(when), chat_id)
    )


# --- invites ------------------------------------------------------------------


async def create_invite(
    db: Database, created_by: int, ttl: timedelta, now: datetime | None = None
) -> Invite:
    now = now or utcnow()
    code = secrets.token_urlsafe(12)
    expires = now + ttl
    await db.execute(
        "INSERT INTO invites (code, created_by, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (code, created_by, iso(now), iso(expires)),
    )
    return Invite(code, created_by, expires)


InviteOutcome = Literal["ok", "unknown", "used", "expired"]


async def redeem_invite(
    db: Database,
    code: str,
    user_id: int,
    *,
    name: str | None,
    access_hash: int | None,
    now: datetime | None = None,
) -> InviteOutcome:
    """Use a one-time code: the user becomes an analyst, atomically with the code's use."""
    now = now or utcnow()
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT created_by, expires_at, used_by FROM invites WHERE code = ?", (code,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return "unknown"
        if row["used_by"] is not None:
            return "used"
        if datetime.fromisoformat(row["expires_at"]) <= now:
            return "expired"
        await conn.execute(
            "UPDATE invites SET used_by = ?, used_at = ? WHERE code = ?", (user_id, iso(now), code)
        )
        stamp = iso(now)
        await conn.execute(
            """INSERT INTO subscribers (chat_id, access_hash, kind, role, name, invited_by,
                                        created_at, updated_at)
               VALUES (?, ?, 'user', 'analyst', ?, ?, ?, ?)
               ON CONFLICT (chat_id) DO UPDATE SET active = 1, inactive_reason = NULL,
                 name = coalesce(excluded.name, subscribers.name),
                 access_hash = coalesce(excluded.access_hash, subscribers.access_hash),
                 invited_by = excluded.invited_by, updated_at = excluded.updated_at""",
            (user_id, access_hash, name, row["created_by"], stamp, stamp),
        )
    return "ok"


async def cancel_invite(db: Database, code: str) -> bool:
    return await db.execute("DELETE FROM invites WHERE code = ? AND used_by IS NULL", (code,)) > 0


async def open_invites(db: Database, now: datetime | None = None) -> list[Invite]:
    rows = await db.fetchall(
        """SELECT code, created_by, expires_at FROM invites
           WHERE used_by IS NULL AND expires_at > ? ORDER BY created_at""",
        (iso(now or utcnow()),),
    )
    return [
        Invite(r["code"], r["created_by"], datetime.fromisoformat(r["expires_at"])) for r in rows
    ]


# --- strangers ----------------------------------------------------------------


# A stranger hears from the bot, and the log hears of them, at most once per this.
STRANGER_QUIET = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class StrangerSeen:
    first: bool  # never wrote before
    notify: bool  # a reply or log line is due: the first time, then once per quiet period
    messages: int
    bad_codes: int


async def note_stranger(
    db: Database,
    user_id: int,
    name: str | None,
    *,
    bad_code: bool = False,
    now: datetime | None = None,
    quiet: timedelta = STRANGER_QUIET,
) -> StrangerSeen:
    """Count a message (or a wrong invitation code) from someone who is not allowed in."""
    now = now or utcnow()
    stamp = iso(now)
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT messages, bad_codes, noted_at FROM strangers WHERE user_id = ?", (user_id,)
        ) as cursor:
            known = await cursor.fetchone()
        if known is None:
            await conn.execute(
                "INSERT INTO strangers (user_id, name, first_seen, last_seen, bad_codes, noted_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, name, stamp, stamp, int(bad_code), stamp),
            )
            return StrangerSeen(True, True, 1, int(bad_code))
        noted = _dt(known["noted_at"])
        notify = noted is None or now - noted >= quiet
        await conn.execute(
            "UPDATE strangers SET messages = messages + 1, bad_codes = bad_codes + ?,"
            " last_seen = ?, noted_at = CASE WHEN ? THEN ? ELSE noted_at END WHERE user_id = ?",
            (int(bad_code), stamp, int(notify), stamp, user_id),
        )
        return StrangerSeen(
            False, notify, known["messages"] + 1, known["bad_codes"] + int(bad_code)
        )


# --- rules --------------------------------------------------------------------


async def add_rule(db: Database, chat_id: int, text: str, channel_id: int | None) -> StoredRule:
    (row,) = await db.execute_returning(
        "INSERT INTO rules (chat_id, text, channel_id, created_at) VALUES (?, ?, ?, ?) "
        "RETURNING id",
        (chat_id, text, channel_id, iso(utcnow())),
    )
    return StoredRule(row[0], chat_id, text, channel_id)


async def rules_of(db: Database, chat_id: int) -> list[StoredRule]:
    rows = await db.fetchall(
        "SELECT id, chat_id, text, channel_id FROM rules WHERE chat_id = ? ORDER BY id",
        (chat_id,),
    )
    return [StoredRule(r["id"], r["chat_id"], r["text"], r["channel_id"]) for r in rows]


async def delete_rule(db: Database, chat_id: int, rule_id: int) -> bool:
    return (
        await db.execute("DELETE FROM rules WHERE id = ? AND chat_id = ?", (rule_id, chat_id)) > 0
    )


async def active_rules(db: Database) -> list[StoredRule]:
    """Every rule of an active subscriber: what the matcher is compiled from."""
    rows = await db.fetchall(
        """SELECT r.id, r.chat_id, r.text, r.channel_id FROM rules r
           JOIN subscribers s ON s.chat_id = r.chat_id WHERE s.active = 1 ORDER BY r.id"""
    )
    return [StoredRule(r["id"], r["chat_id"], r["text"], r["channel_id"]) for r in rows]
