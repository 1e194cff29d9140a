"""`chanwatch browse`: the archive in Datasette, read-only, with search and canned queries.

Datasette is optional (`pip install -e '.[browse]'`). The metadata lives in
`bot/data/datasette.json`; it is rendered per archive because Datasette names a
database after its file, and queries on columns the archive lacks are left out.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from storage.db import ArchiveTarget, DatabaseError, archive_target, table_columns
from storage.pg import redact

TEMPLATE_KEY = "ARCHIVE"
OPTIONAL_KEY = "chanwatch_optional_queries"
INSTALL_HINT = "pip install -e '.[browse]'  (or: pip install datasette)"


def template() -> dict[str, Any]:
    text = resources.files("bot").joinpath("data/datasette.json").read_text(encoding="utf-8")
    return json.loads(text)


def posts_columns(db_path: Path) -> set[str]:
    return table_columns(db_path, "posts")


def render_metadata(db_path: Path, columns: set[str]) -> dict[str, Any]:
    """The metadata for this archive file: its database name, and the optional
    queries whose columns it has."""
    data = copy.deepcopy(template())
    optional = data.pop(OPTIONAL_KEY, {})
    database = data["databases"].pop(TEMPLATE_KEY)
    for name, query in optional.items():
        needs = query.pop("requires_column")
        if needs in columns:
            database["queries"][name] = query
    data["databases"][db_path.stem] = database
    return data


def canned_queries(metadata: dict[str, Any]) -> dict[str, str]:
    return {
        name: query["sql"]
        for database in metadata["databases"].values()
        for name, query in database.get("queries", {}).items()
    }


def datasette_available() -> bool:
    return importlib.util.find_spec("datasette") is not None


def command(db_path: Path, metadata_path: Path, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "datasette", "serve"]
    # Default: Datasette reads through mode=ro connections, which sees the watcher's
    # new posts as they commit; --immutable (-i) is for a copy nothing writes to.
    cmd += ["-i", str(db_path)] if args.immutable else [str(db_path)]
    cmd += ["--metadata", str(metadata_path), "--host", args.host, "--port", str(args.port)]
    cmd += ["--setting", "sql_time_limit_ms", "10000", "--setting", "allow_download", "off"]
    if args.get:
        cmd += ["--get", args.get]
    return cmd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=archive_target,
        help="archive file or postgresql:// URL (default: CHANWATCH_DB)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port (8001; 0 picks a free one)")
    parser.add_argument(
        "--immutable",
        action="store_true",
        help="open as immutable (fastest; only for a copy or backup nothing writes to)",
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
    try:
        metadata = render_metadata(db_path, posts_columns(db_path))
    except DatabaseError as exc:
        err.write(f"chanwatch browse: cannot read {db_path}: {exc}\n")
        return 3
    with tempfile.TemporaryDirectory(prefix="chanwatch-browse-") as tmp:
        metadata_path = Path(tmp) / "metadata.json"
        metadata_path.write_text(json.dumps(metadata, ensure_ascii=False), encoding="utf-8")
        if not args.get:
            err.write(f"browsing {db_path} read-only at http://{args.host}:{args.port}/\n")
        try:
            return subprocess.run(command(db_path, metadata_path, args), check=False).returncode
        except KeyboardInterrupt:
            return 0
