"""`chanwatch doctor`: check settings, session, database, disk and server; say how to fix."""

from __future__ import annotations

import asyncio
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config.settings import ConfigError, Settings, load_settings

DISK_FAIL_BYTES = 200 * 1024**2
DISK_WARN_BYTES = 2 * 1024**3
TELEGRAM_DC = ("149.154.167.51", 443)  # DC 2, where new sessions start
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # not fatal: printed, exit code unaffected

    def line(self) -> str:
        mark = "ok  " if self.ok else ("warn" if self.warning else "FAIL")
        text = f"[{mark}] {self.name}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix and not self.ok else "")


def _session_file(settings: Settings) -> Path:
    path = settings.session_path
    return path if path.suffix == ".session" else path.with_name(path.name + ".session")


def check_private_file(name: str, path: Path, missing_fix: str) -> Check:
    if not path.exists():
        return Check(name, False, f"{path} does not exist", missing_fix)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check(
            name,
            False,
            f"{path} has mode {mode:04o}: other users can read it",
            f"chmod 600 {path}",
        )
    return Check(name, True, f"{path} (mode {mode:04o})")


def check_env_file(path: Path) -> Check:
    """The env file holds the API hash and the bot token: nobody else may read it. A
    group may (the systemd install gives the service's group read access, 0640)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        return Check(
            "env file permissions",
            False,
            f"{path} has mode {mode:04o}: every user can read the API hash and bot token",
            f"chmod 600 {path}",
        )
    if mode & 0o070:
        return Check(
            "env file permissions",
            True,
            f"{path} (mode {mode:04o}: its group can read it)",
        )
    return Check("env file permissions", True, f"{path} (mode {mode:04o})")


def check_database(path: Path) -> list[Check]:
    from storage.db import SCHEMA_VERSION, DatabaseError, inspect_file

    if not path.exists():
        return [Check("database", True, f"{path} will be created on first run")]
    checks = [check_private_file("database permissions", path, "")]
    try:
        version, result = inspect_file(path)
    except DatabaseError as exc:
        return [
            *checks,
            Check(
                "database integrity",
                False,
                f"{path}: {exc}",
                "restore the latest backup (see README: Backups) or move the file aside",
            ),
        ]
    if result != "ok":
        checks.append(
            Check(
                "database integrity",
                False,
                f"quick_check: {result}",
                "stop chanwatch and restore the latest backup (see README: Backups)",
            )
        )
    else:
        checks.append(Check("database integrity", True, f"{path} passes quick_check"))
    if version > SCHEMA_VERSION:
        checks.append(
            Check(
                "database schema",
                False,
                f"version {version} is newer than this chanwatch ({SCHEMA_VERSION})",
                "upgrade chanwatch",
            )
        )
    else:
        checks.append(Check("database schema", True, f"version {version} of {SCHEMA_VERSION}"))
    return checks


async def check_postgres(url: str, settings: Settings | None = None) -> list[Check]:
    """The server answers, the schema version, and this role's rights on the archive."""
    from storage.db import SCHEMA_VERSION, StorageError
    from storage.pg import inspect, redact

    shown = redact(url)
    try:
        found = await inspect(url)
    except StorageError as exc:
        return [Check("database server", False, str(exc), "see the message")]
    checks = [Check("database server", True, f"PostgreSQL {found.server_version} at {shown}")]
    version = found.schema_version
    if version < 0:
        checks.append(
            Check("database schema", False, f"role {found.role!r} may not read it", "see below")
        )
    elif version > SCHEMA_VERSION:
        checks.append(
            Check(
                "database schema",
                False,
                f"version {version} is newer than this chanwatch ({SCHEMA_VERSION})",
                "upgrade chanwatch",
            )
        )
    elif version < SCHEMA_VERSION and not found.may_create:
        checks.append(
            Check(
                "database schema",
                False,
                f"version {version} of {SCHEMA_VERSION}, and role {found.role!r} may not "
                "create tables to migrate it",
                f"make {found.role} the database's owner (ALTER DATABASE ... OWNER TO "
                f"{found.role}) or run `chanwatch run` once as the owner",
            )
        )
    else:
        pending = " (migrated on the next run)" if version < SCHEMA_VERSION else ""
        checks.append(
            Check("database schema", True, f"version {version} of {SCHEMA_VERSION}{pending}")
        )
    if found.missing_rights:
        checks.append(
            Check(
                "database permissions",
                False,
                f"role {found.role!r} lacks " + ", ".join(found.missing_rights),
                f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {found.role}",
            )
        )
    else:
        checks.append(Check("database permissions", True, f"role {found.role!r} may write"))
    checks.extend(await _shared_work(url, settings))
    if not found.icu:
        checks.append(
            Check(
                "full-text search",
                False,
                "the server has no ICU collation (und-x-icu) for splitting words",
                "use a PostgreSQL built with ICU (Debian's postgresql package is)",
            )
        )
    return checks


async def _shared_work(url: str, settings: Settings | None) -> list[Check]:
    """Which watcher delivers the alerts of a shared PostgreSQL archive, and (with the
    settings) whether every configured channel is held by a live watcher."""
    from bot.cli.status import status
    from storage import leases
    from storage.db import DB_ERRORS, StorageError, open_database

    try:
        db = await open_database(url, readonly=True)
    except StorageError as exc:
        return [Check("delivery", False, f"cannot tell ({exc})", warning=True)]
    try:
        holders = await leases.holders(db)
        shares = await status(db, settings) if settings is not None else None
    except DB_ERRORS as exc:
        return [Check("delivery", False, f"cannot tell ({exc})", warning=True)]
    finally:
        await db.close()
    checks = []
    if not holders:
        checks.append(Check(
            "delivery", False, "no watcher delivers alerts now", "start `chanwatch run`",
            warning=True,
        ))  # fmt: skip
    else:
        who = ", ".join(f"watcher {h.watcher!r} (connected since {h.since})" for h in holders)
        checks.append(Check("delivery", True, f"alerts are delivered by {who}"))
    if shares is not None:
        alive = [w.name for w in shares.watchers if w.alive]
        held = sum(1 for who, _ in shares.holders.values() if who in alive)
        detail = f"{held} held by {len(alive)} live watcher(s), {len(shares.waiting)} waiting"
        if shares.waiting:
            checks.append(Check(
                "channels", False, detail,
                "start `chanwatch run` (`chanwatch status --channels` lists who holds what)",
                warning=True,
            ))  # fmt: skip
        else:
            checks.append(Check("channels", True, detail))
    return checks


def check_disk(path: Path) -> Check:
    folder = path.parent if path.parent.exists() else Path.cwd()
    free = shutil.disk_usage(folder).free
    gib = free / 1024**3
    if free < DISK_FAIL_BYTES:
        return Check("disk space", False, f"{gib:.2f} GiB free in {folder}", "free disk space")
    if free < DISK_WARN_BYTES:
        return Check(
            "disk space",
            False,
            f"only {gib:.2f} GiB free in {folder}",
            "free disk space",
            warning=True,
        )
    return Check("disk space", True, f"{gib:.1f} GiB free in {folder}")


async def check_reachable(host: str, port: int) -> Check:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        return Check(
            "server reachable",
            False,
            f"{host}:{port}: {exc.__class__.__name__}",
            "check the network/firewall, or CHANWATCH_SERVER",
        )
    return Check("server reachable", True, f"{host}:{port} accepts connections")


async def check_session(settings: Settings) -> Check:
    from bot.clients import NotLoggedIn, logged_in_account

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * 3):
            name, user_id = await logged_in_account(
                settings, _session_file(settings), request_timeout=CONNECT_TIMEOUT
            )
    except NotLoggedIn as exc:
        return Check("session valid", False, str(exc), "run `chanwatch login`")
    except (OSError, TimeoutError, ConnectionError, EOFError) as exc:
        return Check(
            "session valid",
            False,
            f"could not connect: {exc.__class__.__name__}",
            "see 'server reachable'",
        )
    return Check("session valid", True, f"logged in as {name} (id {user_id})")


async def run_checks(
    env_file: str | Path | None, load: Callable[..., Settings] = load_settings
) -> list[Check]:
    try:
        settings = load(env_file=env_file, need=frozenset({"user"}))
    except ConfigError as exc:
        return [
            Check("settings", False, problem, "edit .env (see .env.example)")
            for problem in exc.problems
        ]
    env_path = Path(env_file) if env_file is not None else None
    if env_path is not None and env_path.is_file():
        source = f"read {env_path.resolve()} and the environment"
    else:
        source = f"no env file at {env_path}; the environment only" if env_path else "environment"
    checks = [Check("settings", True, f"{len(settings.channels)} channels configured ({source})")]
    if env_path is not None and env_path.is_file():
        checks.append(check_env_file(env_path))
    if not settings.channels:
        checks.append(
            Check("channels", False, "none configured", "set CHANWATCH_CHANNELS", warning=True)
        )
    if settings.bot_token is None:
        checks.append(
            Check(
                "bot",
                False,
                "no CHANWATCH_BOT_TOKEN: alerts are off",
                "create a bot with BotFather",
                warning=True,
            )
        )
    session_file = _session_file(settings)
    checks.append(check_private_file("session file", session_file, "run `chanwatch login`"))
    if settings.bot_token is not None:
        from bot.alerts.bot_client import bot_session_path

        bot_session = bot_session_path(settings)
        if bot_session.exists():  # created by the first `chanwatch run` with a token
            checks.append(check_private_file("bot session file", bot_session, ""))
    if isinstance(settings.db_path, Path):
        checks.extend(check_database(settings.db_path))
        checks.append(check_disk(settings.db_path))
    else:  # the server's disk is the server's: doctor checks what this role can do there
        checks.extend(await check_postgres(settings.db_path, settings))
    host, port = (settings.server.host, settings.server.port) if settings.server else TELEGRAM_DC
    reachable = await check_reachable(host, port)
    checks.append(reachable)
    if reachable.ok and session_file.exists():
        checks.append(await check_session(settings))
    return checks


def report(checks: list[Check]) -> tuple[str, int]:
    text = "\n".join(check.line() for check in checks)
    failed = [c for c in checks if not c.ok and not c.warning]
    summary = f"\n{len(failed)} problem(s) found" if failed else "\nall checks passed"
    return text + summary, 1 if failed else 0
