"""Incidents: one story told by several channels, grouped from archived posts.

Pure like `bot.detection`: no I/O, no clock. `text_features()` takes what grouping
compares from a post's text, `features_of()` adds what it compares from the rest of
the post, `decide()` says which incident it joins (with the ties and their scores
that explain why), or that it opens one, or stays alone.
"""

from __future__ import annotations

from bot.incidents.features import (
    CLAIMISH,
    ChannelInfo,
    Features,
    TextFeatures,
    features_of,
    text_features,
    with_signatures,
)
from bot.incidents.grouping import JOIN_AT, WINDOW, Candidate, Decision, Tie, assess, decide

__all__ = [
    "CLAIMISH",
    "JOIN_AT",
    "WINDOW",
    "Candidate",
    "ChannelInfo",
    "Decision",
    "Features",
    "TextFeatures",
    "Tie",
    "assess",
    "decide",
    "features_of",
    "text_features",
    "title_of",
    "with_signatures",
]


def title_of(first: Features) -> tuple[str, str | None]:
    """(title, place) of an incident opened by this post: its most specific place and
    the day, e.g. "Новая Таволжанка, 2023-06-02"."""
    specific = [p for p in first.places if not p.broad]
    place = (specific or list(first.places) or [None])[0]
    day = first.date.strftime("%Y-%m-%d")
    if place is None:
        return f"{first.label} without a place, {day}", None
    return f"{place.name}, {day}", place.name
