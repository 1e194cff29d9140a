"""Which incident a post belongs to, and why: ties with scores, no I/O, no clock.

A post joins the incident it is tied to most strongly when the ties add up to
`JOIN_AT`; a claim, denial or exchange tied to none opens a new incident; any
other post stays alone. Only members within `WINDOW` of the post count.

Text similarity is the Jaccard similarity of the two posts' content lemmas,
estimated with MinHash (`bot.incidents.minhash`; see the README for why MinHash
rather than TF-IDF): it needs no corpus statistics, so it works the same on the
first post of an archive as on the millionth, and one signature per member is cheap
to keep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.incidents.features import ChannelInfo, Features
from bot.incidents.minhash import resemblance, signature_of
from bot.incidents.places import broad_stems

WINDOW = timedelta(hours=72)
JOIN_AT = 0.8

# What each tie is worth. A forward, reply, quote or album part decides alone.
DECISIVE = 1.0
CORE_PLACE = 0.6  # a place named by a claim/denial/exchange of the incident
CORE_PLACE_NEAR = 0.8  # ... within NEAR of it: a village named twice in a day is one story
NEAR = timedelta(hours=24)
MAX_CORE_PLACES = 2  # a claim naming more specific places than this ties by them weakly
PLACE = 0.3  # a place only answers named
BROAD_PLACE = 0.1  # a country, region or big city
COUNT = 0.2  # the same number of captives
KIND = 0.2  # also a claim, denial or exchange
SAME_CHANNEL = 0.1  # a claim/denial/exchange from a channel already in the incident
OTHER_PLACE = -0.8  # a claim naming only other villages than the incident's claims did
MENTION = 0.4  # per direction: the post names the incident's channel, or is named by it
PERSON = 0.4  # the same person named in both (a captive's name, a commander)
# People named in so many posts that sharing them ties nothing.
BROAD_PEOPLE = frozenset(
    "путин зеленский песков шойгу белоусов лавров захаров захарова байден трамп харрис "
    "макрон шольц лукашенко медведев сырский залужный буданов кадыров мишустин володин "
    "матвиенко".split()
)
TEXT_WEIGHT = 2.0  # times the estimated Jaccard similarity of content lemmas
TEXT_MIN = 0.1  # below this similarity text is no tie


@dataclass(frozen=True, slots=True)
class Tie:
    kind: str  # forward | reply | quote | album | place | count | kind | channel | mention | text
    score: float
    detail: str
    member: int | None = None  # the member post it ties to, when one

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "score": round(self.score, 2)}
        out["detail"] = self.detail
        if self.member is not None:
            out["post_id"] = self.member
        return out


@dataclass(frozen=True, slots=True)
class Candidate:
    """An incident as grouping sees it: its members' features and their channels."""

    incident_id: int
    members: Sequence[Features]
    channels: Mapping[int, ChannelInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # join | open | alone
    incident_id: int | None = None
    score: float = 0.0
    ties: tuple[Tie, ...] = ()
    bridges: tuple[int, ...] = ()  # other incidents the post is as strongly tied to

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.ties]


def _decisive(post: Features, members: Sequence[Features], channels: Mapping) -> Tie | None:
    for m in members:
        origin = post.fwd_key
        if origin is not None and (origin == m.key or origin == m.fwd_key):
            return Tie("forward", DECISIVE, f"a forward of the same post ({origin})", m.post_id)
        if post.reply_to is not None and post.channel_id == m.channel_id:
            if post.reply_to == m.msg_id:
                return Tie("reply", DECISIVE, f"a reply to post {m.msg_id}", m.post_id)
        if m.reply_to is not None and m.channel_id == post.channel_id:
            if m.reply_to == post.msg_id:
                return Tie("reply", DECISIVE, f"answered by post {m.msg_id}", m.post_id)
        info = channels.get(m.channel_id) if post.links else None
        if info is not None and info.username:
            link = f"{info.username.lower()}/{m.msg_id}"
            if link in post.links:
                return Tie("quote", DECISIVE, f"links t.me/{link}", m.post_id)
        if (
            post.grouped_id is not None
            and post.grouped_id == m.grouped_id
            and post.channel_id == m.channel_id
        ):
            return Tie("album", DECISIVE, "part of the same album", m.post_id)
    return None


def _place_ties(post: Features, members: Sequence[Features]) -> list[Tie]:
    # only the stems of the post's places and adjectives are looked up below: the
    # members' other stems (~13 a member) are not indexed
    asked = post.adjectives.union(*[p.stems for p in post.places])
    if not asked:
        return []
    core: dict[str, str] = {}  # stem -> place name, from claims/denials/exchanges
    near: set[str] = set()  # stems of core places named within NEAR of the post
    other: dict[str, str] = {}
    adjectives: set[str] = set()
    for m in members:
        adjectives.update(m.adjectives)
        target: dict[str, str] | None = None
        close = False
        for place in m.places:
            if asked.isdisjoint(place.stems):
                continue
            if target is None:
                specific = sum(1 for p in m.places if not p.broad)
                # a claim listing many villages (a daily summary) says little about each
                target = core if m.claimish and specific <= MAX_CORE_PLACES else other
                close = target is core and abs(m.date - post.date) <= NEAR
            stems = asked.intersection(place.stems)
            for stem in stems:
                target.setdefault(stem, place.name)
            if close:
                near.update(stems)
    best_specific: Tie | None = None
    best_broad: Tie | None = None
    for place in post.places:
        stems = place.stems
        hit = next((core[s] for s in stems if s in core), None)
        weight = CORE_PLACE_NEAR if stems & near else CORE_PLACE
        if hit is None:
            hit = next((other[s] for s in stems if s in other), None)
            weight = PLACE
        if hit is None and stems & adjectives:
            hit, weight = place.name, PLACE
        if hit is None:
            continue
        if place.broad:
            best_broad = best_broad or Tie("place", BROAD_PLACE, f"{hit} (broad)")
        elif best_specific is None or weight > best_specific.score:
            best_specific = Tie("place", weight, hit)
    if best_specific is None and post.claimish:
        own = [p.name for p in post.places if not p.broad]
        theirs = {p.name for m in members if m.claimish for p in m.places if not p.broad}
        if own and theirs:
            detail = f"names {', '.join(own)}, not {', '.join(sorted(theirs))}"
            return [Tie("place", OTHER_PLACE, detail)]
    if best_specific is None:  # an adjective of the post built on an incident's place
        for stem in post.adjectives:
            name = core.get(stem) or other.get(stem)
            if name is not None:
                weight = CORE_PLACE if stem in core else PLACE
                broad = any(p.broad and stem in p.stems for m in members for p in m.places)
                if broad:
                    best_broad = best_broad or Tie("place", BROAD_PLACE, f"{name} (broad)")
                else:
                    best_specific = Tie("place", weight, f"{name} (adjective)")
                    break
    if best_broad is None:  # "Белгородская область" in both
        shared = post.adjectives & adjectives & broad_stems()
        if shared:
            best_broad = Tie("place", BROAD_PLACE, f"{min(shared, key=len)}… (broad)")
    return [t for t in (best_specific, best_broad) if t is not None]


def _named(names: frozenset[str], post: Features) -> bool:
    return bool(names & (post.people | post.names | post.handles))


def _mention_ties(
    post: Features, channel: ChannelInfo, members: Sequence[Features], channels: Mapping
) -> list[Tie]:
    ties = []
    own = channel.names
    # naming a side says something about its first answer, not about all it posts later
    if own and all(m.channel_id != post.channel_id for m in members):
        for m in members:
            # a repost speaks with its origin's voice, not its own channel's
            if m.fwd_key is not None:
                continue
            if m.channel_id != post.channel_id and _named(own, m):
                who = ", ".join(sorted(own & (m.people | m.names | m.handles)))
                ties.append(Tie("mention", MENTION, f"the incident names this channel ({who})"))
                break
    for channel_id in {m.channel_id for m in members} - {post.channel_id}:
        info = channels.get(channel_id)
        if info is not None and _named(info.names, post):
            who = ", ".join(sorted(info.names & (post.people | post.names | post.handles)))
            ties.append(Tie("mention", MENTION, f"names a channel of the incident ({who})"))
            break
    return ties


def assess(post: Features, channel: ChannelInfo, candidate: Candidate) -> list[Tie]:
    """Every tie between a post and an incident (members outside the window ignored)."""
    members = [m for m in candidate.members if abs(m.date - post.date) <= WINDOW]
    if not members or any(m.post_id == post.post_id for m in members):
        return []
    decisive = _decisive(post, members, candidate.channels)
    if decisive is not None:
        return [decisive]
    ties = _place_ties(post, members)
    if post.claimish and any(m.claimish for m in members):
        article = "an" if post.label[0] in "aeiou" else "a"
        ties.append(Tie("kind", KIND, f"also {article} {post.label}"))
        counts = {m.count for m in members if m.count}
        if post.count and post.count in counts:
            ties.append(Tie("count", COUNT, f"{post.count} captives, as claimed before"))
        if any(m.channel_id == post.channel_id for m in members):
            ties.append(Tie("channel", SAME_CHANNEL, "a channel already in the incident"))
    ties.extend(_mention_ties(post, channel, members, candidate.channels))
    shared = []
    if post.people:
        named = {person for m in members if m.fwd_key is None for person in m.people}
        shared = sorted((post.people & named) - BROAD_PEOPLE)
    if shared:
        ties.append(Tie("person", PERSON, f"names {', '.join(shared[:3]).title()} too"))
    best, best_member = 0.0, None
    mine: int | None = None
    for m in members:
        if not m.claimish:
            continue  # text ties anchor on the story's claims, not on what joined them
        if mine is None:
            mine = post.signature if post.signature is not None else signature_of(post.words)
        theirs = m.signature if m.signature is not None else signature_of(m.words)
        score = resemblance(mine, theirs)
        if score > best:
            best, best_member = score, m.post_id
    if best >= TEXT_MIN:
        ties.append(
            Tie(
                "text",
                min(DECISIVE, TEXT_WEIGHT * best),
                f"{best:.0%} of words shared",
                best_member,
            )
        )
    return ties


def decide(post: Features, channel: ChannelInfo, candidates: Sequence[Candidate]) -> Decision:
    """Join the most strongly tied incident, open one for an untied claim, or stay alone.

    A post tied to several incidents joins the best one and names the others as
    `bridges`: one story that had been told apart (posts arriving out of order)."""
    joins: list[Decision] = []
    for candidate in candidates:
        ties = assess(post, channel, candidate)
        score = round(sum(t.score for t in ties), 2)
        if score >= JOIN_AT:
            joins.append(Decision("join", candidate.incident_id, score, tuple(ties)))
    if joins:
        joins.sort(key=lambda d: (-d.score, d.incident_id))
        best = joins[0]
        others = tuple(sorted(d.incident_id for d in joins[1:] if d.incident_id is not None))
        return Decision("join", best.incident_id, best.score, best.ties, others)
    if post.claimish:
        article = "an" if post.label[0] in "aeiou" else "a"
        return Decision("open", None, 0.0, (Tie("opened", 0.0, f"{article} {post.label}"),))
    return Decision("alone")
