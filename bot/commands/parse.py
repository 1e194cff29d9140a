"""Parsing command arguments; every failure is a UsageError with a one-line reason."""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from zoneinfo import ZoneInfo, available_timezones

from bot.alerts.policy import parse_hhmm
from bot.commands.base import UsageError

_DURATION = re.compile(r"(\d+)\s*(d|h|m|min|mins|minutes?|hours?|days?)", re.IGNORECASE)
_UNITS = {"d": 86400, "h": 3600, "m": 60}


def duration(text: str, *, usage: str) -> timedelta:
    """`2h`, `90m`, `1d`, `1h30m` -> timedelta (at most 30 days)."""
    compact = text.strip().replace(" ", "")
    if not compact:
        raise UsageError(usage)
    seconds = 0
    pos = 0
    for m in _DURATION.finditer(compact):
        if m.start() != pos:
            break
        seconds += int(m.group(1)) * _UNITS[m.group(2)[0].lower()]
        pos = m.end()
    if pos != len(compact) or seconds <= 0:
        raise UsageError(f"{text.strip()!r} is not a duration like 30m, 2h or 1d. {usage}")
    if seconds > 30 * 86400:
        raise UsageError("at most 30 days")
    return timedelta(seconds=seconds)


def time_range(text: str, *, usage: str) -> tuple[str, str]:
    """`23:00-07:00` -> ("23:00", "07:00")."""
    start, sep, end = text.strip().partition("-")
    if not sep:
        raise UsageError(usage)
    try:
        a, b = parse_hhmm(start), parse_hhmm(end)
    except ValueError as exc:
        raise UsageError(f"{exc}. {usage}") from None
    if a == b:
        raise UsageError("the start and the end of quiet hours are the same")
    return a.strftime("%H:%M"), b.strftime("%H:%M")


def hhmm(text: str, *, usage: str) -> str:
    try:
        return parse_hhmm(text).strftime("%H:%M")
    except ValueError as exc:
        raise UsageError(f"{exc}. {usage}") from None


_ZONES: dict[str, str] = {}


def zone_name(text: str, *, usage: str) -> str:
    """A IANA time zone name, case-insensitive (`europe/kyiv` -> `Europe/Kyiv`)."""
    name = text.strip()
    if not name:
        raise UsageError(usage)
    if not _ZONES:
        _ZONES.update({z.lower(): z for z in available_timezones()})
    found = _ZONES.get(name.lower())
    if found is None:
        # a bare city: Kyiv -> Europe/Kyiv
        matches = sorted(z for z in _ZONES.values() if z.lower().endswith("/" + name.lower()))
        found = matches[0] if len(matches) == 1 else None
    if found is None:
        raise UsageError(f"unknown time zone {name!r}; use a name like Europe/Kyiv or UTC")
    ZoneInfo(found)
    return found


def words(text: str) -> list[str]:
    """Split arguments, keeping "quoted phrases" together."""
    try:
        return shlex.split(text)
    except ValueError:
        raise UsageError("unbalanced quotes") from None
