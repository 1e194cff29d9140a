"""Which incident a post belongs to, and why: ties with scores, no I/O, no clock.

A post joins the incident it is tied to most strongly when the ties add up to
`JOIN_AT`; a claim, denial or exchange tied to none opens a new incident; any
other post stays alone. Only members within `WINDOW` of the post count.

Text similarity is the Jaccard similarity of the two posts' content lemmas,
estimated with MinHash (datasketch's scheme, computed here; see the README for why
MinHash rather than TF-IDF): it needs no corpus statistics, so it works the same on the first post
of an archive as on the millionth, and one signature per member is cheap to keep.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

from bot.incidents.features import ChannelInfo, Features
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
NUM_PERM = 128


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


# MinHash as datasketch 2.0 computes it (scheme "affine32", seed 1, SHA-1 of each word),
# in plain Python: datasketch pulls in numpy and scipy (~54 MiB, ~0.5 s to import) for
# what is a few lines of arithmetic here. Signatures are bit for bit datasketch's
# (tests/test_incidents_grouping.py compares them), so similarity scores are unchanged.
_MASK = (1 << 32) - 1
_PERM_A = tuple(
    map(
        int,
        """
        3582191691 4270784983 1892572953 3715639441 982527 1100580627 2597016983 4286725387
        1260623519 2027988865 793182497 3406602499 1599963033 3332127887 2968344027 1458107385
        3408206605 3741252147 333433189 2974788137 3600853501 2690998987 1591023397 210867113
        1756231447 3809231353 3248004053 1972053305 235257659 295613213 1464304741 3555906697
        3584620975 3927359407 504141779 3699672547 1205914607 3772079037 1701678785 2391345325
        2583376155 1855172563 4022336275 2600667151 2692293247 797152891 1652038701 155929203
        3233158147 3135500033 3389645433 2827350435 730524177 2831271345 335478043 2345481447
        1458832223 508895189 3248219379 1464824721 844792893 799426703 3617286919 1474497421
        3933241131 3537230947 284887667 1696949255 1648211849 2487899697 2710258659 1220802647
        1602030745 2433652789 2874412649 3543681697 157095131 293529319 2148723283 1065409445
        4199284767 1379850369 2131726729 2564055091 2408995551 3832266181 2484890543 1908035343
        886704693 630193459 3847376081 4030728237 3509808659 826113415 2522126287 3464923389
        2471971375 1026415355 1116936905 213025079 166360907 718316147 1536185511 3580811597
        1817871633 3525724737 2281028421 2567790101 4222581295 724897055 458380767 566180015
        636665395 978722703 1260388839 3921611449 767128725 2241792381 1715911261 1984407361
        879046065 287320367 3556713839 3864939139 1669884643 4235349659 3557772807 348755713
        """.split(),
    )
)
_PERM_B = tuple(
    map(
        int,
        """
        214548472 3287733501 2301657549 194758406 2850976308 601149909 2211431878 3403347458
        4057003596 127995867 2519234709 3792995019 3880081671 2322667597 590449352 1924060235
        598187340 3831694379 3467719188 1621712414 1708008996 2312516455 710190855 2801602349
        3983619012 1551604281 1493642992 2452463100 3224713426 2739486816 3118137613 542518282
        3793770775 2964406140 2678651729 2782062471 3225273209 1520156824 1498506954 3278061020
        1159331476 1531292064 3847801996 3233201345 1838637662 3785334332 4143956457 50118808
        2849459538 2139362163 2670162785 316934274 492830188 3379930844 4078025319 275167074
        1932357898 1526046390 2484164448 4045158889 1752934226 1631242710 1018023110 3276716738
        3879985479 3313975271 2463934640 1294333494 12327951 3318889349 2650617233 656828586
        1402929172 2485213814 2263697328 38689046 3805092325 3045314445 1534461937 2021386866
        3902128737 3283900085 2677311316 2007436298 67951712 1155350711 3991902525 3572092472
        2967379673 2367922581 4283469031 300997728 740196857 2029264851 588993561 3190150641
        4005467022 824445069 2992811220 1994202740 283468587 989400710 3244689101 2182906552
        3237873595 895794063 3964360216 211760123 3055975561 2228494786 533739719 739929909
        85384517 1702152612 112575333 461130488 121575445 2189618472 1057468493 438667483
        3693791921 1240033649 2314261807 995395021 2374352296 4156102094 3616495149 1195370327
        """.split(),
    )
)
_PERMS = tuple(zip(_PERM_A, _PERM_B, strict=True))
assert len(_PERMS) == NUM_PERM


def _word_hash(word: str) -> int:
    """sha1_hash32 of the word, pre-mixed with MurmurHash3's 32-bit finalizer."""
    h = int.from_bytes(hashlib.sha1(word.encode("utf-8")).digest()[:4], "little")
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


# All permutations at once: a_k * h + b_k < 2**65 fits a 96-bit lane of one big integer,
# so one multiplication gives every permuted value, and each lane's low 32 bits are the
# value mod 2**32 (every third uint32 of the little-endian bytes).
_LANE = 96
_ALL_A = sum(a << (_LANE * k) for k, (a, _) in enumerate(_PERMS))
_ALL_B = sum(b << (_LANE * k) for k, (_, b) in enumerate(_PERMS))
_ALL_BYTES = _LANE // 8 * NUM_PERM


def _permuted(word: str) -> memoryview:
    """(a_k * h + b_k) mod 2**32 for every permutation k, h the word's hash."""
    lanes = (_ALL_A * _word_hash(word) + _ALL_B).to_bytes(_ALL_BYTES, "little")
    return memoryview(lanes).cast("I")[:: _LANE // 32]


@lru_cache(maxsize=50_000)
def _minhash(words: frozenset[str]) -> array[int]:
    """The words' MinHash signature: per permutation, the least permuted hash."""
    rows = [_permuted(w) for w in words]
    if len(rows) == 1:
        return array("I", rows[0])
    return array("I", map(min, *rows))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Estimated Jaccard similarity of two sets of lemmas (0 when either is empty)."""
    if not a or not b:
        return 0.0
    same = sum(x == y for x, y in zip(_minhash(a), _minhash(b), strict=True))
    return same / NUM_PERM


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
        info = channels.get(m.channel_id)
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
    core: dict[str, str] = {}  # stem -> place name, from claims/denials/exchanges
    near: set[str] = set()  # stems of core places named within NEAR of the post
    other: dict[str, str] = {}
    adjectives: set[str] = set()
    for m in members:
        specific = sum(1 for p in m.places if not p.broad)
        # a claim listing many villages (a daily summary) says little about each
        target = core if m.claimish and specific <= MAX_CORE_PLACES else other
        for place in m.places:
            for stem in place.stems:
                target.setdefault(stem, place.name)
                if target is core and abs(m.date - post.date) <= NEAR:
                    near.add(stem)
        adjectives.update(m.adjectives)
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
    named = {person for m in members if m.fwd_key is None for person in m.people}
    shared = sorted((post.people & named) - BROAD_PEOPLE)
    if shared:
        ties.append(Tie("person", PERSON, f"names {', '.join(shared[:3]).title()} too"))
    best, best_member = 0.0, None
    for m in members:
        if not m.claimish:
            continue  # text ties anchor on the story's claims, not on what joined them
        score = similarity(post.words, m.words)
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
