"""Logging through loguru: plain lines for journald, colours on a terminal."""

from __future__ import annotations

import os
import sys

from loguru import logger

_TERMINAL = (
    "<green>{time:YYYY-MM-DD HH:mm:ss}</green> <level>{level: <7}</level> "
    "<cyan>{name}</cyan> {message} <dim>{extra}</dim>"
)
_JOURNAL = "{level: <7} {name} {message} {extra}"


def under_systemd() -> bool:
    return "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    logger.remove()
    journal = under_systemd()
    logger.add(
        sys.stderr,
        level=level,
        format=_JOURNAL if journal else _TERMINAL,
        colorize=not journal and sys.stderr.isatty(),
        backtrace=False,
        diagnose=False,  # variable values in tracebacks could include secrets
    )
    if log_file:
        logger.add(
            log_file,
            level=level,
            format="{time:YYYY-MM-DDTHH:mm:ss.SSSZZ} " + _JOURNAL,
            rotation="50 MB",
            retention=5,
            diagnose=False,
        )
