"""MinHash signatures of sets of lemmas, and the Jaccard similarity they estimate.

As datasketch 2.0 computes them (scheme "affine32", seed 1, SHA-1 of each word), in
plain Python: datasketch pulls in numpy and scipy (~54 MiB, ~0.5 s to import) for
what is a few lines of arithmetic here. Signatures are bit for bit datasketch's
(tests/test_incidents_grouping.py compares them), so similarity scores are too.
`signatures()` computes many at once with numpy: a detection worker signs a bulk
batch's posts together at a third of the cost; the service, signing one live post at
a time, does not load numpy for it.

A signature is kept as one integer, permutation k in bits 32k..32k+31: it pickles
small (a detection worker computes a new post's signature and sends it back), and
two signatures are compared with a few big-integer operations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

NUM_PERM = 128
_MASK = (1 << 32) - 1


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(map(int, text.split()))


# datasketch's permutations for seed 1: a_k, then b_k
_PERM_A = _numbers(
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
    """
)
_PERM_B = _numbers(
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
    """
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


# All permutations at once: a_k, b_k and h are below 2**32, so a_k * h + b_k < 2**64
# fits a 64-bit lane of one big integer. One multiplication gives every permuted
# value, whose low 32 bits are the value mod 2**32; a 33rd bit per lane lets the
# least values be kept lane by lane with a few big-integer operations per word.
_LANE = 64
assert max(_PERM_A) <= _MASK and max(_PERM_B) <= _MASK
_ALL_A = sum(a << (_LANE * k) for k, (a, _) in enumerate(_PERMS))
_ALL_B = sum(b << (_LANE * k) for k, (_, b) in enumerate(_PERMS))
_LOW32 = sum(_MASK << (_LANE * k) for k in range(NUM_PERM))
_GUARD = sum(1 << (_LANE * k + 32) for k in range(NUM_PERM))


# Hashes of the words met lately: a post's content words are mostly common lemmas
# (over the corpus, 73% of them are found here), and SHA-1 is a third of a word's share
# of a signature. Emptied when full (under 1 MiB then).
_HASHES: dict[str, int] = {}
_HASHES_LIMIT = 8_192


def _hash_of(word: str) -> int:
    if len(_HASHES) >= _HASHES_LIMIT:
        _HASHES.clear()
    _HASHES[word] = h = _word_hash(word)
    return h


def _least(words: frozenset[str]) -> int:
    """Per permutation (lane), the least permuted hash of the words."""
    least = 0
    known = _HASHES.get
    for i, word in enumerate(words):
        h = known(word)
        permuted = (_ALL_A * (h if h is not None else _hash_of(word)) + _ALL_B) & _LOW32
        if i == 0:
            least = permuted
            continue
        # a lane of (least + 2**32 - permuted) keeps its guard bit iff least >= permuted
        smaller = ((((least | _GUARD) - permuted) & _GUARD) >> 32) * _MASK
        least ^= (least ^ permuted) & smaller
    return least


def signature_bytes(words: frozenset[str]) -> bytes:
    """The signature's 32-bit values, little-endian."""
    lanes = _least(words).to_bytes(_LANE // 8 * NUM_PERM, "little")
    return memoryview(lanes).cast("I")[:: _LANE // 32].tobytes()  # each lane's low 4 bytes


def signature(words: frozenset[str]) -> int:
    """The words' signature as one integer (0 for no words)."""
    if not words:
        return 0
    return int.from_bytes(signature_bytes(words), "little")


# A numpy pass over at most this many words: its permuted values take 1 KiB a word.
_WORDS_PER_PASS = 2_048


@cache
def _numpy_perms() -> tuple[Any, Any, Any]:
    import numpy as np  # loaded only where many signatures are made at once

    a = np.array(_PERM_A, dtype=np.uint64)[:, None]
    b = np.array(_PERM_B, dtype=np.uint64)[:, None]
    return np, a, b


def signatures(sets: Sequence[frozenset[str]]) -> list[int]:
    """signature() of each set, bit for bit, computed in numpy passes over many sets:
    a_k * h + b_k < 2**64 is exact in uint64, and its low 32 bits are kept as above."""
    out: list[int] = []
    start = words = 0
    for end, one in enumerate(sets):
        if words and words + len(one) > _WORDS_PER_PASS:
            out.extend(_signatures_pass(sets[start:end]))
            start, words = end, 0
        words += len(one)
    out.extend(_signatures_pass(sets[start:]))
    return out


def _signatures_pass(sets: Sequence[frozenset[str]]) -> list[int]:
    known = _HASHES.get
    hashes: list[int] = []
    starts: list[int] = []
    for words in sets:
        if words:
            starts.append(len(hashes))
            hashes.extend(h if (h := known(w)) is not None else _hash_of(w) for w in words)
    if not starts:
        return [0] * len(sets)
    np, a, b = _numpy_perms()
    permuted = (a * np.array(hashes, dtype=np.uint64) + b) & np.uint64(_MASK)
    least = np.minimum.reduceat(permuted, starts, axis=1).astype(np.uint32)
    raw = least.T.tobytes()  # each set's 128 values in a row, little-endian as signature()
    size = 4 * NUM_PERM
    out: list[int] = []
    at = 0
    for words in sets:
        if words:
            out.append(int.from_bytes(raw[at : at + size], "little"))
            at += size
        else:
            out.append(0)
    return out


# Incident members are compared with every new post near them: their signatures are
# kept (one is ~0.6 KiB; members within a grouping window number in the hundreds).
signature_of = lru_cache(maxsize=10_000)(signature)


_LOW31 = sum(0x7FFFFFFF << (32 * k) for k in range(NUM_PERM))
_HIGH = sum(1 << (32 * k + 31) for k in range(NUM_PERM))


def _equal_lanes(a: int, b: int) -> int:
    """How many of the 32-bit lanes of a and b are equal: a lane of a ^ b is zero iff
    neither its top bit nor (its low 31 bits + 0x7FFFFFFF)'s top bit is set, and that
    sum cannot carry into the next lane."""
    x = a ^ b
    nonzero = (((x & _LOW31) + _LOW31) | x) & _HIGH
    return NUM_PERM - nonzero.bit_count()


def resemblance(a: int, b: int) -> float:
    """The Jaccard similarity two signatures estimate (0 when either set was empty)."""
    if not a or not b:
        return 0.0
    return _equal_lanes(a, b) / NUM_PERM
