"""Where a detection worker's CPU goes, per post, by step.

    python bench/worker_cost.py [--quick]

A bulk batch's detection (bot.pipeline.detect_chunk, what each detection worker runs)
does, for every post: analysis (tokens, lemmas, sentence languages), matching
against 1,000 keyword rules (the ingest benchmark's worst case), claim detection,
grouping's text features with their MinHash signatures (signed a batch at a time,
as a worker does), and pickling the results back to the service. Each step is
timed alone over the same posts (CPU time of this process, ms a post), first with
empty word caches (`_cold`, as a worker meets a new archive's words), then again
(`_warm`). `worker_ms_per_post_*` is detect_chunk itself over the posts in batches
of 100 (its `_cold` figure with the word caches emptied again first).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpus, figure  # noqa: E402
from bench.detect import build_rules, frequent_lemmas  # noqa: E402
from bot.detection import Matcher, analyze, compile_rules, load, text  # noqa: E402
from bot.detection.claims import detect_claim  # noqa: E402
from bot.incidents.features import text_features, with_signatures  # noqa: E402
from bot.pipeline import detect_chunk, pickled_rules  # noqa: E402

BATCH = 100


def _ms_per_post(n: int, step: Callable[[], Any]) -> float:
    started = time.process_time()
    step()
    return (time.process_time() - started) * 1000 / n


def _steps(posts: Sequence[str], rules: bytes, matcher: Matcher, when: str) -> dict[str, Any]:
    n = len(posts)
    items = [(post, (1,)) for post in posts]
    out: dict[str, Any] = {}
    analyses: list[Any] = []
    out[f"analyze_ms_per_post_{when}"] = _ms_per_post(
        n, lambda: analyses.extend(analyze(post) for post in posts)
    )
    out[f"match_ms_per_post_{when}"] = _ms_per_post(n, lambda: [matcher.match(a) for a in analyses])
    out[f"claims_ms_per_post_{when}"] = _ms_per_post(n, lambda: [detect_claim(a) for a in analyses])
    out[f"features_ms_per_post_{when}"] = _ms_per_post(
        n,
        lambda: [
            with_signatures([text_features(a) for a in analyses[i : i + BATCH]])
            for i in range(0, n, BATCH)
        ],
    )
    results: list[Any] = []
    if when == "cold":
        text.clear_caches()
    out[f"worker_ms_per_post_{when}"] = _ms_per_post(
        n,
        lambda: results.extend(
            detect_chunk(items[i : i + BATCH], 1, rules, grouped=True) for i in range(0, n, BATCH)
        ),
    )
    out[f"pickle_ms_per_post_{when}"] = _ms_per_post(
        n, lambda: [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results]
    )
    return {name: figure(value, "ms/post") for name, value in out.items()}


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    load()
    rows = corpus()
    sample = [row["text"] for row in rows[:1500]]
    rules = build_rules(frequent_lemmas(sample, 1000), 1000)
    matcher = compile_rules(rules)
    blob = pickled_rules(tuple(rules))
    posts = [row["text"] for row in rows[: 2_000 if quick else 11_000]]  # a worker's half
    detect_chunk([("", (1,))], 1, blob, grouped=True)  # compiles the rules, untimed
    text.clear_caches()
    figures = _steps(posts, blob, matcher, "cold")
    figures.update(_steps(posts, blob, matcher, "warm"))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 posts instead of 11,000")
    figures = run(parser.parse_args().quick)
    width = max(map(len, figures))
    for name, f in sorted(figures.items()):
        print(f"{name:<{width}}  {f['value']:.3f} {f['unit']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
