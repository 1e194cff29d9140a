"""The Novaya Tavolzhanka story of June 2023 and real unrelated posts, for incident tests."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STORY = json.loads((ROOT / "tests/data/tavolzhanka_story.json").read_text(encoding="utf-8"))
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
