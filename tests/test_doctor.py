"""`chanwatch doctor` against the simulator, a real session file and real databases."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from telethon.sessions import SQLiteSession

from bot.cli.doctor import report, run_checks
from bot.simulator import Simulator
from storage.db import open_database


def _env_file(tmp_path: Path, sim: Simulator, **extra: str) -> Path:
    values = {
        "CHANWATCH_API_ID": "1",
        "CHANWATCH_API_HASH": "0" * 32,
        "CHANWATCH_SESSION": str(tmp_path / "user.session"),
        "CHANWATCH_DB": str(tmp_path / "archive.db"),
        "CHANWATCH_CHANNELS": "@rdk_channel",
        "CHANWATCH_BOT_TOKEN": "123456:ABCDEFGHIJKLMNOP",
        "CHANWATCH_SERVER": f"{sim.dc_id}:127.0.0.1:{sim.port}",
    }
    values.update(extra)
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return env


def _logged_in_session(sim: Simulator, user, path: Path) -> None:
    """A file session holding the simulator's auth key for `user`, as login leaves it."""
    key = sim.session_for(user)
    session = SQLiteSession(str(path))
    session.set_dc(sim.dc_id, "127.0.0.1", sim.port)
    session.auth_key = key.auth_key
    session.save()
    session.close()
    os.chmod(path, 0o600)


def _by_name(checks) -> dict[str, list]:
    found: dict[str, list] = {}
    for check in checks:
        found.setdefault(check.name, []).append(check)
    return found


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CHANWATCH_"):
            monkeypatch.delenv(key)


async def test_healthy_setup_passes(sim: Simulator, tmp_path: Path) -> None:
    user = sim.add_user(phone="+15550001", first_name="Analyst")
    _logged_in_session(sim, user, tmp_path / "user.session")
    db = await open_database(tmp_path / "archive.db")  # created 0600 whatever the umask
    await db.close()
    env = _env_file(tmp_path, sim)
    os.chmod(env, 0o600)
    checks = await run_checks(env)
    text, code = report(checks)
    assert code == 0, text
    assert "logged in as Analyst" in text and "passes quick_check" in text


async def test_each_failure_comes_with_a_fix(sim: Simulator, tmp_path: Path) -> None:
    sim.add_user(phone="+15550001", first_name="Analyst")
    session = tmp_path / "user.session"
    SQLiteSession(str(session)).close()  # exists, never logged in, world-readable
    os.chmod(session, 0o644)
    (tmp_path / "archive.db").write_bytes(b"garbage, not a database" * 100)
    checks = _by_name(await run_checks(_env_file(tmp_path, sim)))
    assert "chmod 600" in checks["session file"][0].fix
    assert not checks["session valid"][0].ok and "chanwatch login" in checks["session valid"][0].fix
    assert (
        not checks["database integrity"][0].ok and "backup" in checks["database integrity"][0].fix
    )
    _, code = report([c for group in checks.values() for c in group])
    assert code == 1


async def test_unreachable_server_and_bad_settings(tmp_path: Path) -> None:
    with sqlite3.connect(":memory:"):
        pass
    sim_port = _free_port()
    env = tmp_path / ".env"
    env.write_text(
        f"CHANWATCH_API_ID=1\nCHANWATCH_API_HASH={'0' * 32}\n"
        f"CHANWATCH_SERVER=2:127.0.0.1:{sim_port}\nCHANWATCH_DB={tmp_path / 'a.db'}\n"
    )
    checks = _by_name(await run_checks(env))
    assert not checks["server reachable"][0].ok
    bad = tmp_path / "bad.env"
    bad.write_text("CHANWATCH_API_ID=abc\n")
    problems = await run_checks(bad)
    assert {c.name for c in problems} == {"settings"} and len(problems) == 2
    assert all(not c.ok and c.fix for c in problems)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
