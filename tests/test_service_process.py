"""`chanwatch login` and `chanwatch run` as real processes against the simulator.

The login performs the real auth-key handshake (the simulator's RSA key is
given through CHANWATCH_SERVER_KEY), asks for the code and the 2FA password,
and leaves a session file with mode 0600 that `run` then uses. SIGTERM stops
`run` cleanly with everything archived.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import stat
import sys
from pathlib import Path

from bot.simulator import Simulator

TIMEOUT = 30


def _env(sim: Simulator, tmp_path: Path, channels: str) -> dict[str, str]:
    key = tmp_path / "server.pem"
    key.write_text(sim.rsa_public_key_pem())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANWATCH_")}
    env.update(
        {
            "CHANWATCH_API_ID": "12345",
            "CHANWATCH_API_HASH": "0123456789abcdef0123456789abcdef",
            "CHANWATCH_SESSION": str(tmp_path / "state" / "user.session"),
            "CHANWATCH_DB": str(tmp_path / "state" / "archive.db"),
            "CHANWATCH_CHANNELS": channels,
            "CHANWATCH_SERVER": f"{sim.dc_id}:127.0.0.1:{sim.port}",
            "CHANWATCH_SERVER_KEY": str(key),
            "CHANWATCH_LOG_LEVEL": "DEBUG",
        }
    )
    return env


async def _chanwatch(
    env: dict[str, str], *args: str, stdin: bool = False
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "faulthandler",
        "-m",
        "bot",
        "--env-file",
        os.devnull,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _datagrams(sock: socket.socket) -> list[str]:
    """Everything the service told systemd, one field per item."""
    fields: list[str] = []
    with sock:
        while True:
            try:
                fields.extend(sock.recv(4096).decode().splitlines())
            except BlockingIOError:
                return fields


def _count(db: Path, sql: str) -> int:
    """Read the archive the service writes (WAL lets a reader in while it runs)."""
    if not db.exists():
        return -1
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError:  # schema not created yet
            return -1


async def _until(db: Path, sql: str, expected: int, proc: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(TIMEOUT):
        while _count(db, sql) != expected:
            if proc.returncode is not None:
                raise AssertionError(f"service exited with {proc.returncode}")
            await asyncio.sleep(0.05)  # poll interval of a condition check on another process


async def test_login_then_run_then_sigterm(sim: Simulator, tmp_path: Path) -> None:
    sim.add_user(phone="+15550123", first_name="Analyst", password="correct horse")
    channel = sim.add_channel(username="rdk_channel", title="РДК")
    sim.post(channel, "пост до запуска")
    env = _env(sim, tmp_path, "@rdk_channel")

    login = await _chanwatch(env, "login", "--phone", "+15550123", stdin=True)
    async with asyncio.timeout(TIMEOUT):
        out, err = await login.communicate(b"12345\ncorrect horse\n")
    assert login.returncode == 0, err.decode()
    assert "logged in as Analyst" in out.decode()
    session = tmp_path / "state" / "user.session"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert "correct horse" not in err.decode() + out.decode()

    db = tmp_path / "state" / "archive.db"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0chanwatch-test-" + os.urandom(6).hex())
    notify.setblocking(False)
    env["NOTIFY_SOCKET"] = "@" + notify.getsockname()[1:].decode()
    env["WATCHDOG_USEC"] = "1000000"
    run = await _chanwatch(env, "run")
    try:
        await _until(db, "SELECT count(*) FROM posts", 1, run)
        await _until(db, "SELECT count(*) FROM channels WHERE active = 1", 1, run)
        await sim.wait_until(lambda: bool(channel.members), timeout=TIMEOUT)
        for i in range(20):
            sim.post(channel, f"живой пост {i}")
        await _until(db, "SELECT count(*) FROM posts", 21, run)
        # on SQLite the PostgreSQL driver (~4 MiB) is never loaded
        maps = await asyncio.to_thread(Path(f"/proc/{run.pid}/maps").read_text)
        assert "asyncpg" not in maps
    finally:
        if run.returncode is None:
            run.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            _, err = await run.communicate()
    log = err.decode()
    assert run.returncode == 0, log
    told = _datagrams(notify)
    assert "READY=1" in told and "STOPPING=1" in told and "WATCHDOG=1" in told
    status = next(line for line in told if line.startswith("STATUS="))
    assert "1 channels" in status and "alerts queued" in status
    assert "stopping after in-flight writes" in log
    assert "0123456789abcdef0123456789abcdef" not in log
    assert _count(db, "SELECT count(*) FROM posts") == 21
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_run_without_login_says_what_to_do(sim: Simulator, tmp_path: Path) -> None:
    sim.add_channel(username="rdk_channel", title="РДК")
    run = await _chanwatch(_env(sim, tmp_path, "@rdk_channel"), "run")
    async with asyncio.timeout(TIMEOUT):
        _, err = await run.communicate()
    assert run.returncode == 2
    assert "chanwatch login" in err.decode()
    assert "Traceback" not in err.decode()


async def test_bad_settings_exit_with_every_problem(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANWATCH_")}
    env.update({"CHANWATCH_API_ID": "x", "CHANWATCH_CHANNELS": "https://t.me/+abc"})
    proc = await _chanwatch(env, "run")
    async with asyncio.timeout(TIMEOUT):
        _, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 2
    assert "CHANWATCH_API_ID" in text and "CHANWATCH_API_HASH is missing" in text
    assert "invite link" in text and "Traceback" not in text
