"""`chanwatch demo` plays its whole scenario and ends by itself."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
from pathlib import Path

from rich.console import Console

from bot.cli.demo import Demo, closing_hints


async def test_demo_plays_the_scenario_and_leaves_a_searchable_archive(tmp_path: Path) -> None:
    out = io.StringIO()
    demo = Demo(tmp_path / "demo", Console(file=out, width=120), pace=0)
    await demo.run(forever=False)
    text = out.getvalue()
    # the analyst's subscription replies, ten alerts and replies, the incident's timeline
    assert demo.seen == 5 + 10 + 1, text
    received = "\n".join(m.text for m in demo.sim.messages_to(demo.analyst, from_=demo.bot))
    assert "captured-soldier claim" in received and "2 captives" in received
    assert "5 captives" in received
    assert "edited:" in received and "deleted — archived copy kept" in received
    assert text.count("archived; nothing sent to Olena") == 7
    # the Novaya Tavolzhanka story became one incident, told by five channels; Olena's
    # later alerts about it replied to the first
    assert "incident #2 · Новая Таволжанка" in received
    assert "5 channels, 9 posts, 2 → 5 captives claimed" in received
    assert "mention the incident names this channel (гладков)" in received
    assert received.count("🧩 incident #2 · ") >= 4
    chart = tmp_path / "demo" / "chart.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000
    db = tmp_path / "demo" / "chanwatch-demo.db"
    assert f"Archive: {db}" in text.replace("\n", "")
    with sqlite3.connect(db) as conn:
        deleted = conn.execute("SELECT text FROM posts WHERE deleted_at IS NOT NULL").fetchall()
        hits = conn.execute(
            "SELECT count(*) FROM posts_fts WHERE posts_fts MATCH 'lemmas:плен'"
        ).fetchone()[0]
    assert deleted == [("Обстрел Шебекино Белгородской области: повреждены два дома.",)]
    assert hits >= 3


async def test_closing_hints_run_as_pasted_outside_the_box(tmp_path: Path) -> None:
    out = io.StringIO()
    demo = Demo(tmp_path / "my demo", Console(file=out, width=60), pace=0)
    await demo.run(forever=False)
    lines = out.getvalue().splitlines()
    hints = closing_hints(tmp_path / "my demo" / "chanwatch-demo.db")
    assert len(hints) >= 2
    for hint in hints:  # each on a line of its own, never wrapped, outside the box
        assert "  " + hint in lines, hint
    # a fresh shell elsewhere, without the virtualenv on PATH
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    for hint in hints:
        done = await asyncio.to_thread(
            subprocess.run,
            hint,
            shell=True,
            cwd="/",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (hint, done.stderr)
        assert done.stdout.strip(), hint
