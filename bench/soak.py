"""Soak: the real service, as its own process, under sustained load and faults.

    python bench/soak.py [--short] [--minutes M] [--seconds S] [--json FILE] [--keep DIR]

`chanwatch run` (a subprocess, with file sessions and CHANWATCH_* settings, as
under systemd) watches 500 channels of the loopback simulator, which runs in
this process. The channels post real news texts at a sustained 50 posts/s, edit
one post in 20 and delete one in 50 (of posts already archived), while every
connection is dropped every few minutes (every 30 s in short mode) and
FloodWaits are injected at random into history reads, channel differences and
the bot's sends. One analyst has two keyword rules (2% of posts carry one of the
words) and claim alerts on. Telegram's bot limits are enforced.

At the end the load stops and the service is given time to settle, then:
posts archived == posts published, edits recorded == edits made, deletions
recorded == deletions made, posts alerted == posts expected (tagged posts, plus
posts the archive labels as claims) with no duplicates, nothing pending in the
outbox, and the service's RSS at the end vs just after warm-up.

Full: 10 minutes, drops every 3 minutes. --short: 2 minutes, drops every 30 s.
`run(quick)` returns the figures like the other bench modules.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loguru import logger  # noqa: E402
from telethon.helpers import add_surrogate, del_surrogate  # noqa: E402
from telethon.sessions import SQLiteSession  # noqa: E402

from bench.common import corpus, figure  # noqa: E402
from bot.simulator import SimChannel, SimMessage, Simulator, SimUser  # noqa: E402
from storage import subscribers  # noqa: E402
from storage.db import open_database  # noqa: E402

CHANNELS = 500
RATE = 50.0  # posts per second
EDIT_EVERY = 20
DELETE_EVERY = 50
TAGS = ("пеленгатор", "глушилка")  # the analyst's rules; 2% of posts carry one
TAG_EVERY = 50
SETTLE = 180.0  # seconds the service gets to catch up after the load stops
# Distinct texts. The service caches the morphology of every word form it meets (bounded
# caches, ~0.56 KiB a form: +78 MiB over the 144k forms of the whole corpus), so RSS grows
# with vocabulary until CHANWATCH_CACHE_MB's bound. The warm-up posts the whole pool once, so
# the growth measured after it is what the service keeps per post, not cold caches.
POOL = 1500
FAULTS = ("GetHistoryRequest", "GetChannelDifferenceRequest", "SendMessageRequest")
_LINK = re.compile(r"https://t\.me/([A-Za-z][A-Za-z0-9_]+)/(\d+)")


@dataclass
class Plan:
    seconds: float
    warmup: float
    drop_every: float
    flood_every: float = 20.0  # mean seconds between injected FloodWaits
    pool: int = POOL  # distinct texts

    @classmethod
    def of(cls, seconds: float, drop_every: float | None = None) -> Plan:
        short = seconds <= 180
        return cls(
            seconds=seconds,
            warmup=min(30.0, seconds / 4) if short else 60.0,
            drop_every=drop_every or (30.0 if short else 180.0),
        )


@dataclass
class Load:
    published: dict[tuple[int, int], str] = field(default_factory=dict)
    tagged: set[tuple[str, int]] = field(default_factory=set)
    edited: set[tuple[int, int]] = field(default_factory=set)
    deleted: set[tuple[int, int]] = field(default_factory=set)
    drops: int = 0
    floods: int = 0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)


def rss_of(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _session_file(sim: Simulator, user: SimUser, path: Path) -> None:
    session = SQLiteSession(str(path))
    session.set_dc(sim.dc_id, "127.0.0.1", sim.port)
    session.auth_key = sim.session_for(user).auth_key
    session.save()
    session.close()
    os.chmod(path, 0o600)


def _query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return []
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _scalar(db: Path, sql: str) -> int:
    rows = _query(db, sql)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


# A combined message after an outage carries follow-ups too: an entry whose line after
# the post's link says it was edited or deleted is a follow-up, not a second alert. So
# is a follow-up that names its post on its one line: it could not reply to the alert,
# whose message id the service never learnt (its resend was refused as a duplicate).
_FOLLOWUP = ("✏️ edited", "🗑 deleted")


def _alert_links(text: str, entities: list[Any]) -> set[tuple[str, int]]:
    """The posts a message alerts on: links outside follow-up entries."""
    wide = add_surrogate(text)
    found = [(m.start(), m) for m in _LINK.finditer(text)]
    for entity in entities:
        if match := _LINK.search(getattr(entity, "url", None) or ""):
            found.append((len(del_surrogate(wide[: entity.offset])), match))
    links = set()
    for start, match in found:
        end = text.find("\n", start)
        line, after = (text[start:], "") if end < 0 else (text[start:end], text[end + 1 :])
        if not after.startswith(_FOLLOWUP) and not any(f in line for f in _FOLLOWUP):
            links.add((match.group(1), int(match.group(2))))
    return links


def alerts_in(
    messages: Iterable[SimMessage], channels: Collection[str] | None = None
) -> dict[tuple[str, int], int]:
    """How many times each (channel username, post id) was alerted in the bot's messages
    (follow-up replies and follow-up entries of combined messages excluded). `channels`:
    only posts of these count; a post's text may link to other channels' posts, and
    the same text posted twice would show such a link twice."""
    seen: dict[tuple[str, int], int] = {}
    for message in messages:
        if message.reply_to is not None:
            continue
        for key in _alert_links(message.text or "", message.entities or []):
            if channels is None or key[0] in channels:
                seen[key] = seen.get(key, 0) + 1
    return seen


class Soak:
    def __init__(self, sim: Simulator, state: Path, plan: Plan, seed: int) -> None:
        self.sim = sim
        self.state = state
        self.plan = plan
        self.db = state / "archive.db"
        self.rng = random.Random(seed)
        self.load = Load()
        texts = [r["text"] for r in corpus() if not any(t[:6] in r["text"].lower() for t in TAGS)]
        self.texts = texts[: plan.pool]
        self.monitor = sim.add_user(phone="+15550001", first_name="Soak")
        self.bot = sim.add_bot(username="soak_bot")
        self.analyst = sim.add_user(phone="+15550002", first_name="Analyst")
        self.channels: list[SimChannel] = [
            sim.add_channel(username=f"soak_{i:03d}", title=f"Soak {i}") for i in range(CHANNELS)
        ]
        sim.enforce_bot_limits = True
        sim.dedup_random_ids = True

    # --- setting up ---------------------------------------------------------------------

    async def prepare(self) -> dict[str, str]:
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        _session_file(self.sim, self.monitor, self.state / "user.session")
        _session_file(self.sim, self.bot, self.state / "user-bot.session")
        key = self.state / "server.pem"
        key.write_text(self.sim.rsa_public_key_pem())
        db = await open_database(self.db)
        try:
            await subscribers.upsert(db, self.analyst.id, "admin", name="Analyst")
            await subscribers.set_preferences(db, self.analyst.id, claims=True)
            for tag in TAGS:
                await subscribers.add_rule(db, self.analyst.id, tag, None)
        finally:
            await db.close()
        for channel in self.channels:  # one post each, so every channel has a head
            self._post(channel, push=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHANWATCH_")}
        env.update(
            {
                "CHANWATCH_API_ID": "12345",
                "CHANWATCH_API_HASH": "0123456789abcdef0123456789abcdef",
                "CHANWATCH_SESSION": str(self.state / "user.session"),
                "CHANWATCH_DB": str(self.db),
                "CHANWATCH_CHANNELS": ",".join(c.username or "" for c in self.channels),
                "CHANWATCH_SERVER": f"{self.sim.dc_id}:127.0.0.1:{self.sim.port}",
                "CHANWATCH_SERVER_KEY": str(key),
                "CHANWATCH_BOT_TOKEN": self.bot.token or "",
                "CHANWATCH_ADMINS": str(self.analyst.id),
                "CHANWATCH_BACKFILL": "100000",
                "CHANWATCH_LOG_LEVEL": "WARNING",
            }
        )
        return env

    def _post(self, channel: SimChannel, *, push: bool = True) -> int:
        n = len(self.load.published)
        # the pool in order first (during the warm-up), then at random
        text = self.texts[n] if n < len(self.texts) else self.rng.choice(self.texts)
        if n % TAG_EVERY == TAG_EVERY // 2:
            text = f"{text}\n{TAGS[(n // TAG_EVERY) % len(TAGS)]}"
        msg_id = self.sim.post(channel, text, push=push)
        self.load.published[(channel.id, msg_id)] = text
        if any(t in text for t in TAGS):
            self.load.tagged.add((channel.username or "", msg_id))
        return msg_id

    # --- the load -----------------------------------------------------------------------

    async def drive(self, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_drop = start + self.plan.drop_every
        next_flood = start + self.plan.flood_every * self.rng.uniform(0.25, 1.0)
        next_sample = start
        archived: set[tuple[int, int]] = set()
        last_refresh = 0.0
        i = 0
        while (now := loop.time()) - start < self.plan.seconds:
            if proc.returncode is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}")
            i += 1
            channel = self.rng.choice(self.channels)
            self._post(channel)
            if now - last_refresh > 1.0:  # what the service has archived, for edits/deletes
                archived = {
                    (c, m) for c, m in _query(self.db, "SELECT channel_id, msg_id FROM posts")
                }
                last_refresh = now
            if i % EDIT_EVERY == 0:
                self._edit(archived)
            if i % DELETE_EVERY == 0:
                self._delete(archived)
            if now >= next_drop:
                await self.sim.drop_connections()
                self.load.drops += 1
                next_drop += self.plan.drop_every
            if now >= next_flood:
                self.sim.fail(self.rng.choice(FAULTS), "FLOOD_WAIT_1", times=1)
                self.load.floods += 1
                next_flood = now + self.plan.flood_every * self.rng.uniform(0.5, 1.5)
            if now >= next_sample:
                self.load.rss.append((now - start, rss_of(proc.pid)))
                next_sample += 5.0
            # pace: the i-th post is due at start + i / RATE
            await asyncio.sleep(max(0.0, start + i / RATE - loop.time()))
        self.load.rss.append((loop.time() - start, rss_of(proc.pid)))

    def _candidates(self, archived: set[tuple[int, int]]) -> list[tuple[int, int]]:
        done = self.load.edited | self.load.deleted
        recent = list(self.load.published)[-5000:]
        return [k for k in recent if k in archived and k not in done]

    def _edit(self, archived: set[tuple[int, int]]) -> None:
        candidates = self._candidates(archived)
        if not candidates:
            return
        channel_id, msg_id = self.rng.choice(candidates)
        channel = self.sim.world.channels[channel_id]
        text = self.load.published[(channel_id, msg_id)] + "\n(обновлено)"
        self.sim.edit(channel, msg_id, text)
        self.load.published[(channel_id, msg_id)] = text
        self.load.edited.add((channel_id, msg_id))

    def _delete(self, archived: set[tuple[int, int]]) -> None:
        candidates = self._candidates(archived)
        if not candidates:
            return
        channel_id, msg_id = self.rng.choice(candidates)
        self.sim.delete(self.sim.world.channels[channel_id], [msg_id])
        self.load.deleted.add((channel_id, msg_id))

    # --- checking -----------------------------------------------------------------------

    def alerted(self) -> dict[tuple[str, int], int]:
        messages = self.sim.messages_to(self.analyst, from_=self.bot)
        return alerts_in(messages, {channel.username or "" for channel in self.channels})

    def expected_alerts(self) -> set[tuple[str, int]]:
        claims = _query(
            self.db,
            """SELECT c.username, p.msg_id FROM posts p JOIN channels c ON c.id = p.channel_id
               WHERE p.claim_label = 'claim' AND p.claim_score >= 0.5""",
        )
        return self.load.tagged | {(name, msg_id) for name, msg_id in claims}

    def explain(self, keys: list[tuple[str, int]]) -> list[str]:
        """For posts alerted twice or unexpectedly: what the analyst got, and the outbox."""
        out = []
        messages = self.sim.messages_to(self.analyst, from_=self.bot)
        for name, msg_id in keys:
            got = [
                f"msg {m.id} reply_to={m.reply_to}: {(m.text or '')[:160]!r}"
                for m in messages
                if (name, msg_id) in _alert_links(m.text or "", m.entities or [])
            ]
            rows = _query(
                self.db,
                """SELECT a.id, a.reason, a.status, a.batch, a.attempts, a.tg_msg_id,
                          p.claim_label, p.claim_score, p.edit_date
                   FROM alerts a JOIN posts p ON p.id = a.post_id
                   JOIN channels c ON c.id = p.channel_id
                   WHERE c.username = ? AND p.msg_id = ?""",
                (name, msg_id),
            )
            out.append(f"{name}/{msg_id}: {got} outbox {[tuple(r) for r in rows]}")
        return out

    def state_now(self) -> dict[str, int]:
        return {
            "archived": _scalar(self.db, "SELECT count(*) FROM posts"),
            "revisions": _scalar(self.db, "SELECT count(DISTINCT post_id) FROM post_revisions"),
            "deleted": _scalar(self.db, "SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL"),
            "pending": _scalar(self.db, "SELECT count(*) FROM alerts WHERE status = 'pending'"),
        }

    def settled(self) -> bool:
        now = self.state_now()
        return (
            now["archived"] == len(self.load.published)
            and now["revisions"] == len(self.load.edited)
            and now["deleted"] == len(self.load.deleted)
            and now["pending"] == 0
            and set(self.alerted()) >= self.expected_alerts()
        )


async def soak(plan: Plan, *, seed: int = 1, keep: Path | None = None) -> dict[str, Any]:
    """Run the soak; returns the figures (and `ok`: every invariant held)."""
    with tempfile.TemporaryDirectory() as tmp:
        state = keep or Path(tmp) / "state"
        async with Simulator() as sim:
            world = Soak(sim, state, plan, seed)
            env = await world.prepare()
            log = state / "service.log"
            stderr = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot",
                    "--env-file",
                    os.devnull,
                    "run",
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=stderr,
                )
            finally:
                os.close(stderr)
            try:
                started = time.perf_counter()
                async with asyncio.timeout(600):
                    while not (
                        _scalar(world.db, "SELECT count(*) FROM posts") >= CHANNELS
                        and sim.online(world.monitor)
                    ):
                        if proc.returncode is not None:
                            raise RuntimeError(f"the service exited with {proc.returncode}")
                        await asyncio.sleep(0.2)  # polling another process's database
                ready_s = time.perf_counter() - started
                await world.drive(proc)
                load_end = time.perf_counter()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SETTLE):
                        while not world.settled():
                            if proc.returncode is not None:
                                break
                            await asyncio.sleep(0.5)  # polling another process's database
                settle_s = time.perf_counter() - load_end
                rss_end = rss_of(proc.pid) if proc.returncode is None else 0.0
            finally:
                if proc.returncode is None:
                    proc.terminate()
                async with asyncio.timeout(60):
                    code = await proc.wait()
            final = world.state_now()
            alerted = world.alerted()
            expected = world.expected_alerts()
            integrity = _query(world.db, "PRAGMA integrity_check")
            lines = log.read_text(errors="replace").splitlines()
            errors = error_records(lines)
            refused = sum(1 for line in lines if "was already delivered" in line)
            doubtful = [k for k, n in alerted.items() if n > 1 or k not in expected]
            explained = world.explain(doubtful[:5])
    load = world.load
    warm = [mib for at, mib in load.rss if at >= plan.warmup]
    baseline = warm[0] if warm else load.rss[0][1]
    during = max(mib for _, mib in load.rss)
    missing = expected - set(alerted)
    result = {
        "seconds": plan.seconds,
        "channels": CHANNELS,
        "posts_published": len(load.published),
        "posts_archived": final["archived"],
        "edits_made": len(load.edited),
        "edits_recorded": final["revisions"],
        "deletions_made": len(load.deleted),
        "deletions_recorded": final["deleted"],
        "alerts_expected": len(expected),
        "alerts_delivered": len(expected & set(alerted)),
        "alerts_missing": len(missing),
        "alerts_duplicated": sum(1 for n in alerted.values() if n > 1),
        "alerts_unexpected": len(set(alerted) - expected),
        "outbox_pending": final["pending"],
        "connection_drops": load.drops,
        "floodwaits_injected": load.floods,
        "bot_floodwaits": sim.flood_waits_issued,
        "resends_refused_as_duplicate": refused,
        "rss_mb_after_warmup": round(baseline, 1),
        "rss_mb_max_during_load": round(during, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_growth_pct": round((rss_end / baseline - 1) * 100, 1) if baseline else None,
        "startup_s": round(ready_s, 1),
        "settle_s": round(settle_s, 1),
        "service_exit": code,
        "service_errors_logged": len(errors),
        "integrity": integrity[0][0] if integrity else "unknown",
        "rss_mb_series": " ".join(f"{at:.0f}s:{mib:.0f}" for at, mib in load.rss[::6]),
    }
    result["ok"] = (
        result["posts_archived"] == result["posts_published"]
        and result["edits_recorded"] == result["edits_made"]
        and result["deletions_recorded"] == result["deletions_made"]
        and result["alerts_missing"] == 0
        and result["alerts_duplicated"] == 0
        and result["alerts_unexpected"] == 0
        and result["outbox_pending"] == 0
        and result["service_exit"] == 0
        and result["integrity"] == "ok"
        and (result["rss_growth_pct"] or 0) < 10
    )
    if errors:
        result["first_errors"] = errors[:5]
    if explained:
        result["first_doubtful_alerts"] = explained
    return result


_RECORD_START = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
ERROR_LINES = 40  # of one record kept in the figures


def error_records(lines: Iterable[str]) -> list[str]:
    """The service log's error records, each with its traceback: a record begins at a
    line with a timestamp and takes the lines up to the next one. An error is an
    ERROR or CRITICAL record, or any record that carries a traceback (a warning that
    logged its exception, or Python's own report of an exception nobody caught)."""
    records: list[list[str]] = []
    for line in lines:
        if not records or _RECORD_START.match(line):
            records.append([line])
        else:
            records[-1].append(line)
    return [
        "\n".join(record[:ERROR_LINES])
        for record in records
        if " ERROR " in record[0]
        or " CRITICAL " in record[0]
        or any(line.startswith("Traceback") for line in record)
    ]


def _quiet() -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    _quiet()
    figures = asyncio.run(soak(Plan.of(120 if quick else 600)))
    label = "soak_short" if quick else "soak"
    return {
        f"{label}_posts_published": figure(figures["posts_published"], "posts"),
        f"{label}_posts_missing": figure(
            figures["posts_published"] - figures["posts_archived"], "posts"
        ),
        f"{label}_alerts_missing": figure(figures["alerts_missing"], "alerts"),
        f"{label}_alerts_duplicated": figure(figures["alerts_duplicated"], "alerts"),
        f"{label}_rss_mb_end": figure(
            figures["rss_mb_end"], "MB", baseline=figures["rss_mb_after_warmup"]
        ),
        f"{label}_settle_s": figure(figures["settle_s"], "s"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="2 minutes, drops every 30 s")
    parser.add_argument("--minutes", type=float, help="how long to load (default 10, short 2)")
    parser.add_argument("--seconds", type=float, help="how long to load, in seconds (smoke)")
    parser.add_argument("--drop-every", type=float, help="seconds between connection drops")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--keep", metavar="DIR", type=Path, help="keep the state (archive, sessions, log) in DIR"
    )
    args = parser.parse_args()
    seconds = args.seconds or (args.minutes or (2 if args.short else 10)) * 60
    drop_every = args.drop_every or (30.0 if args.short else None)
    _quiet()
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: not empty (the soak starts from a fresh archive)")
    figures = asyncio.run(soak(Plan.of(seconds, drop_every), seed=args.seed, keep=args.keep))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
