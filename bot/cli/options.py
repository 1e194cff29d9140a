"""Command-line options that several commands share."""

from __future__ import annotations

import argparse

from storage.db import archive_target


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """`--db`: the archive a command reads or writes, instead of CHANWATCH_DB's."""
    parser.add_argument(
        "--db",
        type=archive_target,
        help="archive file or postgresql:// URL (default: CHANWATCH_DB)",
    )
