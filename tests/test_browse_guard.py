"""`chanwatch browse` as a real process: only the archive is reachable, over plain HTTP
and in a real headless browser; SIGTERM stops Datasette and removes its folder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import browse
from bot.pipeline import Pipeline
from storage import archive, subscribers
from storage.db import open_database
from storage.models import Channel, Media, Post
from tests.browser_helpers import browser, browser_page  # noqa: F401

pytestmark = pytest.mark.skipif(
    not browse.datasette_available(), reason="Datasette is not installed (the 'browse' extra)"
)
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
PRIVATE = ["invites", "subscribers", "rules", "strangers", "alerts", "unresolved_channels"]
STARTUP = 60.0  # seconds for Datasette to start listening; a bound, not a measurement


@pytest.fixture(scope="module")
def archive_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An archive with posts and every private table filled; returns it and an open
    invite code."""
    path = tmp_path_factory.mktemp("browse") / "chanwatch.db"

    async def make() -> str:
        db = await open_database(path)
        await archive.save_channel(db, Channel(100, 1, "frontnews", "Front news"))
        pipeline = Pipeline(db)
        photo = Media(kind="photo", mime="image/jpeg", size=1000)
        await pipeline.ingest(
            [
                Post(100, 1, T0, "Взяли в плен двух военных", media=(photo,)),
                Post(100, 2, T0 + timedelta(hours=1), "Сводка за день"),
            ],
            "catchup",
        )
        await subscribers.upsert(db, 555, "analyst", name="Secret Analyst")
        await subscribers.add_rule(db, 555, "секретноеслово", None)
        await subscribers.note_stranger(db, 777, "Stranger Name")
        invite = await subscribers.create_invite(db, 1, timedelta(hours=24))
        await db.close()
        return invite.code

    code = asyncio.run(make())
    return path, code


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_browse(db: Path, tmp: Path, *extra: str) -> Iterator[tuple[str, subprocess.Popen]]:
    port = _free_port()
    env = dict(os.environ, TMPDIR=str(tmp))
    args = ["--env-file", str(tmp / "none.env"), "browse", "--db", str(db), "--port", str(port)]
    log = tmp / "browse.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *args, *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=out,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "Datasette did not start listening"
                time.sleep(0.1)  # polling a port that is not open yet
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        out.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_private_tables_and_arbitrary_sql_are_not_reachable_over_http(
    archive_file: tuple[Path, str], tmp_path: Path
) -> None:
    db, code = archive_file
    with running_browse(db, tmp_path) as (base, _):
        status, listing = _get(f"{base}/chanwatch.json")
        assert status == 200
        tables = {t["name"] for t in json.loads(listing)["tables"]}
        assert {"posts", "media", "channels"} <= tables and not tables & set(PRIVATE)
        bodies = [listing]
        for table in PRIVATE:
            for suffix in ("", ".json", ".csv"):
                status, body = _get(f"{base}/chanwatch/{table}{suffix}")
                assert status == 403, (table, suffix, status)
                bodies.append(body)
        status, body = _get(f"{base}/chanwatch/invites/{code}.json")
        assert status == 403
        attempts = [
            "/chanwatch.json?sql=select+code+from+invites",
            "/chanwatch.json?sql=select+1",
            "/chanwatch/posts.json?_where=id+in+(select+rowid+from+invites)",
            "/chanwatch/posts.json?_where=1",
        ]
        for path in attempts:
            status, body = _get(base + path)
            assert status in (400, 403), (path, status)
            bodies.append(body)
        status, body = _get(f"{base}/chanwatch/archive_posts.json?_shape=array")
        assert status == 200 and [r["text"] for r in json.loads(body)][-1].startswith("Взяли")
        status, body = _get(f"{base}/chanwatch/deleted_posts.json")  # a canned query runs
        assert status == 200
        for body in bodies:
            assert code not in body and "Secret Analyst" not in body
            assert "секретноеслово" not in body and "Stranger Name" not in body


def test_sql_allowed_by_flag_still_cannot_read_private_tables(
    archive_file: tuple[Path, str], tmp_path: Path
) -> None:
    db, code = archive_file
    with running_browse(db, tmp_path, "--sql") as (base, proc):
        status, body = _get(f"{base}/chanwatch.json?sql=select+text+from+posts&_shape=array")
        assert status == 200 and len(json.loads(body)) == 2
        for table in PRIVATE:
            status, body = _get(f"{base}/chanwatch.json?sql=select+*+from+{table}&_shape=array")
            assert status == 200, (table, status, body[:200])
            values = [v for row in json.loads(body) for v in row.values()]
            assert all(v is None for v in values), (table, values)  # every column reads NULL
            assert code not in body
        sneaky = "select+p.text,+(select+code+from+invites)+as+c+from+posts+p&_shape=array"
        status, body = _get(f"{base}/chanwatch.json?sql={sneaky}")
        assert status == 200 and [r["c"] for r in json.loads(body)] == [None, None]
        assert code not in body
    assert "warning: --sql" in (tmp_path / "browse.log").read_text()


def test_a_non_loopback_address_needs_public(archive_file: tuple[Path, str], tmp_path: Path):
    db, _ = archive_file
    args = ["--env-file", str(tmp_path / "none.env"), "browse", "--db", str(db)]
    refused = subprocess.run(
        [sys.executable, "-m", "bot", *args, "--host", "0.0.0.0", "--get", "/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--public" in refused.stderr
    assert refused.stdout == ""
    allowed = subprocess.run(
        [sys.executable, "-m", "bot", *args, "--host", "0.0.0.0", "--public", "--get", "/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert allowed.returncode == 0 and "not loopback" in allowed.stderr


def test_sigterm_stops_datasette_and_removes_its_folder(
    archive_file: tuple[Path, str], tmp_path: Path
) -> None:
    db, _ = archive_file
    with running_browse(db, tmp_path) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        assert [p.name for p in tmp_path.glob("chanwatch-browse-*")]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # nothing listens any more
    assert list(tmp_path.glob("chanwatch-browse-*")) == []


def test_the_browser_shows_what_an_analyst_reads_and_no_private_table(
    archive_file: tuple[Path, str],
    tmp_path: Path,
    browser_page,  # noqa: F811
) -> None:
    db, code = archive_file
    page = browser_page
    with running_browse(db, tmp_path) as (base, _):
        page.goto(f"{base}/chanwatch")
        listing = page.content()
        for table in PRIVATE:
            assert f"/chanwatch/{table}" not in listing
        assert code not in listing
        assert page.locator("textarea[name=sql]").count() == 0  # no SQL editor
        page.goto(f"{base}/chanwatch/archive_posts")
        headers = page.locator("table.rows-and-columns th").all_inner_texts()
        names = [h.split()[0] if h.split() else "" for h in headers]
        assert names[:6] == ["date", "channel", "text", "link", "claim", "media"]
        row = page.locator("table.rows-and-columns tbody tr").last
        assert "Взяли в плен" in row.inner_text() and "photo" in row.inner_text()
        link = row.locator("a[href='https://t.me/frontnews/1']")
        assert link.count() == 1
        text_cell = row.locator("td").nth(2)
        assert text_cell.bounding_box()["width"] > 200  # the text is readable, not squeezed
        row.locator("a", has_text="all fields").click()
        page.wait_for_url(f"{base}/chanwatch/posts/*")
        assert "raw_sha256" in page.content()
        response = page.goto(f"{base}/chanwatch/invites")
        assert response is not None and response.status == 403
        assert code not in page.content()
        response = page.goto(f"{base}/chanwatch?sql=select+code+from+invites")
        assert response is not None and response.status == 403
        assert code not in page.content()


def _exited(pid: int) -> bool:
    """Whether process `pid` is gone (or a zombie that only its reaper still lists)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_killed_browse_leaves_no_server_listening(
    archive_file: tuple[Path, str], tmp_path: Path
) -> None:
    """chanwatch browse killed with SIGKILL cannot stop Datasette itself: Linux stops it
    (the server would otherwise go on serving the archive with nobody to stop it)."""
    db, _ = archive_file
    with running_browse(db, tmp_path) as (base, proc):
        servers = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        assert len(servers) == 1
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + STARTUP
        while not _exited(servers[0]):
            assert time.monotonic() < deadline, "Datasette outlived chanwatch browse"
            time.sleep(0.1)  # polling another process's state
        port = int(base.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
