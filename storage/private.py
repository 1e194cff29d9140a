"""Files only their owner can read, whatever the process's umask.

The archive, its WAL and shared-memory files, media, exports and manifests hold
what analysts collected; like sessions and backups they are created 0600 in 0700
folders. Temporary files are created exclusively without following links, so a
symlink planted at `FILE.partial` cannot redirect a write to another file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_dir(path: Path) -> None:
    """Create `path` and any missing parents 0700 (existing folders are left alone)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode is narrowed by the umask, never widened


def touch(path: Path) -> None:
    """Create `path` empty and 0600; fails if anything is there (a link is not followed)."""
    create_exclusive(path).close()


def tighten(path: Path) -> None:
    """Make an existing file 0600 (no-op if it is missing)."""
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        pass


def create_exclusive(path: Path) -> IO[bytes]:
    """Open a new file for writing, 0600; fails if anything (a file, a symlink) is there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "wb")


def replace_partial(path: Path) -> IO[bytes]:
    """A fresh `path` for a temporary file: a leftover regular file from a crash is
    removed first; a symlink or anything else there is an error, never followed."""
    try:
        if path.is_symlink() or not path.is_file():
            if path.exists() or path.is_symlink():
                raise FileExistsError(
                    f"{path} exists and is not a regular file (a symlink?); remove it"
                )
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    return create_exclusive(path)
