"""Quality of the captured-soldier claim detector.

    python bench/claims_quality.py [--quick] [--sample N] [--dump FILE]

Prints precision, recall and F1 per language on tests/data/claims_labelled.jsonl,
how each kind of text is classified (which hard negatives leak), the same for the
held-out set tests/data/claims_heldout.jsonl (texts written before the detector was
read, kept out of its tuning as far as possible), and how many
claim alerts the detector raises over the real-post corpus
(bench/data/ru_news_posts.jsonl.gz, derived from NKTKLN/telegram-news-classifier,
CC BY 4.0), with a sample of those alerts for a human to judge.
``run(quick)`` returns the figures for ``python -m bench``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.detection import morphology  # noqa: E402
from bot.detection.claims import ClaimResult, detect_claim  # noqa: E402
from bot.detection.text import analyze  # noqa: E402

LABELLED = ROOT / "tests" / "data" / "claims_labelled.jsonl"
HELDOUT = ROOT / "tests" / "data" / "claims_heldout.jsonl"
# Captures of people outside the military lexicon and of gear rather than soldiers,
# written before the detector was tuned on them (first run: 26 of 34 right).
PERSONS_EQUIPMENT = ROOT / "tests" / "data" / "claims_persons_equipment.jsonl"
CORPUS = ROOT / "bench" / "data" / "ru_news_posts.jsonl.gz"
QUICK_STRIDE = 7  # --quick reads every 7th post: ~3,200 spread over the whole period


def load_labelled(path: Path = LABELLED) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_corpus(stride: int = 1) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if i % stride == 0:
                rows.append(json.loads(line))
    return rows


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def evaluate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-language P/R/F1 and, per kind, how texts were labelled."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    kinds: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    errors: list[tuple[dict[str, Any], ClaimResult]] = []
    for rec in records:
        result = detect_claim(analyze(rec["text"]))
        row = counts[rec["lang"]]
        if result.claim and rec["label"]:
            row[0] += 1
        elif result.claim:
            row[1] += 1
        elif rec["label"]:
            row[2] += 1
        if result.claim != bool(rec["label"]):
            errors.append((rec, result))
        kinds[(rec["kind"], rec["label"])][result.label] += 1
    per_lang = {lang: prf(*row) for lang, row in sorted(counts.items())}
    return {"per_lang": per_lang, "counts": dict(counts), "kinds": kinds, "errors": errors}


def corpus_alerts(posts: list[dict[str, Any]]) -> tuple[list[tuple[dict, ClaimResult]], float]:
    """Claim alerts over the posts and the detector's own cost in µs per post."""
    analyses = [analyze(p.get("text") or "") for p in posts]
    start = time.perf_counter()
    results = [detect_claim(a) for a in analyses]
    elapsed = time.perf_counter() - start
    alerts = [(p, r) for p, r in zip(posts, results, strict=True) if r.claim]
    return alerts, elapsed / max(len(posts), 1) * 1e6


def write_alerts(alerts: list[tuple[dict, ClaimResult]], out: TextIO, limit: int | None) -> None:
    for post, result in alerts[:limit]:
        text = post.get("text") or ""
        cue = next(e for e in result.evidence if e.kind == "cue")
        snippet = text[max(0, cue.start - 160) : cue.end + 120].replace("\n", " ")
        out.write(
            f"--- {post.get('channel')} #{post.get('message_id')} score={result.score}"
            f" count={result.count} unverified={result.unverified}\n"
            f"    cues: {[(e.rule, e.text) for e in result.evidence if e.kind == 'cue']}\n"
            f"    …{snippet}…\n"
        )


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    morphology.load()
    ev = evaluate(load_labelled())
    figures: dict[str, dict[str, Any]] = {}
    for lang, (precision, recall, f1) in ev["per_lang"].items():
        figures[f"claims_f1_{lang}"] = {"value": round(f1, 4), "unit": "F1"}
        figures[f"claims_precision_{lang}"] = {"value": round(precision, 4), "unit": "ratio"}
        figures[f"claims_recall_{lang}"] = {"value": round(recall, 4), "unit": "ratio"}
    for lang, (_precision, _recall, f1) in evaluate(load_labelled(HELDOUT))["per_lang"].items():
        figures[f"claims_heldout_f1_{lang}"] = {"value": round(f1, 4), "unit": "F1"}
    people = evaluate(load_labelled(PERSONS_EQUIPMENT))["per_lang"].items()
    for lang, (_precision, _recall, f1) in people:
        figures[f"claims_people_gear_f1_{lang}"] = {"value": round(f1, 4), "unit": "F1"}
    posts = load_corpus(QUICK_STRIDE if quick else 1)
    alerts, us_per_post = corpus_alerts(posts)
    figures["claims_corpus_alerts"] = {"value": len(alerts), "unit": f"alerts/{len(posts)} posts"}
    figures["claims_us_per_post"] = {"value": round(us_per_post, 2), "unit": "µs/post"}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="every 7th corpus post only")
    parser.add_argument("--sample", type=int, default=25, help="alerts to print (default 25)")
    parser.add_argument("--dump", type=Path, help="write every corpus alert to this file")
    args = parser.parse_args(argv)

    morphology.load()
    for path in (LABELLED, HELDOUT, PERSONS_EQUIPMENT):
        print_set(path)

    posts = load_corpus(QUICK_STRIDE if args.quick else 1)
    alerts, us_per_post = corpus_alerts(posts)
    print(
        f"\nCorpus: {len(alerts)} claim alerts over {len(posts)} real posts"
        f" ({us_per_post:.1f} µs/post for the claim detector after analysis)"
    )
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as out:
            write_alerts(alerts, out, None)
        print(f"All alerts written to {args.dump}")
    if args.sample:
        print(f"Sample of {min(args.sample, len(alerts))} alerts:")
        write_alerts(alerts, sys.stdout, args.sample)
    return 0


def print_set(path: Path) -> None:
    ev = evaluate(load_labelled(path))
    name = "Held-out set:" if path == HELDOUT else "Labelled set:"
    if path == PERSONS_EQUIPMENT:
        name = "People and gear set:"
    print(f"\n{name}", path.relative_to(ROOT))
    print(f"{'lang':6}{'P':>8}{'R':>8}{'F1':>8}{'TP':>6}{'FP':>6}{'FN':>6}")
    for lang, (precision, recall, f1) in ev["per_lang"].items():
        tp, fp, fn = ev["counts"][lang]
        print(f"{lang:6}{precision:8.3f}{recall:8.3f}{f1:8.3f}{tp:6}{fp:6}{fn:6}")

    print("\nBy kind (gold label → detector labels); a 0-kind labelled 'claim' leaks:")
    for (kind, gold), labels in sorted(ev["kinds"].items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        total = sum(labels.values())
        wrong = labels["claim"] if gold == 0 else total - labels["claim"]
        shown = ", ".join(f"{label} {n}" for label, n in labels.most_common())
        mark = "  <- leaks" if wrong and gold == 0 else "  <- missed" if wrong else ""
        print(f"  {kind:20} gold={gold} n={total:3}  {shown}{mark}")

    if ev["errors"]:
        print("\nMisclassified:")
        for rec, result in ev["errors"]:
            print(
                f"  [{rec['lang']} {rec['kind']} gold={rec['label']} → {result.label}]"
                f" {rec['text'][:140]!r}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
