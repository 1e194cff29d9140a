"""Run every benchmark and print one table of figures.

    python -m bench [--quick] [--json FILE] [--only NAME ...]

Each benchmark module runs in its own process (so one's memory does not
inflate another's RSS figure) and returns {"figure": {"value", "unit",
"baseline"?, "ratio"?}}. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODULES = (
    "detect",
    "worker_cost",
    "claims_quality",
    "ingest",
    "catchup",
    "archive",
    "alerts",
    "watch500",
    "postgres",
    "watchers",
)
SNIPPET = (
    "import json, sys; from bench import {name} as m; "
    "sys.stdout.write('\\n' + json.dumps(m.run(quick={quick})) + '\\n')"
)


def run_module(name: str, quick: bool) -> tuple[dict[str, Any], float, str | None]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(name=name, quick=quick)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "CHANWATCH_LOG_LEVEL": "WARNING"},
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {}, elapsed, " | ".join(tail) or f"exit {proc.returncode}"
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last), elapsed, None


def table(figures: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'figure':<34} {'value':>12} {'unit':<8} {'baseline':>12} {'ratio':>8}"]
    for name, fig in figures.items():
        baseline = fig.get("baseline")
        ratio = fig.get("ratio")
        lines.append(
            f"{name:<34} {fig['value']:>12,.3f} {fig.get('unit', ''):<8} "
            f"{'' if baseline is None else f'{baseline:,.3f}':>12} "
            f"{'' if ratio is None else f'{ratio:.3f}':>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run only these")
    args = parser.parse_args(argv)
    figures: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for name in args.only or MODULES:
        result, elapsed, error = run_module(name, args.quick)
        status = f"failed: {error}" if error else f"{len(result)} figures"
        print(f"[{name}] {elapsed:.1f} s, {status}", file=sys.stderr)
        if error:
            failed.append(name)
        figures.update(result)
    print(
        f"chanwatch benchmarks ({'quick' if args.quick else 'full'}) on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(table(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
