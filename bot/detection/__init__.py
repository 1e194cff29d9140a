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
    "compile_rules",
    "detect",
    "detect_claim",
    "load",
    "load_rules",
    "normalize",
    "parse_rule",
    "parse_rules",
    "set_cache_budget",
]

# What one cached word form is budgeted at across the caches (word cache, lemmas,
# the matcher's memo): 1 KiB. Measured on the corpus it now costs about 0.5 KiB
# (0.8 before the caches were plain dicts), so the budget is an upper bound: a full
# set of caches takes about half of it.
FORM_KIB = 1


def set_cache_budget(mib: int) -> None:
    """Bound detection's word caches to about `mib` MiB in all (each emptied when full)."""
    forms = max(1_000, mib * 1024 // FORM_KIB) // 2  # most words meet one or two lemma keys
    text.set_cache_limit(forms)
    morphology.set_cache_limit(forms)
    keywords.set_memo_limit(forms)


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
