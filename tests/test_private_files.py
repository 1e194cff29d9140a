"""The archive's files are owner-only whatever the umask; temporary files are created
exclusively and never follow a planted link; doctor checks the env and bot session."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.doctor import run_checks
from storage import export, private
from storage.db import open_database
from tests.test_export import build


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_database_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "chanwatch.db"
    db = await open_database(path)
    await db.execute("CREATE TABLE t (x)")  # something in the WAL
    for name in ("chanwatch.db", "chanwatch.db-wal", "chanwatch.db-shm"):
        assert mode(path.with_name(name)) == 0o600, name
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    await db.close()


async def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "chanwatch.db"
    db = await open_database(path)
    await db.close()
    os.chmod(path, 0o644)
    db = await open_database(path)
    assert mode(path) == 0o600
    await db.close()


async def test_exports_and_manifests_are_owner_only(tmp_path: Path) -> None:
    db = await build(tmp_path / "archive.db")
    out = tmp_path / "out.jsonl"
    result = await export.export_to_file(db, export.Selection(), "jsonl", out, manifest=True)
    await db.close()
    assert mode(out) == 0o600 and result.manifest is not None and mode(result.manifest) == 0o600


@pytest.mark.parametrize("planted", ["out.jsonl.partial", "out.jsonl.manifest.json.partial"])
async def test_a_planted_symlink_is_not_followed(tmp_path: Path, planted: str) -> None:
    db = await build(tmp_path / "archive.db")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / planted).symlink_to(victim)
    out = tmp_path / "out.jsonl"
    with pytest.raises(FileExistsError, match="not a regular file"):
        await export.export_to_file(db, export.Selection(), "jsonl", out, manifest=True)
    await db.close()
    assert victim.read_text() == "precious"  # the link's target was not written
    assert not (tmp_path / "out.jsonl.manifest.json").exists()


def test_a_leftover_partial_file_is_replaced_and_a_link_refused(tmp_path: Path) -> None:
    leftover = tmp_path / "x.partial"
    leftover.write_text("from a crash")
    with private.replace_partial(leftover) as sink:
        sink.write(b"new")
    assert leftover.read_bytes() == b"new" and mode(leftover) == 0o600
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "y.partial"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        private.replace_partial(link)
    with pytest.raises(FileExistsError):
        private.create_exclusive(target)
    assert target.read_text() == "keep"


def test_media_folders_are_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "media" / "ab"
    private.make_dir(folder)
    assert mode(folder) == 0o700 and mode(folder.parent) == 0o700


async def test_doctor_checks_the_env_file_and_bot_session_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("CHANWATCH_"):
            monkeypatch.delenv(key)
    env = tmp_path / ".env"
    env.write_text(
        f"CHANWATCH_API_ID=1\nCHANWATCH_API_HASH={'0' * 32}\n"
        f"CHANWATCH_SESSION={tmp_path / 'user.session'}\nCHANWATCH_DB={tmp_path / 'a.db'}\n"
        "CHANWATCH_BOT_TOKEN=123456:ABCDEFGHIJKLMNOP\nCHANWATCH_SERVER=2:127.0.0.1:1\n"
    )
    os.chmod(env, 0o644)
    (tmp_path / "user-bot.session").write_bytes(b"")
    os.chmod(tmp_path / "user-bot.session", 0o644)
    checks = {c.name: c for c in await run_checks(env)}
    assert str(env.resolve()) in checks["settings"].detail
    assert not checks["env file permissions"].ok
    assert checks["env file permissions"].fix == f"chmod 600 {env}"
    assert not checks["bot session file"].ok and "0644" in checks["bot session file"].detail
    os.chmod(env, 0o600)
    os.chmod(tmp_path / "user-bot.session", 0o600)
    checks = {c.name: c for c in await run_checks(env)}
    assert checks["env file permissions"].ok and checks["bot session file"].ok
