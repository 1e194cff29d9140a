"""Alert latency and outbox throughput: the real service, bot and simulator, end to end.

    python bench/alerts.py [--quick]

Latency: a channel posts real corpus texts at a steady pace, each tagged for one
of 50 analysts (round robin, so no chat is asked for more than Telegram's ~1
message a second); measured from the simulator accepting the post to the
simulator accepting the bot's alert to that analyst; p50/p95 over 500 posts.

Burst: 200 matching posts at once to two analysts, with the simulator enforcing
Telegram's bot limits; alerts delivered per second until the last one arrives,
the messages it took, and FloodWaits (0 expected).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import string
import sys
import tempfile
import time
from itertools import product
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402

from bench.common import corpus, cycle, figure  # noqa: E402
from bot.alerts.alertbot import BotOptions  # noqa: E402
from bot.service.app import App  # noqa: E402
from bot.simulator import Simulator  # noqa: E402
from config.settings import Backfill, ChannelSpec, Settings  # noqa: E402
from storage import subscribers  # noqa: E402

ANALYSTS = 50
PACE = 0.05  # seconds between posts: 20 posts/s, each analyst every 2.5 s
TIMEOUT = 120
_LINK = re.compile(r"https://t\.me/bench/(\d+)")


def _tags(n: int) -> list[str]:
    return ["cwtag" + a + b for a, b in product(string.ascii_lowercase, repeat=2)][:n]


class _Arrivals:
    """Records when the simulator accepts each bot message, per receiver."""

    def __init__(self, sim: Simulator, bot_id: int) -> None:
        self.times: dict[tuple[int, int], float] = {}  # (receiver, post msg id) -> time
        self.messages: dict[int, int] = {}  # receiver -> messages
        self.changed = asyncio.Event()
        world = sim.world
        original = world.send_private

        def send_private(sender, receiver, text, **kw):  # type: ignore[no-untyped-def]
            result = original(sender, receiver, text, **kw)
            if sender.id == bot_id:
                now = time.perf_counter()
                self.messages[receiver.id] = self.messages.get(receiver.id, 0) + 1
                for found in _LINK.finditer(text):
                    self.times.setdefault((receiver.id, int(found.group(1))), now)
                for entity in kw.get("entities") or []:
                    url = getattr(entity, "url", None) or ""
                    if found := _LINK.search(url):
                        self.times.setdefault((receiver.id, int(found.group(1))), now)
                self.changed.set()
            return result

        world.send_private = send_private  # type: ignore[method-assign]

    async def wait(self, keys: list[tuple[int, int]]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not all(k in self.times for k in keys):
                self.changed.clear()
                await self.changed.wait()


async def _service(sim: Simulator, workdir: Path, name: str):  # type: ignore[no-untyped-def]
    monitor = sim.add_user(phone="+15550001", first_name="Monitor")
    bot = sim.add_bot(username="bench_bot")
    admin = sim.add_user(phone="+15550002", first_name="Admin")
    channel = sim.add_channel(username="bench", title="Bench channel")
    settings = Settings(
        api_id=1,
        api_hash="0" * 32,
        db_path=workdir / f"{name}.db",
        channels=(ChannelSpec("bench"),),
        backfill=Backfill(posts=10),
        bot_token=bot.token,
        admin_ids=frozenset({admin.id}),
    )
    fast = {"flood_sleep_threshold": 0, "retry_delay": 0.1}
    options = BotOptions(session=sim.session_for(bot), client_options=dict(fast), scheduler=False)
    app = App(
        settings, session=sim.session_for(monitor), client_options=fast, page_wait=0, bot=options
    )
    task = asyncio.create_task(app.run())
    await asyncio.wait_for(app.ready.wait(), timeout=TIMEOUT)
    return app, task, bot, channel


async def _analysts(sim: Simulator, app: App, tags: list[str]) -> list[Any]:
    assert app.db is not None and app.pipeline is not None
    users = []
    for i, tag in enumerate(tags):
        user = sim.add_user(phone=f"+1666{i:07d}", first_name=f"Analyst {i}")
        await subscribers.upsert(app.db, user.id, "analyst", name=user.first_name)
        await subscribers.set_preferences(app.db, user.id, claims=0)
        await subscribers.add_rule(app.db, user.id, tag, None)
        users.append(user)
    app.pipeline.audience_changed()
    return users


async def _latency(n: int, workdir: Path) -> list[float]:
    texts = [row["text"][:1500] for row in cycle(corpus(2000), n)]
    async with Simulator() as sim:
        app, task, bot, channel = await _service(sim, workdir, "latency")
        try:
            tags = _tags(ANALYSTS)
            users = await _analysts(sim, app, tags)
            arrivals = _Arrivals(sim, bot.id)
            sent: list[tuple[int, int, float]] = []  # (analyst, msg id, posted at)
            for i, text in enumerate(texts):
                k = i % len(users)
                posted = time.perf_counter()
                msg_id = sim.post(channel, f"{text}\n#{tags[k]}")
                sent.append((users[k].id, msg_id, posted))
                await asyncio.sleep(PACE)  # the load's pace, not synchronisation
            await arrivals.wait([(u, m) for u, m, _ in sent])
            return [(arrivals.times[(u, m)] - t) * 1000 for u, m, t in sent]
        finally:
            app.stop()
            await task


async def _burst(n: int, workdir: Path) -> dict[str, float]:
    async with Simulator() as sim:
        sim.enforce_bot_limits = True
        app, task, bot, channel = await _service(sim, workdir, "burst")
        try:
            users = await _analysts(sim, app, ["cwtagburst", "cwtagburst"][:2])
            arrivals = _Arrivals(sim, bot.id)
            started = time.perf_counter()
            ids = [sim.post(channel, f"Срочно #cwtagburst {i}") for i in range(n)]
            keys = [(u.id, m) for u in users for m in ids]
            await arrivals.wait(keys)
            elapsed = time.perf_counter() - started
            return {
                "alerts": len(keys),
                "seconds": elapsed,
                "messages": sum(arrivals.messages.get(u.id, 0) for u in users),
                "flood_waits": sim.flood_waits_issued,
            }
        finally:
            app.stop()
            await task


async def _run(quick: bool) -> dict[str, dict[str, Any]]:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        latencies = await _latency(60 if quick else 500, workdir)
        burst = await _burst(100 if quick else 200, workdir)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "alert_latency_p50_ms": figure(statistics.median(latencies), "ms"),
        "alert_latency_p95_ms": figure(cuts[94], "ms"),
        "alert_latency_max_ms": figure(max(latencies), "ms"),
        "burst_alerts_per_s": figure(burst["alerts"] / burst["seconds"], "alerts/s"),
        "burst_seconds": figure(burst["seconds"], "s"),
        "burst_messages": figure(burst["messages"], "messages"),
        "burst_flood_waits": figure(burst["flood_waits"], "FloodWaits"),
    }


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 posts instead of 500")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
