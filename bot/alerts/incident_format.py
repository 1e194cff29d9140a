"""How an incident reads in the bot and on the command line (one line, a timeline)."""

from __future__ import annotations

from collections.abc import Sequence

from storage.incidents import Incident, Member

LABEL = {"claim": "claim", "denial": "denial", "exchange": "exchange", "none": "post"}
SPARK = "▁▂▃▄▅▆▇█"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def counts_text(counts: Sequence[int]) -> str:
    """Claimed captives over time: "2 → 5 captives claimed"."""
    if not counts:
        return ""
    return " → ".join(str(c) for c in counts) + " captive" + ("s" if counts[-1] != 1 else "")


def size(incident: Incident) -> str:
    """ "2 channels, 4 posts, 2 → 5 captives claimed, 3 videos"."""
    parts = [plural(incident.channels, "channel"), plural(incident.posts, "post")]
    if incident.counts:
        parts.append(counts_text(incident.counts) + " claimed")
    videos = incident.media.get("video", 0) + incident.media.get("round", 0)
    photos = incident.media.get("photo", 0)
    if videos:
        parts.append(plural(videos, "video"))
    if photos:
        parts.append(plural(photos, "photo"))
    return ", ".join(parts)


def badge(incident: Incident) -> str:
    """The line an alert carries: "incident #12 · Новая Таволжанка, 2023-06-02 · 2 channels…"."""
    return f"incident #{incident.id} · {incident.title} · {size(incident)}"


def sparkline(values: Sequence[int]) -> str:
    """A terminal sparkline: one block per value, scaled to the largest."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def per_hour(members: Sequence[Member], buckets: int = 24) -> list[int]:
    """Posts of an incident in `buckets` equal slices of its span, for a sparkline."""
    if not members:
        return []
    start, end = members[0].date, members[-1].date
    span = (end - start).total_seconds() or 1.0
    out = [0] * buckets
    for m in members:
        index = min(buckets - 1, int((m.date - start).total_seconds() / span * buckets))
        out[index] += 1
    return out


def why_joined(member: Member) -> str:
    """ "place Новая Таволжанка 0.8 + also a claim 0.2 = 1.0"."""
    ties = [t for t in member.ties if t.get("kind") != "opened"]
    if not ties:
        return "opened the incident" if member.ties else "placed by an analyst"
    parts = [f"{t['kind']} {t['detail']} {t['score']:.2f}" for t in ties]
    text = " + ".join(parts) + f" = {member.score:.2f}"
    if member.corrected:
        text += " (moved by an analyst)"
    return text
