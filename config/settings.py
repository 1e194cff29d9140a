"""Settings from the environment and `.env`; every problem reported at once.

Values in the process environment win over `.env`. Secrets (api hash, bot
token) never appear in an error message or a log line.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values

from config.database_url import check_url

Mode = Literal["live", "poll"]
PREFIX = "CHANWATCH_"
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
CATCHUP_CONCURRENCY_MAX = 64
LEASE_SECONDS_MIN = 2

_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
_LINK = re.compile(r"^(?:https?://)?(?:www\.)?(?:t|telegram)\.(?:me|dog)/(?:s/)?([^/?#]+)/?$")
_TOKEN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{10,}$")
_API_HASH = re.compile(r"^[0-9a-fA-F]{32}$")
_BACKFILL = re.compile(r"^(\d+)\s*([dD]?)$")
_AGE = re.compile(r"^(\d+)\s*([mhd])$", re.IGNORECASE)
_AGE_UNITS = {"m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)\s*([smhd])$", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, **_AGE_UNITS}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_OFF = ("off", "none", "0")
MEDIA_KINDS = frozenset(
    {"photo", "video", "round", "animation", "document", "audio", "voice", "sticker"}
)


class ConfigError(Exception):
    """Every problem found in the settings, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join("  - " + p for p in problems))


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A configured channel: a username (lower case, no @) or a numeric id."""

    ref: str | int
    mode: Mode = "live"

    @property
    def label(self) -> str:
        return "@" + self.ref if isinstance(self.ref, str) else str(self.ref)


@dataclass(frozen=True, slots=True)
class ServerAddress:
    dc_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Backfill:
    """How far back a channel seen for the first time is fetched."""

    posts: int = 100
    days: int | None = None


@dataclass(frozen=True, slots=True)
class JobSettings:
    """The scheduled jobs of the watcher (see README: Scheduled jobs). None = off."""

    reconcile_every: timedelta | None = timedelta(minutes=15)
    reconcile_depth: int = 100
    metrics_every: timedelta | None = timedelta(hours=1)
    metrics_window: timedelta = timedelta(hours=48)
    poll_fastest: timedelta = timedelta(minutes=1)
    poll_slowest: timedelta = timedelta(minutes=30)
    poll_budget: int = 20  # requests per minute across all polled channels
    media_download: bool = False
    media_kinds: frozenset[str] = frozenset({"photo", "video"})
    media_max_size: int = 20 * 1024**2
    media_per_minute: int = 10
    media_retention: timedelta | None = None
    backup_dir: Path | None = None  # None: "backups" next to the database
    backup_keep: int = 7  # 0: no backups
    backup_at: time = time(3, 0)  # UTC


@dataclass(frozen=True, slots=True)
class Settings:
    api_id: int | None = None
    api_hash: str | None = field(default=None, repr=False)
    session_path: Path = Path("data/user.session")
    bot_token: str | None = field(default=None, repr=False)
    admin_ids: frozenset[int] = frozenset()
    db_path: Path | str = Path("data/chanwatch.db")  # a SQLite file, or a postgresql:// URL
    media_dir: Path = Path("data/media")
    channels: tuple[ChannelSpec, ...] = ()
    log_level: str = "INFO"
    # This process's name among several watchers sharing one PostgreSQL archive.
    watcher: str = field(default_factory=lambda: socket.gethostname() or "chanwatch")
    # Sharing the channels among watchers on one PostgreSQL archive: a watcher that has
    # not renewed its lease for this long is taken for dead and its channels taken over.
    lease_seconds: int = 60
    # Channels this account joins at most (Telegram's limit is about 500); the rest of
    # its share is polled.
    join_limit: int = 500
    server: ServerAddress | None = None
    server_key: str | None = field(default=None, repr=False)
    backfill: Backfill = Backfill()
    flood_sleep_threshold: int = 60
    # Channels resolved and caught up at once at start and after a reconnect.
    catchup_concurrency: int = 4
    # Catch-up posts older than this are archived without alerting (None: always alert).
    alert_max_age: timedelta | None = timedelta(hours=12)
    jobs: JobSettings = JobSettings()
    # Processes for detection on bulk paths (catch-up, import, redetect); None: one per core.
    detection_workers: int | None = None
    # Memory for the word caches of detection, in MiB.
    cache_mb: int = 16

    @property
    def backup_dir(self) -> Path:
        base = self.db_path.parent if isinstance(self.db_path, Path) else Path("data")
        return self.jobs.backup_dir or base / "backups"


def parse_channel(text: str) -> ChannelSpec:
    """Parse `@name`, `name`, a t.me link or a numeric id, with optional `:live`/`:poll`."""
    raw = text.strip()
    mode: Mode = "live"
    head, sep, tail = raw.rpartition(":")
    if sep and tail.strip().lower() in ("live", "poll"):
        raw, mode = head.strip(), tail.strip().lower()  # type: ignore[assignment]
    if re.fullmatch(r"-?\d+", raw):
        number = int(raw)
        if number < 0:  # bot-API style -100<id>
            digits = str(-number)
            number = int(digits[3:]) if digits.startswith("100") and len(digits) > 3 else -number
        if number <= 0:
            raise ValueError(f"{text!r} is not a valid channel id")
        return ChannelSpec(number, mode)
    link = _LINK.match(raw)
    name = link.group(1) if link else raw.removeprefix("@")
    if name.startswith("+") or name.lower() == "joinchat":
        raise ValueError(f"{text!r} is an invite link; give the channel's username or id")
    if not _USERNAME.match(name):
        raise ValueError(f"{text!r} is not a channel username, t.me link or numeric id")
    return ChannelSpec(name.lower(), mode)


def _parse_server(text: str) -> ServerAddress:
    parts = text.strip().rsplit(":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit() or not parts[1]:
        raise ValueError("must be DC_ID:HOST:PORT, e.g. 2:149.154.167.40:443")
    port = int(parts[2])
    if not 0 < port < 65536:
        raise ValueError("port must be between 1 and 65535")
    return ServerAddress(int(parts[0]), parts[1], port)


def _read_server_key(path: Path) -> str:
    import rsa  # Telethon's own dependency; validates the PEM the way Telethon will load it

    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc.__class__.__name__}") from None
    try:
        rsa.PublicKey.load_pkcs1(pem.encode())
    except Exception:  # rsa raises several unrelated types for bad input
        raise ValueError(f"{path} is not a PEM RSA public key (PKCS#1)") from None
    return pem


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
    need: frozenset[str] = frozenset(),
) -> Settings:
    """Build Settings; `need` may hold "user" (api id/hash) and "bot" (token, admins)."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = values.get(PREFIX + name)
        return value.strip() if value is not None and value.strip() != "" else None

    problems: list[str] = []
    kw: dict[str, object] = {}

    if (api_id := get("API_ID")) is not None:
        if api_id.isdigit() and int(api_id) > 0:
            kw["api_id"] = int(api_id)
        else:
            problems.append("CHANWATCH_API_ID must be a positive number (from my.telegram.org)")
    elif "user" in need:
        problems.append("CHANWATCH_API_ID is missing (from my.telegram.org)")

    if (api_hash := get("API_HASH")) is not None:
        if _API_HASH.match(api_hash):
            kw["api_hash"] = api_hash
        else:
            problems.append("CHANWATCH_API_HASH must be 32 hexadecimal characters")
    elif "user" in need:
        problems.append("CHANWATCH_API_HASH is missing (from my.telegram.org)")

    if (token := get("BOT_TOKEN")) is not None:
        if _TOKEN.match(token):
            kw["bot_token"] = token
        else:
            problems.append("CHANWATCH_BOT_TOKEN is not a bot token (123456:ABC... from BotFather)")
    elif "bot" in need:
        problems.append("CHANWATCH_BOT_TOKEN is missing (create a bot with BotFather)")

    if (admins := get("ADMINS")) is not None:
        ids: set[int] = set()
        for item in re.split(r"[,\s]+", admins):
            if not item:
                continue
            if item.isdigit() and int(item) > 0:
                ids.add(int(item))
            else:
                problems.append(f"CHANWATCH_ADMINS: {item!r} is not a numeric Telegram user id")
        kw["admin_ids"] = frozenset(ids)
    elif "bot" in need:
        problems.append("CHANWATCH_ADMINS is missing (numeric user ids of the admins)")

    for name, key in (("SESSION", "session_path"), ("DB", "db_path"), ("MEDIA_DIR", "media_dir")):
        if (path := get(name)) is not None:
            kw[key] = Path(path).expanduser()
    if (db := get("DB")) is not None and "://" in db:
        if problem := _database_url_problem(db):
            problems.append(f"CHANWATCH_DB: {problem}")
        else:
            kw["db_path"] = db

    if (channels := get("CHANNELS")) is not None:
        specs: list[ChannelSpec] = []
        for item in re.split(r"[,\s]+", channels):
            if not item:
                continue
            try:
                spec = parse_channel(item)
            except ValueError as exc:
                problems.append(f"CHANWATCH_CHANNELS: {exc}")
                continue
            if spec.ref not in {s.ref for s in specs}:
                specs.append(spec)
        kw["channels"] = tuple(specs)

    if (level := get("LOG_LEVEL")) is not None:
        if level.upper() in LOG_LEVELS:
            kw["log_level"] = level.upper()
        else:
            problems.append(f"CHANWATCH_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

    if (watcher := get("WATCHER")) is not None:
        if re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", watcher):
            kw["watcher"] = watcher
        else:
            problems.append(
                "CHANWATCH_WATCHER: use 1-40 letters, digits, '.', '_' or '-' (e.g. a, b)"
            )

    if (server := get("SERVER")) is not None:
        try:
            kw["server"] = _parse_server(server)
        except ValueError as exc:
            problems.append(f"CHANWATCH_SERVER {exc}")
    if (key_file := get("SERVER_KEY")) is not None:
        try:
            kw["server_key"] = _read_server_key(Path(key_file).expanduser())
        except ValueError as exc:
            problems.append(f"CHANWATCH_SERVER_KEY: {exc}")
        if server is None:
            problems.append("CHANWATCH_SERVER_KEY is set but CHANWATCH_SERVER is not")

    if (backfill := get("BACKFILL")) is not None:
        match = _BACKFILL.match(backfill)
        if match is None:
            problems.append("CHANWATCH_BACKFILL must be a number of posts (200) or of days (7d)")
        elif match.group(2):
            kw["backfill"] = Backfill(posts=1_000_000, days=int(match.group(1)))
        else:
            kw["backfill"] = Backfill(posts=int(match.group(1)))

    if (flood := get("FLOOD_SLEEP_THRESHOLD")) is not None:
        if flood.isdigit():
            kw["flood_sleep_threshold"] = int(flood)
        else:
            problems.append("CHANWATCH_FLOOD_SLEEP_THRESHOLD must be a number of seconds")

    if (concurrency := get("CATCHUP_CONCURRENCY")) is not None:
        if concurrency.isdigit() and 1 <= int(concurrency) <= CATCHUP_CONCURRENCY_MAX:
            kw["catchup_concurrency"] = int(concurrency)
        else:
            problems.append(
                "CHANWATCH_CATCHUP_CONCURRENCY must be a whole number from 1 to "
                f"{CATCHUP_CONCURRENCY_MAX}"
            )

    for name, key, low, high in (
        ("LEASE_SECONDS", "lease_seconds", LEASE_SECONDS_MIN, 3600),
        ("JOIN_LIMIT", "join_limit", 0, 1000),
    ):
        if (value := get(name)) is not None:
            if value.isdigit() and low <= int(value) <= high:
                kw[key] = int(value)
            else:
                problems.append(f"CHANWATCH_{name} must be a whole number from {low} to {high}")

    if (age := get("ALERT_MAX_AGE")) is not None:
        match = _AGE.match(age)
        if age.lower() in ("off", "none"):
            kw["alert_max_age"] = None
        elif match is None:
            problems.append(
                "CHANWATCH_ALERT_MAX_AGE must be a duration like 90m, 12h or 2d, or off"
            )
        else:
            seconds = int(match.group(1)) * _AGE_UNITS[match.group(2).lower()]
            kw["alert_max_age"] = timedelta(seconds=seconds)

    if (workers := get("DETECTION_WORKERS")) is not None:
        if workers.lower() == "auto":
            kw["detection_workers"] = None
        elif workers.isdigit() and int(workers) <= 64:
            kw["detection_workers"] = int(workers)
        else:
            problems.append(
                "CHANWATCH_DETECTION_WORKERS must be auto or a number of processes (0 = none)"
            )

    if (cache := get("CACHE_MB")) is not None:
        if cache.isdigit() and int(cache) >= 8:
            kw["cache_mb"] = int(cache)
        else:
            problems.append("CHANWATCH_CACHE_MB must be a number of MiB, at least 8")

    kw["jobs"] = _job_settings(get, problems)

    if problems:
        raise ConfigError(problems)
    return Settings(**kw)  # type: ignore[arg-type]


def _database_url_problem(url: str) -> str | None:
    """What is wrong with a CHANWATCH_DB URL (only postgresql:// is one), or None."""
    return check_url(url)


def _duration(text: str) -> timedelta | None:
    match = _DURATION.match(text)
    if match is None:
        return None
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()])


def _job_settings(get: Callable[[str], str | None], problems: list[str]) -> JobSettings:
    kw: dict[str, object] = {}

    def duration(name: str, key: str, *, can_be_off: bool) -> None:
        text = get(name)
        if text is None:
            return
        if can_be_off and text.lower() in _OFF:
            kw[key] = None
            return
        value = _duration(text)
        if value is None or value <= timedelta(0):
            off = ", or off" if can_be_off else ""
            problems.append(f"CHANWATCH_{name} must be a duration like 30s, 15m, 2h or 7d{off}")
        else:
            kw[key] = value

    def count(name: str, key: str, *, minimum: int) -> None:
        text = get(name)
        if text is None:
            return
        if text.isdigit() and int(text) >= minimum:
            kw[key] = int(text)
        else:
            problems.append(f"CHANWATCH_{name} must be a whole number of at least {minimum}")

    duration("RECONCILE_INTERVAL", "reconcile_every", can_be_off=True)
    count("RECONCILE_DEPTH", "reconcile_depth", minimum=1)
    duration("METRICS_INTERVAL", "metrics_every", can_be_off=True)
    duration("METRICS_WINDOW", "metrics_window", can_be_off=False)
    duration("POLL_MIN_INTERVAL", "poll_fastest", can_be_off=False)
    duration("POLL_MAX_INTERVAL", "poll_slowest", can_be_off=False)
    count("POLL_BUDGET", "poll_budget", minimum=1)
    defaults = JobSettings()
    fastest = kw.get("poll_fastest", defaults.poll_fastest)
    slowest = kw.get("poll_slowest", defaults.poll_slowest)
    if fastest > slowest:  # type: ignore[operator]
        problems.append("CHANWATCH_POLL_MIN_INTERVAL is longer than CHANWATCH_POLL_MAX_INTERVAL")

    if (download := get("MEDIA_DOWNLOAD")) is not None:
        if download.lower() in ("on", "yes", "true", "1"):
            kw["media_download"] = True
        elif download.lower() in ("off", "no", "false", "0"):
            kw["media_download"] = False
        else:
            problems.append("CHANWATCH_MEDIA_DOWNLOAD must be on or off")
    if (kinds := get("MEDIA_KINDS")) is not None:
        wanted = {k.lower() for k in re.split(r"[,\s]+", kinds) if k}
        if unknown := wanted - MEDIA_KINDS:
            problems.append(
                f"CHANWATCH_MEDIA_KINDS: unknown {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(MEDIA_KINDS))})"
            )
        elif not wanted:
            problems.append("CHANWATCH_MEDIA_KINDS names no kind of media")
        else:
            kw["media_kinds"] = frozenset(wanted)
    if (size := get("MEDIA_MAX_SIZE")) is not None:
        match = _SIZE.match(size)
        if match is None or float(match.group(1)) <= 0:
            problems.append("CHANWATCH_MEDIA_MAX_SIZE must be a size like 500K, 20M or 2G")
        else:
            kw["media_max_size"] = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    count("MEDIA_RATE", "media_per_minute", minimum=1)
    duration("MEDIA_RETENTION", "media_retention", can_be_off=True)

    if (backup_dir := get("BACKUP_DIR")) is not None:
        kw["backup_dir"] = Path(backup_dir).expanduser()
    count("BACKUP_KEEP", "backup_keep", minimum=0)
    if (at := get("BACKUP_TIME")) is not None:
        match = _CLOCK.match(at)
        if match is None:
            problems.append("CHANWATCH_BACKUP_TIME must be a UTC time of day like 03:30")
        else:
            kw["backup_at"] = time(int(match.group(1)), int(match.group(2)))
    return JobSettings(**kw)  # type: ignore[arg-type]
