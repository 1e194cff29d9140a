"""Detection throughput on real posts: analysis + keyword rules + claim detector.

    python bench/detect.py [--quick]

Prints figures; asserts nothing. Times are CPU time of this single-threaded
process. `run(quick)` returns the figures for `python -m bench`.
Figures:
  detect_posts_per_s       analyze + 1,000-rule match + claim detection, warm caches,
                           against one compiled `re` alternation of the same keywords
                           (no morphology) as the baseline
  detect_posts_per_s_cold  the same, first pass over the posts (lemma caches filling)
  match_ms_per_post_*      keyword matching alone on analyzed posts, 10 / 1,000 / 10,000
                           rules (cost grows with the rules that *match*: see
                           rules_matched_per_post_*), and 10 rules among 9,990 that never
                           match (the index cost alone)
  detect_bulk_posts_per_s  the same detection in batches of 500 spread over the worker
                           processes (wall time), against the batches in this process
  compile_s_10000_rules    building the matcher for 10,000 rules
  rss_mb_dictionaries      peak RSS after loading the ru/uk dictionaries, stemmer and lingua
  rss_mb_warm_caches       RSS after detecting every post (word caches full, 1,000 rules)
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.detection import Analysis, analyze, compile_rules, detect_claim, load, parse_rule
from bot.detection.keywords import Rule
from bot.detection.morphology import morph
from bot.detection.text import clear_caches

CORPUS = Path(__file__).resolve().parent / "data" / "ru_news_posts.jsonl.gz"

CONTENT_TAGS = frozenset({"NOUN", "ADJF", "VERB", "INFN"})
PLACES = (
    "Белгород Курск Брянск Москва Киев Харьков Донецк Луганск Запорожье Херсон Крым "
    "Одесса Днепр Николаев Сумы Мариуполь Бахмут Авдеевка Покровск Севастополь "
    "Ростов Воронеж Волчанск Керчь Орёл"
).split()
PHRASES = (
    '"взять в плен"',
    '"сдаться в плен"',
    '"попасть в плен"',
    '"обмен пленными"',
    '"военнопленный вернуться"',
    '"взяти в полон"',
    '"taken prisoner"',
    '"беспилотный летательный аппарат"',
    '"противовоздушная оборона"',
    '"министерство обороны"',
    '"ракетный удар"',
    '"режим ЧС"',
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size now (Linux), else the peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mb()


def load_posts(limit: int | None) -> list[str]:
    posts: list[str] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line).get("text") or ""
            if text.strip():
                posts.append(text)
            if limit is not None and len(posts) >= limit:
                break
    return posts


def frequent_lemmas(posts: list[str], n: int) -> list[str]:
    """The n most frequent content-word lemmas (nouns, adjectives, verbs)."""
    counts: Counter[str] = Counter()
    for text in posts:
        a = analyze(text)
        for t in a.tokens:
            if not t.is_number and len(t.norm) > 3 and a.sentences[t.sentence].lang == "ru":
                counts[t.lemmas[0]] += 1
    out: list[str] = []
    ru = morph("ru")
    for lemma, _ in counts.most_common():
        parse = ru.parse(lemma)[0]
        if parse.tag.POS in CONTENT_TAGS and parse.normal_form == lemma and lemma.isalpha():
            out.append(lemma)
            if len(out) == n:
                break
    return out


def build_rules(words: list[str], n: int) -> list[Rule]:
    texts = list(dict.fromkeys([*PLACES, *PHRASES, *words]))[:n]
    rules = [parse_rule(text, f"r{i}") for i, text in enumerate(texts)]
    if len(rules) < n:
        raise SystemExit(f"only {len(rules)} rules could be built for {n}")
    return rules


def unmatched_rules(n: int) -> list[Rule]:
    """n rules on made-up words that occur in no post."""
    letters = "бвгджзклмнпрстфхцчшщ"
    rules: list[Rule] = []
    for i in range(n):
        word, k = "", i
        while True:
            k, digit = divmod(k, len(letters))
            word += letters[digit] + "о"
            if not k:
                break
        rules.append(Rule(id=f"u{i}", phrase="жщы" + word))
    return rules


def baseline_regex(rules: list[Rule]) -> re.Pattern[str]:
    """One alternation of the rules' words as typed, whole words, no morphology."""
    terms = sorted({r.phrase.strip('"') for r in rules}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(map(re.escape, terms)) + r")\b", re.IGNORECASE)


def per_second(n: int, fn: Callable[[], Any]) -> float:
    """n / CPU seconds of this process: one core, and steady when other work shares the machine."""
    start = time.process_time()
    fn()
    return n / (time.process_time() - start)


def _bulk(posts: list[str], rules: list[Rule]) -> dict[str, Any]:
    """Detection of bulk batches (redetect's 500 texts) in the worker processes, wall
    time, against the same batches in this process; both with warm caches."""
    import asyncio
    import pickle

    from bot.pipeline import detect_chunk
    from bot.pool import DetectionPool

    blob = pickle.dumps(tuple(rules))
    items = [(text, ()) for text in posts]
    batches = [items[i : i + 500] for i in range(0, len(items), 500)]

    def inline() -> float:
        detect_chunk(items[:1], 1, blob)  # compiles the rules here, outside the timing
        start = time.perf_counter()
        for batch in batches:
            detect_chunk(batch, 1, blob)
        return len(items) / (time.perf_counter() - start)

    async def pooled(pool: DetectionPool) -> float:
        start = time.perf_counter()
        for batch in batches:
            await pool.map(detect_chunk, pool.chunks(batch), 1, blob)
        return len(items) / (time.perf_counter() - start)

    async def both() -> tuple[float, float]:
        pool = DetectionPool()
        try:
            await pooled(pool)  # the workers' first pass fills their matcher's memo
            return await pooled(pool), inline()
        finally:
            pool.close()

    workers, one = asyncio.run(both())
    return {"value": round(workers, 1), "unit": "posts/s", "baseline": round(one, 1),
            "ratio": round(workers / one, 3)}  # fmt: skip


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    load()
    rss_dictionaries = rss_mb()
    posts = load_posts(1_000 if quick else None)
    n_rules = 1_000
    reps = 1 if quick else 3
    largest = 1_000 if quick else 10_000

    # Realistic rules from the corpus itself.
    words = frequent_lemmas(posts, largest + 500)
    rules_10k = build_rules(words, largest)
    rules = rules_10k[:n_rules]
    matcher = compile_rules(rules)
    regex = baseline_regex(rules)

    def full() -> None:
        for text in posts:
            a = analyze(text)
            matcher.match(a)
            detect_claim(a)

    def baseline() -> None:
        for text in posts:
            regex.findall(text)

    # Cold: the first pass after forgetting every cached word.
    clear_caches()
    cold = per_second(len(posts), full)
    warm = max(per_second(len(posts), full) for _ in range(reps))
    base = max(per_second(len(posts), baseline) for _ in range(reps))
    rss_detect = current_rss_mb()

    # Matching alone, on analyses held in memory (a bounded number: millions of
    # live tokens would make the garbage collector dominate the timing).
    analyses = [analyze(p) for p in posts[:3_000]]

    match_ms: dict[int, float] = {}
    hits: dict[int, float] = {}
    compile_s = 0.0
    for size in (10, 1_000, 10_000) if not quick else (10, 1_000):
        start = time.process_time()
        m = compile_rules(rules_10k[:size])
        if size == largest:
            compile_s = time.process_time() - start
        best = min(_time_matching(m, analyses) for _ in range(reps))
        match_ms[size] = best / len(analyses) * 1000
        hits[size] = sum(len(m.match(a)) for a in analyses) / len(analyses)
    # The same 10 rules among 9,990 that never match: the index cost alone.
    m = compile_rules(rules_10k[:10] + unmatched_rules(largest - 10))
    unmatched_ms = min(_time_matching(m, analyses) for _ in range(reps)) / len(analyses) * 1000

    figures: dict[str, dict[str, Any]] = {
        "detect_posts_per_s": {
            "value": round(warm, 1),
            "unit": "posts/s",
            "baseline": round(base, 1),
            "ratio": round(warm / base, 4),
        },
        "detect_posts_per_s_cold": {"value": round(cold, 1), "unit": "posts/s"},
        f"compile_s_{largest}_rules": {"value": round(compile_s, 2), "unit": "s"},
        "rss_mb_dictionaries": {"value": round(rss_dictionaries, 1), "unit": "MB"},
        "rss_mb_warm_caches": {"value": round(rss_detect, 1), "unit": "MB"},
    }
    for size, ms in match_ms.items():
        figures[f"match_ms_per_post_{size}_rules"] = {
            "value": round(ms, 4),
            "unit": "ms/post",
            "baseline": round(match_ms[10], 4),
            "ratio": round(ms / match_ms[10], 3),
        }
        figures[f"rules_matched_per_post_{size}_rules"] = {
            "value": round(hits[size], 2),
            "unit": "rules/post",
        }
    figures["detect_bulk_posts_per_s"] = _bulk(posts, rules)
    figures[f"match_ms_per_post_10_of_{largest}_rules"] = {
        "value": round(unmatched_ms, 4),
        "unit": "ms/post",
        "baseline": round(match_ms[10], 4),
        "ratio": round(unmatched_ms / match_ms[10], 3),
    }
    figures["detect_posts"] = {"value": len(posts), "unit": "posts"}
    return figures


def _time_matching(matcher: Any, analyses: list[Analysis]) -> float:
    start = time.process_time()
    for a in analyses:
        matcher.match(a)
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 posts instead of 22,099")
    args = parser.parse_args()
    figures = run(quick=args.quick)
    width = max(map(len, figures))
    for name, f in figures.items():
        extra = ""
        if "baseline" in f:
            extra = f"  (baseline {f['baseline']} {f['unit']}, ratio {f['ratio']})"
        print(f"{name:<{width}}  {f['value']} {f['unit']}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
