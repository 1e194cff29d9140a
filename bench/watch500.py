"""Memory of the service watching 500 channels, after catching all of them up.

    python bench/watch500.py [--quick]

`rss_mb_watching_500_channels`: the simulator runs in the same process, so the
figure is the process RSS after the service is ready; the baseline is the RSS
just before the service started (simulator populated, dictionaries loaded), so
value - baseline is what watching costs.

`rss_mb_service_500_channels`: `chanwatch run` as its own process (as under
systemd) against the simulator in this one; its RSS once every post is archived
and the catch-up's detection workers have stopped (their RSS while they ran is
`rss_mb_detection_workers`, all of them together).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telethon.sessions import SQLiteSession  # noqa: E402

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


def _rss_of(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1024**2


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


async def _service(channels: int, posts_each: int) -> dict[str, dict[str, Any]]:
    rows = cycle(corpus(), channels * posts_each)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        async with Simulator() as sim:
            user = sim.add_user(phone="+15550001", first_name="Bench")
            names = []
            for i in range(channels):
                channel = sim.add_channel(username=f"channel_{i:04d}", title=f"Channel {i}")
                names.append(channel.username or "")
                for _ in range(posts_each):
                    sim.post(channel, next(rows)["text"], push=False)
            session = SQLiteSession(str(state / "user.session"))
            session.set_dc(sim.dc_id, "127.0.0.1", sim.port)
            session.auth_key = sim.session_for(user).auth_key
            session.save()
            session.close()
            key = state / "server.pem"
            key.write_text(sim.rsa_public_key_pem())
            db = state / "watch.db"
            env = {k: v for k, v in os.environ.items() if not k.startswith("CHANWATCH_")}
            env.update(
                {
                    "CHANWATCH_API_ID": "12345",
                    "CHANWATCH_API_HASH": "0123456789abcdef0123456789abcdef",
                    "CHANWATCH_SESSION": str(state / "user.session"),
                    "CHANWATCH_DB": str(db),
                    "CHANWATCH_CHANNELS": ",".join(names),
                    "CHANWATCH_SERVER": f"{sim.dc_id}:127.0.0.1:{sim.port}",
                    "CHANWATCH_SERVER_KEY": str(key),
                    "CHANWATCH_BACKFILL": str(posts_each),
                    "CHANWATCH_LOG_LEVEL": "WARNING",
                }
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--env-file", os.devnull, "run",
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            workers = 0.0
            try:
                async with asyncio.timeout(1800):
                    while _count(db) < channels * posts_each:
                        if proc.returncode is not None:
                            raise SystemExit(f"the service exited with {proc.returncode}")
                        workers = max(workers, sum(map(_rss_of, _children(proc.pid))))
                        await asyncio.sleep(0.2)  # polling another process's database
                    # idle detection workers (if the catch-up started any) stop after a minute
                    for _ in range(240):
                        if not _children(proc.pid):
                            break
                        await asyncio.sleep(0.5)
                service = _rss_of(proc.pid)
            finally:
                if proc.returncode is None:
                    proc.terminate()
                async with asyncio.timeout(60):
                    await proc.wait()
    return {
        "rss_mb_service_500_channels": figure(service, "MB"),
        "rss_mb_detection_workers": figure(workers, "MB"),
    }


def _count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM posts").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    posts_each = 5 if quick else 20
    figures = asyncio.run(_run(500, posts_each))
    figures.update(asyncio.run(_service(500, posts_each)))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 posts per channel instead of 20")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
