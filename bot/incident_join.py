"""Grouping archived posts into incidents inside the transaction that archives them,
and threading the alerts of an incident's later posts under its first alert.

The decisions are `bot.incidents` (pure); this module only feeds it what the
archive holds and stores what it decided. A failure here is logged and rolled
back to a savepoint: the posts are archived and alerted without an incident
rather than not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime
from typing import Protocol

from loguru import logger

from bot.incidents import (
    CLAIMISH,
    ChannelInfo,
    Features,
    TextFeatures,
    decide,
    features_of,
    title_of,
)
from bot.incidents.grouping import WINDOW, Candidate
from storage import incidents as store
from storage.db import Connection, savepoint
from storage.incidents import NewMember
from storage.models import Post
from storage.outbox import NewAlert


class Verdict(Protocol):
    label: str
    count: int | None


# What the pipeline hands over per analysed post: (post id, post, what grouping takes
# from its text, on demand, verdict). Most posts are never compared, so unless a
# detection worker already did it, their text is not analysed again.
Item = tuple[int, Post, Callable[[], TextFeatures], Verdict]


def _entity_urls(post: Post) -> list[str]:
    return [str(e["url"]) for e in post.entities if isinstance(e, dict) and e.get("url")]


def features_for(
    post_id: int, post: Post, found: Callable[[], TextFeatures], verdict: Verdict
) -> Features:
    return features_of(
        post_id=post_id,
        channel_id=post.channel_id,
        msg_id=post.msg_id,
        date=post.date,
        text=post.text,
        found=found(),
        label=verdict.label,
        count=verdict.count,
        fwd_key=post.fwd_from.key if post.fwd_from is not None else None,
        reply_to=post.reply_to,
        grouped_id=post.grouped_id,
        media_kinds=[m.kind for m in post.media],
        entity_urls=_entity_urls(post),
    )


async def join_in(conn: Connection, items: Sequence[Item]) -> dict[int, int]:
    """Place each new post in an incident (or open one); post id -> incident id for
    every given post that has one, including posts placed earlier."""
    if not items:
        return {}
    try:
        async with savepoint(conn, "incidents"):
            await _join_in(conn, items)
            return await store.incidents_of_in(conn, [i[0] for i in items])
    except Exception:
        logger.exception("could not group {n} posts into incidents; archived without", n=len(items))
        return {}


async def _join_in(conn: Connection, items: Sequence[Item]) -> None:
    done = await store.grouped_in(conn, [i[0] for i in items])
    fresh = [i for i in items if i[0] not in done]
    if not fresh:
        return
    # the captioned part of an album first, so the other parts find it
    fresh.sort(key=lambda i: (i[1].date, not i[1].text, i[1].msg_id))
    since = fresh[0][1].date - WINDOW
    until = max(i[1].date for i in fresh) + WINDOW
    members: dict[int, list[Features]] = {}
    for row in await store.members_in(conn, since, until):
        members.setdefault(row.incident_id, []).append(
            Features.from_json(row.post_id, row.channel_id, row.msg_id, row.date, row.features)
        )
    if not members and not any(i[3].label in CLAIMISH for i in fresh):
        return  # nothing to join and nothing that opens an incident: the common case
    channels = {
        cid: ChannelInfo(cid, name, title)
        for cid, (name, title) in (await store.channels_in(conn)).items()
    }
    features = (
        features_for(*item)
        for item in fresh
        # a post that cannot open an incident needs one near it to be worth comparing
        if item[3].label in CLAIMISH or _near(members, item[1].date)
    )
    placed: list[tuple[int | None, NewMember]] = []
    for post in features:
        channel = channels.get(post.channel_id, ChannelInfo(post.channel_id))
        candidates = [Candidate(i, m, channels) for i, m in members.items()]
        decision = decide(post, channel, candidates)
        if decision.action == "alone":
            continue
        member = NewMember(
            post.post_id, post.date, post.to_json(), decision.score, decision.to_json()
        )
        incident_id = decision.incident_id
        if incident_id is not None and decision.bridges:
            incident_id = await _bridge(conn, incident_id, decision.bridges, members)
        if incident_id is None:
            title, place = title_of(post)
            incident_id = await store.open_in(conn, title, place, member)
            members[incident_id] = []
        elif post.claimish and any(not p.broad for p in post.places):
            title, place = title_of(post)
            first = min(m.date for m in members[incident_id])
            title = f"{place}, {first:%Y-%m-%d}"
            await store.retitle_in(conn, incident_id, title, place or "")
        members[incident_id].append(post)
        placed.append((incident_id, member))
    if placed:
        await store.add_in(conn, placed)


def _near(members: dict[int, list[Features]], when: datetime) -> bool:
    return any(abs(m.date - when) <= WINDOW for group in members.values() for m in group)


async def _bridge(
    conn: Connection,
    best: int,
    others: Sequence[int],
    members: dict[int, list[Features]],
) -> int:
    """Merge the incidents a post ties together into the oldest of them, except those an
    analyst split apart; returns the incident the post joins."""
    keep = min(best, *others)
    for incident_id in sorted({best, *others} - {keep}):
        if await store.split_apart_in(conn, keep, incident_id):
            continue
        await store.merge_in(conn, keep, incident_id)
        members[keep].extend(members.pop(incident_id, []))
        logger.bind(incident=keep).info(
            "incident {gone} merged into {keep}: a post ties them", gone=incident_id, keep=keep
        )
    return keep if keep in members else best


def thread_alerts(
    rows: Sequence[NewAlert],
    incident_of: Mapping[int, int],
    roots: Mapping[tuple[int, int], int],
    every_post: set[int],
    told: Set[tuple[int, str]] = frozenset(),
) -> list[NewAlert]:
    """A chat's alert for a later post of an incident it was already alerted to becomes
    an 'incident' row replying to the first alert (unless the chat wants every post).
    A copy of a story the chat was already told (`told`: chat, story) is dropped."""
    first = dict(roots)
    out: list[NewAlert] = []
    told = set(told)
    for row in rows:
        incident_id = incident_of.get(row.post_id)
        if row.reason != "alert" or incident_id is None or row.chat_id in every_post:
            out.append(row)
            continue
        if (row.chat_id, row.story) in told:
            continue
        told.add((row.chat_id, row.story))
        root = first.get((incident_id, row.chat_id))
        if root is None or root == row.post_id:
            first.setdefault((incident_id, row.chat_id), row.post_id)
            out.append(row)
            continue
        payload = {**row.payload, "thread": root, "incident": incident_id}
        out.append(row._replace(reason="incident", payload=payload))
    return out


async def thread_in(
    conn: Connection,
    rows: Sequence[NewAlert],
    incident_of: Mapping[int, int],
    forwarded: Set[int],
) -> list[NewAlert]:
    """`thread_alerts` with the first alerts and the chats' settings read from the archive."""
    if not rows or not incident_of:
        return list(rows)
    wanted = {incident_of[r.post_id] for r in rows if r.post_id in incident_of}
    if not wanted:
        return list(rows)
    roots = await store.thread_roots_in(conn, wanted)
    every_post = await store.every_post_chats_in(conn)
    copies = {r.story for r in rows if r.post_id in forwarded}
    told = await store.told_in(conn, copies) if copies else set()
    return thread_alerts(rows, incident_of, roots, every_post, told)
