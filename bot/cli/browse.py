"""`chanwatch browse`: the archive in Datasette, read-only, with search and canned queries.

Datasette is optional (`pip install -e '.[browse]'`). The metadata lives in
`bot/data/datasette.json`; it is rendered per archive because Datasette names a
database after its file, and queries on columns the archive lacks are left out.
Only the archive's tables are reachable (`bot/cli/browse_guard.py`, loaded as a
Datasette plugin): the bot's invites, subscribers, rules, strangers and outbox are
neither listed nor readable, and arbitrary SQL is off unless `--sql` is given.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from functools import partial
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from bot.cli.options import add_db_option
from bot.pool import die_with
from config.database_url import redact
from storage.db import ArchiveTarget, DatabaseError, table_columns, table_names

TEMPLATE_KEY = "ARCHIVE"
OPTIONAL_KEY = "chanwatch_optional_queries"
CHARTS_PLUGIN = "datasette_plugins/chanwatch_charts.py"
INSTALL_HINT = "pip install -e '.[browse]'  (or: pip install datasette)"
# What the browser may show: the archive. Anything else in the file (the bot's
# invites, subscribers, rules, strangers, alerts, and whatever is added later) is not.
ARCHIVE_TABLES = frozenset(
    {
        "archive_posts",
        "posts",
        "post_revisions",
        "media",
        "metrics",
        "channels",
        "incidents",  # grouping's output: titles, counts, members with their ties
        "incident_posts",
    }
)
SQL_TIME_LIMIT_MS = 1000


def template() -> dict[str, Any]:
    text = resources.files("bot").joinpath("data/datasette.json").read_text(encoding="utf-8")
    return json.loads(text)


def posts_columns(db_path: Path) -> set[str]:
    return table_columns(db_path, "posts")


def render_metadata(
    db_path: Path, columns: set[str], tables: set[str] | None = None
) -> dict[str, Any]:
    """The metadata for this archive file: its database name, the optional
    queries whose columns it has, and the tables it has (an archive made before
    the `archive_posts` view opens on `posts`)."""
    data = copy.deepcopy(template())
    optional = data.pop(OPTIONAL_KEY, {})
    database = data["databases"].pop(TEMPLATE_KEY)
    for name, query in optional.items():
        needs = query.pop("requires_column")
        if needs in columns:
            database["queries"][name] = query
    if tables is not None:
        database["tables"] = {k: v for k, v in database["tables"].items() if k in tables}
    name = db_path.stem
    start = "archive_posts" if "archive_posts" in database["tables"] else "posts"
    data["description_html"] = data["description_html"].replace(
        f"/{TEMPLATE_KEY}/archive_posts", f"/{name}/{start}"
    )
    data["databases"][name] = database
    return data


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def write_guard(folder: Path, database: str, allow_sql: bool) -> Path:
    """The plugins folder for Datasette: the guard plugin and its configuration."""
    plugins = folder / "plugins"
    plugins.mkdir(mode=0o700)
    source = resources.files("bot.cli").joinpath("browse_guard.py").read_text(encoding="utf-8")
    (plugins / "chanwatch_guard.py").write_text(source, encoding="utf-8")
    config = {
        "database": database,
        "tables": sorted(ARCHIVE_TABLES),
        "allow_sql": allow_sql,
        "details_column": "id",
    }
    (plugins / "guard.json").write_text(json.dumps(config), encoding="utf-8")
    return plugins


def add_charts(plugins: Path) -> None:
    """The charts page (/-/charts) beside the guard in Datasette's plugins folder."""
    source = resources.files("bot.cli").joinpath(CHARTS_PLUGIN).read_text(encoding="utf-8")
    (plugins / "chanwatch_charts.py").write_text(source, encoding="utf-8")


def canned_queries(metadata: dict[str, Any]) -> dict[str, str]:
    return {
        name: query["sql"]
        for database in metadata["databases"].values()
        for name, query in database.get("queries", {}).items()
    }


def datasette_available() -> bool:
    return importlib.util.find_spec("datasette") is not None


def command(
    db_path: Path, metadata_path: Path, args: argparse.Namespace, plugins: Path
) -> list[str]:
    cmd = [sys.executable, "-m", "datasette", "serve"]
    # Default: Datasette reads through mode=ro connections, which sees the watcher's
    # new posts as they commit; --immutable (-i) is for a copy nothing writes to.
    cmd += ["-i", str(db_path)] if args.immutable else [str(db_path)]
    cmd += ["--metadata", str(metadata_path), "--host", args.host, "--port", str(args.port)]
    cmd += ["--plugins-dir", str(plugins)]
    cmd += ["--setting", "sql_time_limit_ms", str(SQL_TIME_LIMIT_MS)]
    cmd += ["--setting", "allow_download", "off", "--setting", "allow_csv_stream", "off"]
    cmd += ["--setting", "default_allow_sql", "on" if args.sql else "off"]
    if args.get:
        cmd += ["--get", args.get]
    return cmd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port (8001; 0 picks a free one)")
    parser.add_argument(
        "--immutable",
        action="store_true",
        help="open as immutable (fastest; only for a copy or backup nothing writes to)",
    )
    parser.add_argument(
        "--sql",
        action="store_true",
        help="allow arbitrary read-only SQL on the archive tables (off: canned queries only)",
    )
    parser.add_argument(
        "--public",
        action="store_true",
        help="required to listen on an address other than loopback (anyone reaching it reads the "
        "archive)",
    )
    parser.add_argument("--get", metavar="PATH", help=argparse.SUPPRESS)  # one request, then exit


def run(args: argparse.Namespace, db_path: ArchiveTarget, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    db_path = args.db or db_path
    if not isinstance(db_path, Path):
        err.write(
            f"chanwatch browse: Datasette reads SQLite files only and this archive is in "
            f"PostgreSQL ({redact(db_path)}): use `chanwatch search` / `chanwatch export`, "
            "or query it with psql\n"
        )
        return 2
    if not db_path.is_file():
        err.write(f"chanwatch browse: no archive at {db_path}: set CHANWATCH_DB or pass --db\n")
        return 3
    if not datasette_available():
        err.write(
            f"chanwatch browse: Datasette is not installed; install it with:\n  {INSTALL_HINT}\n"
        )
        return 2
    if not is_loopback(args.host) and not args.public:
        err.write(
            f"chanwatch browse: {args.host} is not a loopback address: anyone who reaches it can "
            "read the whole archive. Add --public to listen there anyway, or use an SSH tunnel "
            "to 127.0.0.1\n"
        )
        return 2
    try:
        metadata = render_metadata(db_path, posts_columns(db_path), table_names(db_path))
    except DatabaseError as exc:
        err.write(f"chanwatch browse: cannot read {db_path}: {exc}\n")
        return 3
    if not is_loopback(args.host):
        err.write(f"warning: listening on {args.host}, not loopback; there is no login\n")
    if args.sql:
        err.write(
            "warning: --sql lets whoever reaches the port run any read-only SELECT on the "
            f"archive tables (each stopped after {SQL_TIME_LIMIT_MS} ms)\n"
        )
    tmp = Path(tempfile.mkdtemp(prefix="chanwatch-browse-"))
    try:
        metadata_path = tmp / "metadata.json"
        metadata_path.write_text(json.dumps(metadata, ensure_ascii=False), encoding="utf-8")
        plugins = write_guard(tmp, db_path.stem, allow_sql=args.sql)
        add_charts(plugins)
        if not args.get:
            start = "archive_posts" if "archive_posts" in table_names(db_path) else "posts"
            url = f"http://{args.host}:{args.port}/{db_path.stem}/{start}"
            err.write(f"browsing {db_path} read-only at {url}\n")
        return _serve(command(db_path, metadata_path, args, plugins))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _serve(cmd: list[str]) -> int:
    """Run Datasette until it ends or we are told to stop (SIGTERM, SIGINT): then
    stop it too, so no server is left listening after chanwatch browse is gone."""
    # a SIGKILLed chanwatch browse cannot stop it: Linux does
    child = subprocess.Popen(cmd, preexec_fn=partial(die_with, os.getpid(), signal.SIGTERM))
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        if child.poll() is None:
            child.terminate()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = child.wait(timeout=10 if stopping else None)
                break
            except subprocess.TimeoutExpired:  # did not stop when asked
                child.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.kill()
            child.wait()
    return 0 if stopping else code
