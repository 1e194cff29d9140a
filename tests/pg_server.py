"""A throwaway PostgreSQL server from Debian's `postgresql` package, for tests and benchmarks.

initdb in a temporary directory, listening on a free port of 127.0.0.1 and on a
Unix socket in that directory, trust authentication, stopped and removed at the
end. As root (CI), the server runs as the `postgres` system user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL_HINT = "apt-get install postgresql (binaries expected in /usr/lib/postgresql/*/bin)"


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, if any."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    def __init__(self, bin_dir: Path, *, fsync: bool = False) -> None:
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="chanwatch-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self.superuser = "postgres" if self._as_postgres else pwd.getpwuid(os.getuid()).pw_name

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PgServer:
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.superuser, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        self.restart()
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Start the server (again, after `stop`) on the same port and data."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c max_connections=200 "
            f"-c fsync={'on' if self.fsync else 'off'} -c full_page_writes=off"
        )
        log = self.root / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        result = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser,
            "-d", dbname, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        )  # fmt: skip
        return result.stdout.strip()

    def create_database(self, template: str = "template0", owner: str | None = None) -> str:
        """A new empty (or copied from `template`) database; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        owned = f" OWNER {owner}" if owner else ""
        self.psql(f"CREATE DATABASE {name} TEMPLATE {template}{owned}")
        return self.url(name)
