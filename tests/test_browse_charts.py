"""The browser view's charts (/-/charts, a Datasette plugin that `chanwatch browse` loads),
loaded in a real headless Chromium that must find every chart drawn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.cli import browse
from tests.incident_helpers import story_archive

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not browse.datasette_available(),
    reason="needs Debian's chromium and Datasette (.ci/run installs both)",
)
START = datetime(2023, 6, 2, 8, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def datasette(db_path: Path, tmp_path: Path) -> Iterator[str]:
    """`chanwatch browse`'s own Datasette command line, on a free port."""
    port = _free_port()
    metadata = tmp_path / "metadata.json"
    metadata.write_text(
        json.dumps(browse.render_metadata(db_path, browse.posts_columns(db_path))),
        encoding="utf-8",
    )
    args = SimpleNamespace(immutable=False, host="127.0.0.1", port=port, get=None)
    process = subprocess.Popen(
        browse.command(db_path, metadata, args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/-/versions.json", timeout=1) as answer:
                    answer.read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(error) from None
                time.sleep(0.1)  # polling a server that is starting, bounded by the deadline
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@contextlib.contextmanager
def browser_page() -> Iterator[object]:
    """A page of Debian's Chromium, headless, driven by Playwright (no downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


PAINTED = """id => {
  const c = document.getElementById(id);
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240) painted++;
  }
  return painted / (c.width * c.height);
}"""


def test_charts_page_draws_volume_claims_and_incidents(tmp_path: Path) -> None:
    db_path = tmp_path / "chanwatch.db"
    asyncio.run(story_archive(db_path, START, unrelated=150))
    with datasette(db_path, tmp_path) as url, browser_page() as page:
        page.goto(url + "/-/charts")
        page.wait_for_selector("body[data-ready='true']", timeout=15_000)
        for chart in ("volume", "claims", "incidents"):
            assert page.get_attribute(f"#{chart}", "data-drawn") == "true", chart
            painted = page.evaluate(PAINTED, chart)
            assert 0.001 < painted < 0.5, (chart, painted)
        status = page.text_content("#status")
        assert status is not None and "2 incidents" in status


def test_chart_data_comes_from_the_archive(tmp_path: Path) -> None:
    db_path = tmp_path / "chanwatch.db"
    asyncio.run(story_archive(db_path, START))
    with datasette(db_path, tmp_path) as url:
        with urllib.request.urlopen(url + "/-/charts.json", timeout=5) as answer:
            data = json.loads(answer.read())
    by_channel = {r["channel"]: r for r in data["daily"]}
    assert by_channel["Легион «Свобода России»"]["claims"] >= 2
    assert [i["title"] for i in data["incidents"]][-1] == "Новая Таволжанка, 2023-06-02"
    assert {p["label"] for p in data["posts"]} >= {"claim", "exchange", "none"}
