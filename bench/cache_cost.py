"""What one cached word form costs in detection's caches (the CHANWATCH_CACHE_MB budget).

    python bench/cache_cost.py [--quick]

Detects the corpus's posts with unbounded caches and 1,000 keyword rules under
tracemalloc and divides what each cache holds by its entries:

  bytes_per_form_word_cache   text.py's word cache, per form (with its normal form)
  bytes_per_memo_entry        morphology.py's lemma memos, per entry
  memo_entries_per_form       how many memo entries stand behind a word form
  bytes_per_matcher_entry     a keyword matcher's memo, per entry
  bytes_per_form              all of them, per word form

`bot.detection.FORM_BYTES` (what `set_cache_budget` counts a form at) rounds these up.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpus, figure  # noqa: E402
from bench.detect import build_rules, frequent_lemmas  # noqa: E402
from bot.detection import analyze, compile_rules, keywords, load, morphology, text  # noqa: E402


def _memo_entries() -> int:
    memos = [*morphology._PARSES.values(), *morphology._LEMMAS.values()]
    flat = (morphology._STEMS, morphology._ENGLISH, morphology._RU_TAGS)
    return sum(map(len, memos)) + sum(map(len, flat))


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    load()
    posts = [row["text"] for row in corpus(3000 if quick else None)]
    matcher = compile_rules(build_rules(frequent_lemmas(posts[:3000], 1000), 1000))
    text.set_cache_limit(10**9)
    morphology.set_cache_limit(10**9)
    keywords.set_memo_limit(10**9)
    text.clear_caches()
    tracemalloc.start()
    try:
        start = _traced()
        for post in posts:
            analyze(post)
        after_analyze = _traced()
        snapshot = tracemalloc.take_snapshot()
        for post in posts:  # the words are cached now: this fills the matcher's memo only
            matcher.match(analyze(post))
        after_match = _traced()
    finally:
        tracemalloc.stop()
    by_file: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        name = Path(stat.traceback[0].filename).name
        by_file[name] = by_file.get(name, 0) + stat.size
    forms = sum(map(len, text._WORD_CACHE.values()))
    memo = _memo_entries()
    word = by_file.get("text.py", 0)
    memo_bytes = after_analyze - start - word  # the memos, and what pymorphy3 keeps for them
    matcher_bytes = after_match - after_analyze
    return {
        "cache_forms": figure(forms, "forms"),
        "bytes_per_form_word_cache": figure(word / forms, "B"),
        "bytes_per_memo_entry": figure(memo_bytes / memo, "B"),
        "memo_entries_per_form": figure(memo / forms, "entries"),
        "bytes_per_matcher_entry": figure(matcher_bytes / len(matcher._memo), "B"),
        "bytes_per_form": figure(
            (after_analyze - start) / forms + matcher_bytes / len(matcher._memo), "B"
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 posts instead of 22,099")
    figures = run(parser.parse_args().quick)
    width = max(map(len, figures))
    for name, f in figures.items():
        print(f"{name:<{width}}  {f['value']} {f['unit']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
