"""`chanwatch export` and `chanwatch verify-export`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

from bot.cli.progress import progress_bar
from bot.cli.search import (
    add_filter_arguments,
    filters_from,
    open_archive,
    query_text,
    require_archive,
)
from bot.query import compile_query, prepare
from storage import export, incidents, signing
from storage.db import ArchiveTarget
from storage.search import QueryError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "query",
        nargs="*",
        metavar="QUERY",
        help="only posts matching this search (optional; several arguments are one query)",
    )
    add_filter_arguments(parser)
    parser.add_argument("--format", choices=export.FORMATS, default="jsonl", help="(jsonl)")
    parser.add_argument(
        "--media", action="store_true", help="only posts that carry media (photos, files, ...)"
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    parser.add_argument(
        "--manifest",
        action="store_true",
        help="also write FILE.manifest.json (SHA-256, rows, filters) for verify-export",
    )
    parser.add_argument(
        "--sign",
        type=Path,
        metavar="KEY",
        help="sign the manifest with this Ed25519 private key (PEM, mode 0600); needs --manifest",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    parser.add_argument(
        "--incident", type=int, metavar="N", help="only the posts of incident N (see `incidents`)"
    )


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="an export written with --manifest")
    parser.add_argument(
        "--manifest", type=Path, metavar="M", help="manifest (default: FILE.manifest.json)"
    )
    parser.add_argument(
        "--key",
        type=Path,
        metavar="PUB",
        help="require a valid signature by this Ed25519 key (PEM public key)",
    )


def _check_output(args: argparse.Namespace) -> None:
    if args.sign is not None and not args.manifest:
        raise QueryError("--sign signs the manifest: add --manifest")
    if args.manifest and args.output is None:
        raise QueryError("--manifest needs -o FILE (the manifest names and hashes that file)")
    if args.output is not None and args.output.exists() and not args.force:
        raise QueryError(f"{args.output} exists; choose another name or pass --force")


async def _export(args: argparse.Namespace, db_path: ArchiveTarget, err: TextIO) -> int:
    args.query = query_text(args.query)
    if args.query:
        compile_query(args.query)  # a bad query fails before the archive is opened
    key = signing.load_private(args.sign) if args.sign is not None else None
    db = await open_archive(db_path)
    try:
        filters = await filters_from(db, args, media_only=args.media)
        compiled = await prepare(db, args.query) if args.query else None
        incident = getattr(args, "incident", None)
        if incident is not None and await incidents.get(db, incident) is None:
            gone = await incidents.merged_into(db, incident)
            hint = f" (merged into {gone})" if gone else "; `chanwatch incidents` lists them"
            raise QueryError(f"--incident {incident}: no such incident{hint}")
        selection = export.Selection(filters, compiled, incident)
        show = err.isatty()
        total = await export.count(db, selection) if show else 0
        with progress_bar("exporting", total, err, show) as progress:
            if args.output is None:
                rows, sha, _ = await export.write_export(
                    db, selection, args.format, sys.stdout.buffer, progress=progress
                )
                sys.stdout.flush()
                err.write(f"exported {rows} posts (sha256 {sha})\n")
                return 0
            result = await export.export_to_file(
                db,
                selection,
                args.format,
                args.output,
                manifest=args.manifest,
                progress=progress,
                sign_key=key,
            )
    finally:
        await db.close()
    err.write(f"exported {result.rows} posts to {result.path} (sha256 {result.sha256})\n")
    if result.manifest:
        signed = f", signed by {signing.fingerprint(key.public_key())}" if key else ""
        err.write(f"manifest: {result.manifest}{signed}\n")
    return 0


def run(args: argparse.Namespace, db_path: ArchiveTarget, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    try:
        _check_output(args)
        return asyncio.run(_export(args, require_archive(args.db or db_path), err))
    except (QueryError, signing.SigningKeyError) as exc:
        err.write(f"chanwatch export: {exc}\n")
        return 2
    except OSError as exc:
        err.write(f"chanwatch export: cannot write {args.output}: {exc.strerror or exc}\n")
        return 3


def run_verify(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        result = export.verify_export(args.file, args.manifest, args.key)
    except (FileNotFoundError, ValueError) as exc:
        out.write(f"chanwatch verify-export: {exc}\n")
        return 2
    manifest = result.manifest
    if result.ok:
        out.write(
            f"OK: {args.file} matches its manifest ({result.rows} posts, sha256 "
            f"{manifest['sha256']}, exported {manifest.get('created_at')} by chanwatch "
            f"{manifest.get('tool', {}).get('version')})\n"
        )
        if result.signed_by:
            out.write(f"signed by the key {result.signed_by}\n")
        elif isinstance(manifest.get("signature"), dict):
            out.write("the manifest is signed; pass --key PUB to check who signed it\n")
        out.write(
            "This proves the file is the export its manifest describes and each record "
            "agrees with the raw record as archived; it does not prove who made it"
            + (" beyond the holder of that key" if result.signed_by else "")
            + ".\n"
        )
        return 0
    out.write(f"FAILED: {args.file} does not match its manifest:\n")
    for problem in result.problems:
        out.write(f"  - {problem}\n")
    return 1
