"""The Novaya Tavolzhanka story of June 2023 and real unrelated posts, for incident tests."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STORY = json.loads((ROOT / "bot/data/tavolzhanka_story.json").read_text(encoding="utf-8"))
CORPUS = ROOT / "bench/data/ru_news_posts.jsonl.gz"


def unrelated_posts(n: int, stride: int = 61) -> list[dict[str, Any]]:
    """`n` real posts spread over the corpus (every `stride`-th post with text)."""
    out: list[dict[str, Any]] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        for i, line in enumerate(lines):
            if i % stride:
                continue
            row = json.loads(line)
            if row["text"].strip():
                out.append(row)
            if len(out) == n:
                break
    return out


def story_posts() -> list[dict[str, Any]]:
    return list(STORY["posts"])


def media_of(sim: Any, kinds: list[str]) -> list[Any]:
    return [sim.video(duration=30) if k == "video" else sim.photo() for k in kinds]


def play(
    sim: Any,
    channels: dict[str, Any],
    posts: list[dict[str, Any]],
    start: datetime,
    made: dict[str, list[tuple[int, int]]],
) -> None:
    """Post story entries on the simulator; `made`: story id -> [(channel id, msg id)]."""
    for entry in posts:
        channel = channels[entry["channel"]]
        date = start + timedelta(minutes=entry["minutes"])
        if "forward_of" in entry:
            source_channel_id, source_msg = made[entry["forward_of"]][0]
            source = next(c for c in channels.values() if c.id == source_channel_id)
            msg = sim.forward(source, source_msg, to=channel)
            made[entry["id"]] = [(channel.id, msg)]
        elif "album" in entry:
            ids = sim.post_album(
                channel, media_of(sim, entry["album"]), caption=entry["text"], date=date
            )
            made[entry["id"]] = [(channel.id, i) for i in ids]
        else:
            media = media_of(sim, entry.get("media", []))
            msg = sim.post(channel, entry["text"], media=media[0] if media else None, date=date)
            made[entry["id"]] = [(channel.id, msg)]


async def story_archive(
    path: Path,
    start: datetime,
    unrelated: int = 0,
    analysts: dict[int, list[str]] | None = None,
    claims_off: frozenset[int] = frozenset(),
) -> dict[str, list[int]]:
    """An archive at `path` with the story ingested through the real pipeline (and
    `unrelated` real posts in another channel); story id -> archived post ids.
    `analysts`: chat id -> keyword rules, subscribed before the posts arrive."""
    from bot.alerts.policy import Policy
    from bot.pipeline import Pipeline
    from storage import archive, subscribers
    from storage.db import open_database
    from storage.models import Channel, Forward, Media, Post

    db = await open_database(path)
    try:
        keys = {}
        for n, c in enumerate(STORY["channels"], start=1):
            await archive.save_channel(db, Channel(100 + n, n, c["username"], c["title"]))
            keys[c["key"]] = 100 + n
        await archive.save_channel(db, Channel(200, 9, "feed", "Лента"))
        for chat_id, rules in (analysts or {}).items():
            await subscribers.upsert(db, chat_id, "analyst", name=f"analyst {chat_id}")
            for rule in rules:
                await subscribers.add_rule(db, chat_id, rule, None)
            if chat_id in claims_off:
                await subscribers.set_preferences(db, chat_id, claims=0)
        pipeline = Pipeline(db, policy=Policy(max_age=None))
        made: dict[str, list[tuple[int, int]]] = {}
        ids: dict[str, list[int]] = {}
        next_msg = 1
        for entry in STORY["posts"]:
            channel = keys[entry["channel"]]
            date = start + timedelta(minutes=entry["minutes"])
            posts = []
            if "forward_of" in entry:
                origin = next(p for p in STORY["posts"] if p["id"] == entry["forward_of"])
                src_channel, src_msg = made[entry["forward_of"]][0]
                fwd = Forward(channel_id=src_channel, msg_id=src_msg)
                posts.append(Post(channel, next_msg, date, origin["text"], fwd_from=fwd))
            elif "album" in entry:
                for i, kind in enumerate(entry["album"]):
                    text = entry["text"] if i == 0 else ""
                    media = (Media(kind),)
                    posts.append(
                        Post(channel, next_msg + i, date, text, grouped_id=77, media=media)
                    )
            else:
                media = tuple(Media(k) for k in entry.get("media", []))
                posts.append(Post(channel, next_msg, date, entry["text"], media=media))
            next_msg += len(posts)
            archived = await pipeline.ingest(posts, "catchup")
            made[entry["id"]] = [(p.channel_id, p.msg_id) for p in posts]
            ids[entry["id"]] = [a.post_id for a in archived]
        other = STORY["unrelated_claim"]
        when = start + timedelta(days=other["days_later"])
        archived = await pipeline.ingest(
            [Post(keys[other["channel"]], next_msg, when, other["text"])], "catchup"
        )
        ids["unrelated_claim"] = [archived[0].post_id]
        if unrelated:
            rows = unrelated_posts(unrelated)
            batch = [
                Post(200, 1000 + i, start + timedelta(minutes=3 * i), r["text"])
                for i, r in enumerate(rows)
            ]
            for i in range(0, len(batch), 100):
                await pipeline.ingest(batch[i : i + 100], "catchup")
        return ids
    finally:
        await db.close()
