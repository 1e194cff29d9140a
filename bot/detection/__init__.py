"""Pure detection: text analysis, keyword rules and the captured-soldier claim detector.

No I/O at match time and no clock: dictionaries load once, on first use or
through `load()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.detection import keywords, morphology, text
from bot.detection.claims import ClaimResult, Evidence, detect_claim
from bot.detection.keywords import (
    KeywordMatch,
    MatchedWord,
    Matcher,
    Rule,
    RuleFileError,
    compile_rules,
    load_rules,
    parse_rule,
    parse_rules,
)
from bot.detection.morphology import load
from bot.detection.text import Analysis, Sentence, Token, analyze, normalize

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Analysis",
    "ClaimResult",
    "Detection",
    "Evidence",
    "KeywordMatch",
    "MatchedWord",
    "Matcher",
    "Rule",
    "RuleFileError",
    "Sentence",
    "Token",
    "analyze",
    "cache_forms",
    "compile_rules",
    "detect",
    "detect_claim",
    "load",
    "load_rules",
    "normalize",
    "parse_rule",
    "parse_rules",
    "set_cache_budget",
    "widen_cache_budget_for_worker",
]

# What one cached word form costs, measured with tracemalloc over the corpus
# (`python bench/cache_cost.py`; --quick for caches the size of a budget): its entry in
# the word cache of text.py with its normal form (~180-280 B), the memos of
# morphology.py behind it (lemmas by key, parses by dictionary and a Russian word's
# grammemes: about 2.4 entries a form, ~90-100 B each) and its entry in a matcher's memo
# (~145-165 B): ~660 B in all (~570 B over the whole corpus, where the tables are
# fuller). Rounded up, so full caches take at most the budget.
WORD_BYTES = 200
MEMO_BYTES = 100
MEMOS_PER_FORM = 3
MATCH_BYTES = 160
FORM_BYTES = WORD_BYTES + MEMOS_PER_FORM * MEMO_BYTES + MATCH_BYTES


def cache_forms(mib: int) -> int:
    """How many word forms `mib` MiB of caches hold (at least 1,000)."""
    return max(1_000, mib * 1024**2 // FORM_BYTES)


# A detection worker runs only while bulk work lasts (see bot.pool), and a catch-up
# meets new words faster than a cache of the service's budget holds them: caches
# emptied every few thousand posts would make it analyse cold again and again.
WORKER_BUDGET_FACTOR = 4
_budget_mib: int | None = None  # None: unbounded defaults (tests, benchmarks)


def set_cache_budget(mib: int) -> None:
    """Bound detection's word caches to `mib` MiB in all (each emptied when full)."""
    global _budget_mib
    _budget_mib = mib
    forms = cache_forms(mib)
    text.set_cache_limit(forms)
    morphology.set_cache_limit(MEMOS_PER_FORM * forms)
    keywords.set_memo_limit(forms)


def widen_cache_budget_for_worker() -> None:
    """In a freshly forked detection worker: WORKER_BUDGET_FACTOR times the service's
    budget (the worker's memory is freed when it stops)."""
    if _budget_mib is not None:
        set_cache_budget(WORKER_BUDGET_FACTOR * _budget_mib)


@dataclass(frozen=True, slots=True)
class Detection:
    analysis: Analysis
    keywords: tuple[KeywordMatch, ...]
    claim: ClaimResult

    def to_dict(self) -> dict[str, Any]:
        """lang, the claim verdict's fields, and the keyword matches."""
        return {
            "lang": self.analysis.lang,
            **self.claim.to_dict(),
            "keywords": [k.to_dict() for k in self.keywords],
        }


def detect(
    text: str,
    matcher: Matcher | None = None,
    channel: str | int | Sequence[str | int] | None = None,
) -> Detection:
    """Analyze a post, match keyword rules (if a matcher is given) and detect claims."""
    analysis = analyze(text)
    keywords = tuple(matcher.match(analysis, channel)) if matcher is not None else ()
    return Detection(analysis, keywords, detect_claim(analysis))
