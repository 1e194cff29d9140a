"""Alert planning and delivery decisions: pure functions, no I/O, the clock passed in.

`plan()` turns what happened to one post (new or edited, its detection result and
the rules that fired per chat) into outbox rows: at most one 'alert' per chat and
post, however many rules fired, and follow-ups for posts a chat was already
alerted about. `decide()` says what to do with a row at delivery time (send,
send silently in quiet hours, hold for the digest, drop while muted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import Enum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from storage.models import Post
from storage.outbox import NewAlert
from storage.subscribers import Subscriber

# Sources whose posts reach us late; their alerts say so.
DELAYED_SOURCES = frozenset({"catchup", "reconcile"})
# Sources that never alert (history brought in by hand).
SILENT_SOURCES = frozenset({"import"})
# Evidence kinds of a claim worth highlighting in the snippet.
HIGHLIGHT_EVIDENCE = frozenset({"cue", "count", "hedge"})


class Hit(NamedTuple):
    """One keyword rule of a chat that matched, with the words and where they are (a
    tuple: a worst-case batch makes tens of thousands)."""

    rule_id: int
    rule: str
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Claim:
    """The claim detector's verdict on the post's current text."""

    label: str
    score: float
    count: int | None = None
    unverified: bool = False
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def is_claim(self) -> bool:
        return self.label == "claim"


@dataclass(frozen=True, slots=True)
class Subject:
    """What happened to one archived post."""

    post_id: int
    post: Post
    status: str  # new | edited (unchanged and stale posts are not planned)
    source: str
    claim: Claim | None = None
    hits: Mapping[int, Sequence[Hit]] = field(default_factory=dict)  # chat id -> hits
    alerted: Mapping[int, str] = field(default_factory=dict)  # chat id -> 'alert' row status
    revision: int = 0  # how many earlier texts the post has (edits)
    forced: bool = False  # alert even though the source is silent (`import --alert`)


@dataclass(frozen=True, slots=True)
class Policy:
    max_age: timedelta | None = timedelta(hours=12)  # older catch-up posts: archived only
    album_settle: timedelta = timedelta(seconds=1)  # let the other album parts arrive


def story_of(post: Post) -> str:
    """The origin of a post: forwarded copies share their origin's key."""
    if post.fwd_from is not None and post.fwd_from.key is not None:
        return post.fwd_from.key
    return f"{post.channel_id}/{post.msg_id}"


def claim_fires(sub: Subscriber, claim: Claim | None) -> bool:
    return bool(
        sub.claims and claim is not None and claim.is_claim and claim.score >= sub.claims_min
    )


def _event_time(post: Post) -> datetime:
    if post.edit_date is not None and post.edit_date > post.date:
        return post.edit_date
    return post.date


def is_delayed(subject: Subject) -> bool:
    return subject.source in DELAYED_SOURCES or subject.source in SILENT_SOURCES


def too_old(subject: Subject, policy: Policy, now: datetime) -> bool:
    if not is_delayed(subject) or policy.max_age is None:
        return False
    return now - _event_time(subject.post) > policy.max_age


def _claim_why(claim: Claim) -> dict[str, Any]:
    return {
        "label": claim.label,
        "score": round(claim.score, 2),
        "count": claim.count,
        "unverified": claim.unverified,
    }


def _why(
    hits: Sequence[Hit], claim: Claim | None, claim_why: dict[str, Any] | None, revision: int
) -> dict[str, Any] | None:
    if not hits and claim is None:
        return None
    why: dict[str, Any] = {}
    # Words and spans stay tuples: the payload is stored as JSON, where a tuple is the
    # same array as a list, and a worst-case post plans ~17 rows of ~10 spans each.
    if hits:
        why["rules"] = [{"id": h.rule_id, "rule": h.rule, "words": h.words} for h in hits]
    if claim is not None:
        why["claim"] = dict(claim_why or _claim_why(claim))
    if len(hits) == 1 and claim is None:
        why["spans"] = list(hits[0].spans)  # the matcher gives them in order, distinct
    else:
        spans = {span for h in hits for span in h.spans}
        if claim is not None:
            spans.update(claim.spans)
        why["spans"] = sorted(spans)
    # The spans point into the text as it is now; the archive keeps every earlier text,
    # so the alert names the revision instead of carrying a copy of the text per chat.
    why["rev"] = revision
    return why


def plan(
    subject: Subject,
    subscribers: Mapping[int, Subscriber],
    policy: Policy,
    now: datetime,
) -> list[NewAlert]:
    """The outbox rows one archived post calls for. The work per chat is only for
    chats the post concerns (a rule fired, the claim passes its threshold, or it was
    alerted before an edit); what all of them share is computed once: chats alerted
    for the claim alone share one payload (rows must not change their payload in place)."""
    if subject.source in SILENT_SOURCES and not subject.forced:
        return []
    if subject.status not in ("new", "edited"):
        return []
    story = story_of(subject.post)
    not_before = now + policy.album_settle if subject.post.grouped_id is not None else None
    old = too_old(subject, policy, now)
    claim = subject.claim if subject.claim is not None and subject.claim.is_claim else None
    claim_why = _claim_why(claim) if claim is not None else None
    edited = subject.status == "edited"
    alerted = subject.alerted if edited else {}
    all_hits = subject.hits
    post_id = subject.post_id
    revision = subject.revision
    tail: dict[str, Any] = {"source": subject.source}
    if is_delayed(subject):
        tail["delayed"] = True
    if edited:
        tail["edited"] = True
    claim_only: dict[str, Any] | None = None
    rows: list[NewAlert] = []
    for chat_id, sub in subscribers.items():
        hits = all_hits.get(chat_id, ())
        claims = claim is not None and sub.claims and claim.score >= sub.claims_min
        told = chat_id in alerted
        if not (hits or claims or told) or not sub.active:
            continue
        if told:
            why = _why(hits, claim if claims else None, claim_why, revision)
            if alerted[chat_id] in ("pending", "sent"):
                payload = {"text": subject.post.text, "matches": why is not None}
                if why is not None:
                    payload["spans"] = why["spans"]
                reason = f"edited:{revision}"
                rows.append(NewAlert(chat_id, post_id, reason, story, payload))
            continue
        if old:
            continue
        if hits:
            why = _why(hits, claim if claims else None, claim_why, revision)
            assert why is not None
            why.update(tail)
        else:  # the claim alone: the same payload for every such chat
            if claim_only is None:
                claim_only = _why((), claim, claim_why, revision)
                assert claim_only is not None
                claim_only.update(tail)
            why = claim_only
        rows.append(NewAlert(chat_id, post_id, "alert", story, why, not_before))
    return rows


def plan_deleted(post_id: int, story: str, alerted: Mapping[int, str]) -> list[NewAlert]:
    """Follow-ups for a deleted post, to every chat that was (or is being) told about it."""
    return [
        NewAlert(chat_id, post_id, "deleted", story, {})
        for chat_id, status in alerted.items()
        if status in ("pending", "sent")
    ]


# --- delivery time ------------------------------------------------------------


class Decision(Enum):
    SEND = "send"
    SEND_SILENTLY = "silent"  # quiet hours: delivered without a notification sound
    DIGEST = "digest"  # kept for the daily digest
    MUTED = "muted"  # dropped: the chat muted alerts (the archive still has the post)
    SKIP = "skip"  # the subscriber is gone (revoked, blocked the bot)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def parse_hhmm(text: str) -> time:
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time like 23:00")
    moment = time(int(hours), int(minutes)) if int(hours) < 24 and int(minutes) < 60 else None
    if moment is None:
        raise ValueError(f"{text!r} is not a time like 23:00")
    return moment


def in_quiet_hours(sub: Subscriber, now: datetime) -> bool:
    """Whether `now` falls in the chat's quiet hours (local time; may span midnight)."""
    if not sub.quiet_from or not sub.quiet_to:
        return False
    start, end = parse_hhmm(sub.quiet_from), parse_hhmm(sub.quiet_to)
    local = now.astimezone(zone(sub.tz)).time().replace(second=0, microsecond=0)
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def is_muted(sub: Subscriber, now: datetime) -> bool:
    return sub.muted_until is not None and sub.muted_until > now


def decide(sub: Subscriber | None, now: datetime, *, followup: bool = False) -> Decision:
    if sub is None or not sub.active:
        return Decision.SKIP
    if is_muted(sub, now):
        return Decision.MUTED
    if sub.digest_at and not followup:
        return Decision.DIGEST
    if in_quiet_hours(sub, now):
        return Decision.SEND_SILENTLY
    return Decision.SEND


def digest_due(sub: Subscriber, now: datetime) -> bool:
    """A digest chat gets one digest per local day, at or after its digest time."""
    if not sub.active or not sub.digest_at:
        return False
    tz = zone(sub.tz)
    local = now.astimezone(tz)
    at = parse_hhmm(sub.digest_at)
    scheduled = datetime.combine(local.date(), at, tzinfo=tz)
    if local < scheduled:
        return False
    return sub.last_digest_at is None or sub.last_digest_at < scheduled
