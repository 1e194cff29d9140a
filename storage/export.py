"""Streaming exports of the archive (JSON lines or CSV) and their evidence manifests.

Posts are read in chunks with keyset pagination on the time-ordered rowid, so an
export of a million posts holds one chunk in memory. Every record carries all
columns of the post (including `captured_at`, `raw` and `raw_sha256`: the SHA-256
of `raw` exactly as exported), its earlier revisions and its media metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, Literal

from storage import private, signing
from storage.db import SCHEMA_VERSION, Database
from storage.search import (
    CompiledQuery,
    Filters,
    check_filters,
    fts_source,
    post_link,
    where_clause,
)

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
CHUNK = 1_000
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_KIND = "chanwatch-export-manifest/1"

# Columns holding JSON text: parsed into objects in JSON lines, kept as text in CSV.
_JSON_COLUMNS = ("entities", "fwd_from", "reactions")
_REVISION_COLUMNS = ("text", "entities", "edit_date", "raw_sha256", "replaced_at")
_MEDIA_SKIP = ("post_id",)


def tool_version() -> str:
    try:
        return metadata.version("chanwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class Selection:
    """Which posts to export: filters and an optional full-text query."""

    filters: Filters = Filters()
    query: CompiledQuery | None = None
    incident: int | None = None  # only the posts of this incident

    def describe(self) -> dict[str, Any]:
        out = {
            **self.filters.describe(),
            "query": self.query.source if self.query else None,
            "fts_query": self.query.fts if self.query else None,
        }
        if self.incident is not None:
            out["incident"] = self.incident
        return out


def _from_where(db: Database, selection: Selection) -> tuple[str, list[Any], str]:
    """FROM/WHERE for the selection, its parameters, and the rowid to page on."""
    if selection.query is not None:
        source, match, query, key = fts_source(db, selection.query)
        conditions, params = where_clause(selection.filters, rowid=key)
        conditions.insert(0, match)
        params.insert(0, query)
    else:
        conditions, params = where_clause(selection.filters)
        source = "posts p"
        key = "p.id"
    if selection.incident is not None:
        conditions.append("p.id IN (SELECT post_id FROM incident_posts WHERE incident_id = ?)")
        params.append(selection.incident)
    where = " AND ".join(conditions) if conditions else "1 = 1"
    return f"FROM {source} LEFT JOIN channels c ON c.id = p.channel_id WHERE {where}", params, key


async def count(db: Database, selection: Selection) -> int:
    """How many posts the index selects (for a phrase: an upper bound, the posts
    holding its words)."""
    await check_filters(db, selection.filters)
    sql, params, _ = _from_where(db, selection)
    row = await db.fetchone(f"SELECT count(*) {sql}", params)
    return int(row[0]) if row else 0


async def records(
    db: Database, selection: Selection, chunk: int = CHUNK
) -> AsyncIterator[list[dict[str, Any]]]:
    """Chunks of export records, oldest post first.

    The next chunk is fetched (in aiosqlite's thread) while the caller encodes
    this one; at most two chunks are in memory.
    """
    await check_filters(db, selection.filters)
    sql, params, key = _from_where(db, selection)
    query = (
        f"SELECT p.*, c.username AS channel_username, c.title AS channel_title {sql} "
        f"AND {key} > ? ORDER BY {key} LIMIT ?"
    )

    def fetch(after: int) -> asyncio.Task[list[sqlite3.Row]]:
        return asyncio.ensure_future(db.fetchall(query, (*params, after, chunk)))

    pending = fetch(-(1 << 62))
    try:
        while True:
            rows = await pending
            if not rows:
                return
            more = len(rows) == chunk
            if more:
                pending = fetch(rows[-1]["id"])
            check = selection.query.check if selection.query is not None else None
            if check is not None:  # a phrase: the index found the words, the text decides
                rows = [row for row in rows if check(row["text"])]
                if not rows:
                    if not more:
                        return
                    continue
            yield await _records(db, rows)
            if not more:
                return
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending


async def _records(db: Database, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    ids = [row["id"] for row in rows]
    marks = ",".join("?" * len(ids))
    revisions: dict[int, list[dict[str, Any]]] = {}
    for rev in await db.fetchall(
        f"SELECT * FROM post_revisions WHERE post_id IN ({marks}) ORDER BY id", ids
    ):
        revisions.setdefault(rev["post_id"], []).append(
            {name: rev[name] for name in _REVISION_COLUMNS}
        )
    media: dict[int, list[dict[str, Any]]] = {}
    for item in await db.fetchall(
        f"SELECT * FROM media WHERE post_id IN ({marks}) ORDER BY post_id, idx", ids
    ):
        media.setdefault(item["post_id"], []).append(
            {name: item[name] for name in item.keys() if name not in _MEDIA_SKIP}
        )
    names = rows[0].keys()
    out = []
    for row in rows:
        record = dict(zip(names, row, strict=True))
        record["link"] = post_link(record["channel_username"], record["channel_id"], row["msg_id"])
        record["revisions"] = revisions.get(record["id"], [])
        record["media"] = media.get(record["id"], [])
        out.append(record)
    return out


# --- encoding --------------------------------------------------------------------


def _jsonl(record: dict[str, Any]) -> str:
    value = dict(record)
    for name in _JSON_COLUMNS:
        if isinstance(value.get(name), str):
            value[name] = json.loads(value[name])
    for rev in value["revisions"]:
        if isinstance(rev.get("entities"), str):
            rev["entities"] = json.loads(rev["entities"])
    return json.dumps(value, ensure_ascii=False) + "\n"


class _CsvEncoder:
    def __init__(self) -> None:
        self.columns: list[str] | None = None

    def encode(self, chunk: list[dict[str, Any]]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if self.columns is None:
            self.columns = list(chunk[0].keys())
            writer.writerow(self.columns)
        for record in chunk:
            writer.writerow(
                json.dumps(record[name], ensure_ascii=False)
                if name in ("revisions", "media")
                else record[name]
                for name in self.columns
            )
        return buffer.getvalue()


class _HashingWriter:
    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.sha.update(data)
        self.size += len(data)
        self.sink.write(data)


@dataclass(frozen=True, slots=True)
class ExportResult:
    rows: int
    sha256: str
    size: int
    path: Path | None
    manifest: Path | None = None


async def write_export(
    db: Database,
    selection: Selection,
    fmt: Format,
    sink: BinaryIO,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> tuple[int, str, int]:
    """Stream the selection into `sink`; returns (rows, sha256, bytes written)."""
    writer = _HashingWriter(sink)
    encoder = _CsvEncoder()
    rows = 0
    async for batch in records(db, selection, chunk):
        if fmt == "jsonl":
            writer.write("".join(_jsonl(record) for record in batch))
        else:
            writer.write(encoder.encode(batch))
        rows += len(batch)
        if progress is not None:
            progress(len(batch))
    return rows, writer.sha.hexdigest(), writer.size


async def export_to_file(
    db: Database,
    selection: Selection,
    fmt: Format,
    path: Path,
    *,
    manifest: bool = False,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
    sign_key: signing.Ed25519PrivateKey | None = None,
) -> ExportResult:
    """Write an export next to its final name, then rename: a failed export leaves
    no half-written file behind (and never clobbers an earlier one)."""
    partial = path.with_name(path.name + ".partial")
    try:
        with private.replace_partial(partial) as sink:
            rows, sha, size = await write_export(
                db, selection, fmt, sink, progress=progress, chunk=chunk
            )
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    manifest_path = None
    if manifest:
        manifest_path = write_manifest(
            path,
            {
                "kind": MANIFEST_KIND,
                "file": path.name,
                "format": fmt,
                "sha256": sha,
                "bytes": size,
                "rows": rows,
                "filters": selection.describe(),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "tool": {"name": "chanwatch", "version": tool_version()},
                "archive": {"path": str(db.path), "schema_version": SCHEMA_VERSION},
            },
            sign_key,
        )
    return ExportResult(rows, sha, size, path, manifest_path)


# --- manifests ---------------------------------------------------------------------


def manifest_path_for(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def write_manifest(
    path: Path, manifest: dict[str, Any], sign_key: signing.Ed25519PrivateKey | None = None
) -> Path:
    if sign_key is not None:
        manifest = signing.sign(manifest, sign_key)
    target = manifest_path_for(path)
    partial = target.with_name(target.name + ".partial")
    text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
    try:
        with private.replace_partial(partial) as sink:
            sink.write(text.encode("utf-8"))
        os.replace(partial, target)
    except BaseException:
        if partial.is_file() and not partial.is_symlink():
            partial.unlink()
        raise
    return target


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    problems: list[str]
    rows: int
    manifest: dict[str, Any]
    signed_by: str | None = None  # the key's fingerprint, when a signature was checked


def _instant(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else None  # a local time says nothing comparable


def _desktop_text(text: Any) -> str | None:
    """The plain text of a Telegram Desktop export message (a string, or a list of
    strings and entity objects)."""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        parts = [
            p if isinstance(p, str) else p.get("text") for p in text if isinstance(p, str | dict)
        ]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    return None


def raw_disagreement(record: dict[str, Any], raw: Any) -> str | None:
    """Which plain field of a record says something else than its `raw` (None if they
    agree). Checked: the message id, the channel, the date and the text, wherever `raw`
    holds them (Telethon's message, a Telegram Desktop export message)."""
    if not isinstance(raw, dict):
        return None
    fields: list[tuple[str, Any, Any]] = []
    if isinstance(raw.get("id"), int):
        fields.append(("msg_id", record.get("msg_id"), raw["id"]))
    peer = raw.get("peer_id")
    if isinstance(peer, dict) and isinstance(peer.get("channel_id"), int):
        fields.append(("channel_id", record.get("channel_id"), peer["channel_id"]))
    service = raw.get("_") == "MessageService"
    if isinstance(raw.get("message"), str) and not service:
        fields.append(("text", record.get("text"), raw["message"]))
    elif raw.get("type") == "message" and ("text" in raw or "text_entities" in raw):
        entities = raw.get("text_entities")  # the importer reads these first, as here
        text = _desktop_text(entities if isinstance(entities, list) else raw.get("text", ""))
        if text is not None:
            fields.append(("text", record.get("text"), text))
    mine = _instant(record.get("date"))
    if "date_unixtime" in raw and str(raw["date_unixtime"]).isdigit():
        theirs: datetime | None = datetime.fromtimestamp(int(raw["date_unixtime"]), UTC)
    else:
        theirs = _instant(raw.get("date"))
    if theirs is not None:
        fields.append(("date", mine, theirs))
    for name, plain, original in fields:
        same = plain == original if name == "date" else str(plain) == str(original)
        if not same:
            return name
    return None


def _count_rows(path: Path, fmt: str, problems: list[str]) -> int:
    """Rows in an export, checking each record's raw against its raw_sha256 and its
    plain fields against raw."""
    rows = 0
    bad: list[str] = []
    edited: list[str] = []
    with path.open("r", encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            items: Any = (json.loads(line) for line in handle if line.strip())
        else:
            items = csv.DictReader(handle)
        for record in items:
            rows += 1
            raw, sha = record.get("raw"), record.get("raw_sha256")
            where = f"{record.get('channel_id')}/{record.get('msg_id')}"
            if not isinstance(raw, str):
                continue
            if hashlib.sha256(raw.encode()).hexdigest() != sha:
                bad.append(where)
                continue
            try:
                field_name = raw_disagreement(record, json.loads(raw))
            except ValueError:
                field_name = "raw"
            if field_name is not None:
                edited.append(f"{where} ({field_name})")
    if bad:
        shown = ", ".join(bad[:5]) + (" …" if len(bad) > 5 else "")
        problems.append(f"{len(bad)} records whose raw does not hash to raw_sha256: {shown}")
    if edited:
        shown = ", ".join(edited[:5]) + (" …" if len(edited) > 5 else "")
        problems.append(f"{len(edited)} records whose fields differ from their raw: {shown}")
    return rows


def verify_export(
    path: Path, manifest_file: Path | None = None, key: Path | None = None
) -> Verification:
    """Check an export against its manifest: size, SHA-256, row count, record hashes,
    each record's fields against its raw; with `key`, the manifest's signature."""
    manifest_file = manifest_file or manifest_path_for(path)
    if not manifest_file.is_file():
        raise FileNotFoundError(f"no manifest at {manifest_file} (export with --manifest)")
    if not path.is_file():
        raise FileNotFoundError(f"no export file at {path}")
    try:
        manifest = json.loads(manifest_file.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{manifest_file} is not a JSON manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise ValueError(f"{manifest_file} is not a chanwatch export manifest")
    problems: list[str] = []
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
            size += len(block)
    if size != manifest.get("bytes"):
        problems.append(f"size is {size} bytes, the manifest says {manifest.get('bytes')}")
    if sha.hexdigest() != manifest.get("sha256"):
        problems.append(f"SHA-256 is {sha.hexdigest()}, the manifest says {manifest.get('sha256')}")
    try:
        rows = _count_rows(path, str(manifest.get("format")), problems)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"the file does not parse as {manifest.get('format')}: {exc}")
        rows = -1
    if rows >= 0 and rows != manifest.get("rows"):
        problems.append(f"{rows} rows, the manifest says {manifest.get('rows')}")
    signed_by = None
    if key is not None:
        public = signing.load_public(key)
        wrong = signing.check(manifest, public)
        if wrong is None:
            signed_by = signing.fingerprint(public)
        else:
            problems.append(wrong)
    return Verification(not problems, problems, rows, manifest, signed_by)
