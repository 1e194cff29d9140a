"""The service's log: what libraries log through the standard library (Telethon,
asyncio) reaches loguru's sinks with its time, level, logger name and traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from bot.service.logs import FILE_FORMAT, journal_format, route_standard_logging


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """A file sink in the format `setup_logging` gives a log file (calling it would
    remove the test suite's own sinks); the standard library's set-up restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    path = tmp_path / "chanwatch.log"
    sink = logger.add(path, level="DEBUG", format=FILE_FORMAT)
    yield path
    logger.remove(sink)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_library_records_go_to_the_log_file_with_level_name_and_traceback(
    log_file: Path,
) -> None:
    route_standard_logging("WARNING")
    route_standard_logging("WARNING")  # again (each CLI command sets logging up): one handler
    sender = logging.getLogger("telethon.network.mtprotosender")
    sender.warning("Server closed the connection: %d bytes read {not a field}", 0)
    sender.info("Connecting to 127.0.0.1:443/TcpFull...")  # below the service's level
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=True)
    logger.complete()

    lines = log_file.read_text().splitlines()
    (warning,) = [line for line in lines if "Server closed" in line]
    assert (
        " WARNING telethon.network.mtprotosender Server closed the connection: 0 bytes "
        "read {not a field} {}" in warning
    )
    assert warning[:4].isdigit()  # the file's timestamp
    assert not [line for line in lines if "Connecting to" in line]
    error = lines.index(next(line for line in lines if "never retrieved" in line))
    assert " ERROR   asyncio Task exception was never retrieved" in lines[error]
    assert lines[error + 1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: boom"


def test_a_debug_service_does_not_log_every_telethon_packet(log_file: Path) -> None:
    route_standard_logging("DEBUG")
    logging.getLogger("telethon.network.mtprotosender").debug("Handling RPC result")
    logging.getLogger("telethon.network.mtprotosender").info("Connection complete!")
    logger.complete()
    text = log_file.read_text()
    assert "Handling RPC result" not in text
    assert " INFO    telethon.network.mtprotosender Connection complete!" in text


def test_journal_lines_begin_with_their_syslog_priority() -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format=journal_format)
    try:
        log = logger.bind(channel=5)
        log.debug("d")
        log.info("i")
        log.warning("w {braces}")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("e")
        log.critical("c")
    finally:
        logger.remove(sink)
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert lines[2].startswith("<4>WARNING tests.test_logs w {braces} {'channel': 5}")
    assert "Traceback (most recent call last):" in lines[3]  # the record's continuation
