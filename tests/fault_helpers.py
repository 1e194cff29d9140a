"""Running `chanwatch run` as a real process against the simulator, to kill it and look.

The service gets logged-in file sessions (user and bot) holding the simulator's
auth keys, as `chanwatch login` leaves them, and its settings from CHANWATCH_*
variables. Tests read the archive it writes through read-only connections (WAL
lets them in while it runs) and poll it with a short interval and an overall
timeout: the service is another process, so there is no event to wait on.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from telethon.sessions import SQLiteSession

from bot.simulator import SimMessage, Simulator, SimUser

TIMEOUT = 60
POLL = 0.05  # seconds between checks of another process's database
LINK = re.compile(r"https://t\.me/([A-Za-z0-9_]+)/(\d+)")


def logged_in_session(sim: Simulator, user: SimUser, path: Path) -> None:
    """A file session holding the simulator's auth key for `user`."""
    key = sim.session_for(user)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    session = SQLiteSession(str(path))
    session.set_dc(sim.dc_id, "127.0.0.1", sim.port)
    session.auth_key = key.auth_key
    session.save()
    session.close()
    os.chmod(path, 0o600)


def service_env(
    sim: Simulator,
    state: Path,
    channels: Iterable[str],
    *,
    monitor: SimUser,
    bot: SimUser | None = None,
    admins: Iterable[SimUser] = (),
    **extra: str,
) -> dict[str, str]:
    """CHANWATCH_* settings for a service against `sim`, with its sessions in `state`."""
    logged_in_session(sim, monitor, state / "user.session")
    if bot is not None:
        logged_in_session(sim, bot, state / "user-bot.session")
    key = state / "server.pem"
    key.write_text(sim.rsa_public_key_pem())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANWATCH_")}
    env.update(
        {
            "CHANWATCH_API_ID": "12345",
            "CHANWATCH_API_HASH": "0123456789abcdef0123456789abcdef",
            "CHANWATCH_SESSION": str(state / "user.session"),
            "CHANWATCH_DB": str(state / "archive.db"),
            "CHANWATCH_CHANNELS": ",".join(channels),
            "CHANWATCH_SERVER": f"{sim.dc_id}:127.0.0.1:{sim.port}",
            "CHANWATCH_SERVER_KEY": str(key),
            "CHANWATCH_LOG_LEVEL": "INFO",
        }
    )
    if bot is not None:
        assert bot.token is not None
        env["CHANWATCH_BOT_TOKEN"] = bot.token
        env["CHANWATCH_ADMINS"] = ",".join(str(a.id) for a in admins)
    env.update({f"CHANWATCH_{k.upper()}": v for k, v in extra.items()})
    return env


async def start(
    env: dict[str, str], *before: str, module: str = "bot", log: Path | None = None
) -> asyncio.subprocess.Process:
    """`python -m MODULE [BEFORE...] --env-file /dev/null run`, its stderr appended to `log`."""
    stderr = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-X",
            "faulthandler",
            "-m",
            module,
            *before,
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


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows from the archive another process writes; [] before the schema exists."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the schema is not created yet
        return []
    finally:
        conn.close()


def scalar(db: Path, sql: str, params: tuple = ()) -> int:
    rows = query(db, sql, params)
    return int(rows[0][0]) if rows and rows[0][0] is not None else -1


async def until(check, proc: asyncio.subprocess.Process | None = None, *, within=TIMEOUT):
    """Poll `check()` (a plain function) until it is true; fail if the process exits."""
    async with asyncio.timeout(within):
        while not check():
            if proc is not None and proc.returncode is not None:
                raise AssertionError(f"the service exited with {proc.returncode}")
            await asyncio.sleep(POLL)  # poll interval: the state lives in another process


async def ended(proc: asyncio.subprocess.Process, within: float = TIMEOUT) -> int:
    async with asyncio.timeout(within):
        return await proc.wait()


def alerted_posts(messages: Iterable[SimMessage], username: str) -> Counter[int]:
    """How many times each post of `username` was linked in the bot's messages."""
    seen: Counter[int] = Counter()
    for message in messages:
        links = set()
        for found in LINK.finditer(message.text or ""):
            links.add((found.group(1).lower(), int(found.group(2))))
        for entity in message.entities or []:
            url = getattr(entity, "url", None) or ""
            if found := LINK.search(url):
                links.add((found.group(1).lower(), int(found.group(2))))
        for name, msg_id in links:
            if name == username.lower():
                seen[msg_id] += 1
    return seen
