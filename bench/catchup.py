"""Catch-up throughput: the real service fetching N posts from the simulator.

    python bench/catchup.py [--quick]

Baseline, in the same run: the same rows inserted with one plain executemany
into a fresh archive (same schema and FTS index, no Telegram, no lemmas).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpus, cycle, figure, plain_insert_seconds  # noqa: E402
from bot.service.app import App  # noqa: E402
from bot.simulator import Simulator  # noqa: E402
from config.settings import Backfill, ChannelSpec, Settings  # noqa: E402


async def _catch_up(posts: list[dict[str, Any]], workdir: Path) -> tuple[float, int]:
    async with Simulator() as sim:
        user = sim.add_user(phone="+15550001", first_name="Bench")
        channel = sim.add_channel(username="corpus", title="Corpus replay")
        for row in posts:
            sim.post(channel, row["text"], push=False)
        settings = Settings(
            api_id=1,
            api_hash="0" * 32,
            db_path=workdir / "catchup.db",
            channels=(ChannelSpec("corpus"),),
            backfill=Backfill(posts=len(posts) + 1),
        )
        app = App(
            settings,
            session=sim.session_for(user),
            client_options={"flood_sleep_threshold": 0},
            page_wait=0,
        )
        started = time.perf_counter()
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(app.ready.wait(), timeout=1800)
        elapsed = time.perf_counter() - started
        assert app.db is not None
        count = (await app.db.fetchone("SELECT count(*) FROM posts"))[0]
        app.stop()
        await task
    return elapsed, count


async def _run(n: int) -> dict[str, dict[str, Any]]:
    posts = list(cycle(corpus(), n))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        catchup_s, archived = await _catch_up(posts, workdir)
        plain_s = await plain_insert_seconds(
            workdir / "plain.db", [(row["date"], row["text"]) for row in posts]
        )
    if archived != n:
        raise SystemExit(f"catch-up archived {archived} of {n} posts")
    return {
        "catchup_posts_per_s": figure(n / catchup_s, "posts/s", baseline=n / plain_s),
    }


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(2_000 if quick else 20_000))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 posts instead of 20,000")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
