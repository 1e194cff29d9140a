"""Logging through loguru: plain lines for journald, colours on a terminal. What
libraries log through the standard library (Telethon, asyncio) goes the same way."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

_TERMINAL = (
    "<green>{time:YYYY-MM-DD HH:mm:ss}</green> <level>{level: <7}</level> "
    "<cyan>{name}</cyan> {message} <dim>{extra}</dim>"
)
_JOURNAL = "{level: <7} {name} {message} {extra}"
FILE_FORMAT = "{time:YYYY-MM-DDTHH:mm:ss.SSSZZ} " + _JOURNAL


def _priority(level: int) -> int:
    """The syslog priority of a loguru level number (journald reads it from the
    `<N>` that begins a line): critical 2, error 3, warning 4, info 6, debug 7."""
    if level >= 50:
        return 2
    if level >= 40:
        return 3
    if level >= 30:
        return 4
    return 6 if level >= 20 else 7


def journal_format(record: Record) -> str:
    """A line for journald: its priority first, so that `journalctl -p warning` finds
    warnings (journald stamps the time itself)."""
    return f"\\<{_priority(record['level'].no)}>{_JOURNAL}\n{{exception}}"


def under_systemd() -> bool:
    return "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ


class _ToLoguru(logging.Handler):
    """A standard-library record as a loguru record of the same level, named after
    its logger. Without it Python prints such records bare on stderr (no time, no
    level; "Task exception was never retrieved" among them), and to no other sink."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.patch(lambda r: r.update(name=record.name)).opt(exception=record.exc_info).log(
            level, "{}", record.getMessage()
        )


def route_standard_logging(level: str) -> None:
    """Library records at `level` and above, at INFO at the least: Telethon's DEBUG
    is every packet."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ToLoguru)]:
        root.removeHandler(handler)
    root.addHandler(_ToLoguru())
    number = logging.getLevelName(level.upper())  # loguru's own (TRACE, SUCCESS): a name
    root.setLevel(max(number, logging.INFO) if isinstance(number, int) else logging.INFO)


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    route_standard_logging(level)
    logger.remove()
    journal = under_systemd()
    logger.add(
        sys.stderr,
        level=level,
        format=journal_format if journal else _TERMINAL,
        colorize=not journal and sys.stderr.isatty(),
        backtrace=False,
        diagnose=False,  # variable values in tracebacks could include secrets
    )
    if log_file:
        logger.add(
            log_file,
            level=level,
            format=FILE_FORMAT,
            rotation="50 MB",
            retention=5,
            diagnose=False,
        )
