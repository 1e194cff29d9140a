"""Memory of the service watching 500 channels, after catching all of them up.

    python bench/watch500.py [--quick]

The simulator runs in the same process, so the figure is the process RSS
after the service is ready; the baseline is the RSS just before the service
started (simulator populated, dictionaries loaded), so value - baseline is
what watching costs.
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

from bench.common import corpus, cycle, figure  # noqa: E402
from bot.detection import morphology  # noqa: E402
from bot.service.app import App  # noqa: E402
from bot.simulator import Simulator  # noqa: E402
from config.settings import Backfill, ChannelSpec, Settings  # noqa: E402


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 1024**2


async def _run(channels: int, posts_each: int) -> dict[str, dict[str, Any]]:
    morphology.load()
    rows = cycle(corpus(), channels * posts_each)
    with tempfile.TemporaryDirectory() as tmp:
        async with Simulator() as sim:
            user = sim.add_user(phone="+15550001", first_name="Bench")
            names = []
            for i in range(channels):
                channel = sim.add_channel(username=f"channel_{i:04d}", title=f"Channel {i}")
                names.append(channel.username)
                for _ in range(posts_each):
                    sim.post(channel, next(rows)["text"], push=False)
            settings = Settings(
                api_id=1,
                api_hash="0" * 32,
                db_path=Path(tmp) / "watch.db",
                channels=tuple(ChannelSpec(name) for name in names),
                backfill=Backfill(posts=posts_each),
            )
            before = current_rss_mb()
            app = App(
                settings,
                session=sim.session_for(user),
                client_options={"flood_sleep_threshold": 0},
                page_wait=0,
            )
            started = time.perf_counter()
            task = asyncio.create_task(app.run())
            await asyncio.wait_for(app.ready.wait(), timeout=1800)
            ready_s = time.perf_counter() - started
            after = current_rss_mb()
            assert app.watcher is not None
            watched = len(app.watcher.channels)
            app.stop()
            await task
    if watched != channels:
        raise SystemExit(f"watching {watched} of {channels} channels")
    return {
        "rss_mb_watching_500_channels": figure(after, "MB", baseline=before),
        "startup_s_500_channels": figure(ready_s, "s"),
    }


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(500, 5 if quick else 20))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 posts per channel instead of 20")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
