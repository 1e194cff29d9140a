"""`python -m bench` runs benchmarks in their own processes and writes valid JSON.

Only the fastest benchmarks run here; no figure is asserted against a time.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_figures_as_json(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "claims_quality",
            "watch500",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    for name in ("claims_f1_ru", "claims_f1_uk", "claims_f1_en", "rss_mb_watching_500_channels"):
        assert {"value", "unit"} <= set(figures[name]), name
    rss = figures["rss_mb_watching_500_channels"]
    assert abs(rss["ratio"] - rss["value"] / rss["baseline"]) < 1e-3
    assert "rss_mb_watching_500_channels" in done.stdout  # the printed table
