"""Catch-up with two watchers: two `chanwatch run` processes (two accounts) sharing the
channels of one PostgreSQL archive, against one process alone.

    python bench/watchers.py [--quick]

Both runs start from a fresh database on the same server (started here from Debian's
package) with the same channels and posts on the simulator, and are timed from the
processes' start until the archive holds every post; the detection workers are the
machine's cores shared out among the watchers. Baseline, in the same run: one watcher
alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpus, cycle, figure  # noqa: E402
from bot.simulator import Simulator  # noqa: E402
from storage.db import open_database  # noqa: E402
from tests.fault_helpers import ended, service_env, start  # noqa: E402
from tests.pg_server import PgServer, find_bin_dir  # noqa: E402

LEASE = "4"  # seconds: watchers rebalance every second


async def _catch_up(
    server: PgServer, texts: list[str], channels: int, watchers: int, workdir: Path
) -> float:
    url = server.create_database()
    db = await open_database(url)  # migrated before the watchers start
    try:
        async with Simulator() as sim:
            names = [f"bench_{i:03d}" for i in range(channels)]
            made = [sim.add_channel(username=n, title=n) for n in names]
            for i, text in enumerate(texts):
                sim.post(made[i % channels], text, push=False)
            envs = [
                service_env(
                    sim,
                    workdir / f"w{w}",
                    names,
                    monitor=sim.add_user(phone=f"+1555020{w}", first_name=f"Bench {w}"),
                    db=url,
                    watcher=f"w{w}",
                    lease_seconds=LEASE,
                    backfill=str(len(texts)),
                    log_level="WARNING",
                    # the machine's cores shared out, as two watchers on one host would be
                    detection_workers=str(max(1, (os.cpu_count() or 1) // watchers)),
                )
                for w in range(watchers)
            ]
            began = time.perf_counter()
            procs = [await start(env, log=workdir / f"w{w}.log") for w, env in enumerate(envs)]
            try:
                while (await db.fetchone("SELECT count(*) FROM posts"))[0] < len(texts):
                    if any(p.returncode is not None for p in procs):
                        raise RuntimeError(f"a watcher exited; see {workdir}/w*.log")
                    await asyncio.sleep(0.05)  # the archive is written by other processes
                elapsed = time.perf_counter() - began
            finally:
                for proc in procs:
                    if proc.returncode is None:
                        proc.terminate()
                for proc in procs:
                    await ended(proc)
    finally:
        await db.close()
    return elapsed


async def _run(quick: bool) -> dict[str, dict[str, Any]]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("PostgreSQL is not installed (apt-get install postgresql): skipped", file=sys.stderr)
        return {}
    channels, per = (20, 100) if quick else (40, 500)
    texts = [row["text"] for row in cycle(corpus(), channels * per)]
    server = PgServer(bin_dir, fsync=True).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            one = await _catch_up(server, texts, channels, 1, Path(tmp) / "one")
            two = await _catch_up(server, texts, channels, 2, Path(tmp) / "two")
    finally:
        server.remove()
    n = len(texts)
    return {
        "pg_catchup_one_watcher_posts_per_s": figure(n / one, "posts/s"),
        "pg_catchup_two_watchers_posts_per_s": figure(n / two, "posts/s", baseline=n / one),
    }


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))
