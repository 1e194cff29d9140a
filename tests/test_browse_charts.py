"""The browser view's charts: `/-/charts`, a Datasette plugin that `chanwatch browse`
loads beside its guard, opened in a real headless Chromium that must find every chart
drawn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.browser_helpers import browser, browser_page  # noqa: F401
from tests.incident_helpers import story_archive

START = datetime(2023, 6, 2, 8, 0, tzinfo=UTC)
STARTUP = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def browsing(db_path: Path, tmp_path: Path) -> Iterator[str]:
    """`chanwatch browse` itself, as a process, on a free port."""
    port = _free_port()
    log_path = tmp_path / "browse.log"
    log = log_path.open("wb")
    argv = ["--env-file", str(tmp_path / "none.env"), "browse", "--db", str(db_path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", *argv, "--port", str(port)],
        env=dict(os.environ, TMPDIR=str(tmp_path)),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + STARTUP
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "Datasette did not start listening"
                time.sleep(0.1)  # polling a port that is not open yet, bounded by the deadline
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


PAINTED = """id => {
  const c = document.getElementById(id);
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240) painted++;
  }
  return painted / (c.width * c.height);
}"""


@pytest.fixture
def story_file(tmp_path: Path) -> Path:
    """Built before the browser starts (Playwright's sync API holds an event loop)."""
    db_path = tmp_path / "chanwatch.db"
    asyncio.run(story_archive(db_path, START, unrelated=150))
    return db_path


def test_charts_page_draws_volume_claims_and_incidents(
    story_file: Path,
    tmp_path: Path,
    browser_page,  # noqa: F811
) -> None:
    db_path = story_file
    page = browser_page
    with browsing(db_path, tmp_path) as url:
        page.goto(url + "/-/charts")
        page.wait_for_selector("body[data-ready='true']", timeout=15_000)
        for chart in ("volume", "claims", "incidents"):
            assert page.get_attribute(f"#{chart}", "data-drawn") == "true", chart
            painted = page.evaluate(PAINTED, chart)
            assert 0.001 < painted < 0.5, (chart, painted)
        status = page.text_content("#status")
        assert status is not None and "2 incidents" in status


def test_chart_data_comes_from_the_archive(story_file: Path, tmp_path: Path) -> None:
    with browsing(story_file, tmp_path) as url:
        with urllib.request.urlopen(url + "/-/charts.json", timeout=5) as answer:
            data = json.loads(answer.read())
    by_channel = {r["channel"]: r for r in data["daily"]}
    assert by_channel["Легион «Свобода России»"]["claims"] >= 2
    assert [i["title"] for i in data["incidents"]][-1] == "Новая Таволжанка, 2023-06-02"
    assert {p["label"] for p in data["posts"]} >= {"claim", "exchange", "none"}
