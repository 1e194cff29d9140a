"""What only the PostgreSQL archive has: its migrations, its server, its roles.

The behaviour both backends share (archiving, search, export, import, outbox) is
tested once for both, through the `archive_target` fixture.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import parser as cli
from bot.cli.doctor import check_postgres
from bot.query import search
from storage import archive, outbox, pg
from storage.db import (
    DB_ERRORS,
    SCHEMA_VERSION,
    StorageError,
    migrations,
    open_database,
    unavailable,
)
from storage.models import Channel, Post
from storage.shared import ServerRefused
from storage.sqlpg import translate
from tests.pg_server import PgServer, find_bin_dir

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


def test_postgres_migrations_mirror_the_sqlite_numbers() -> None:
    assert [v for v, _, _ in pg.migrations()] == [v for v, _, _ in migrations()]
    assert [n for _, n, _ in pg.migrations()] == [n for _, n, _ in migrations()]


def test_sql_is_translated_outside_literals_only() -> None:
    sql = "SELECT '?' AS q, \"a?\" FROM t WHERE x = ? -- why?\n AND y = max(z, ?)"
    assert translate(sql) == (
        "SELECT '?' AS q, \"a?\" FROM t WHERE x = $1 -- why?\n AND y = greatest(z, $2)"
    )
    assert translate("SELECT max(id) FROM t") == "SELECT max(id) FROM t"
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?) RETURNING id") == (
        "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id"
    )


async def test_migrates_an_empty_database_once(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    db = await open_database(url)
    assert await db.schema_version() == SCHEMA_VERSION
    assert {"channels", "posts", "posts_fts", "alerts", "media"} <= set(await db.tables())
    await db.close()
    dbname = url.rsplit("/", 1)[1]
    schema = (
        "SELECT table_name, column_name, data_type FROM information_schema.columns ORDER BY 1, 2"
    )
    before = pg_server.psql(schema, dbname)
    await (await open_database(url)).close()
    assert pg_server.psql(schema, dbname) == before
    assert pg_server.psql("SELECT count(*) FROM chanwatch_schema", dbname) == "1"


async def test_newer_schema_is_refused_and_left_alone(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    await (await open_database(url)).close()
    dbname = url.rsplit("/", 1)[1]
    pg_server.psql(f"UPDATE chanwatch_schema SET version = {SCHEMA_VERSION + 1}", dbname)
    for readonly in (False, True):
        with pytest.raises(StorageError, match="newer than this chanwatch"):
            await open_database(url, readonly=readonly)
    assert pg_server.psql("SELECT version FROM chanwatch_schema", dbname) == str(SCHEMA_VERSION + 1)


async def test_older_schema_is_migrated_by_run_and_explained_to_readers(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.create_database()
    first = pg.migrations()[:1]
    monkeypatch.setattr(pg, "migrations", lambda: first)
    await (await open_database(url)).close()
    monkeypatch.undo()
    with pytest.raises(StorageError, match="schema version 1, expected .* to migrate"):
        await open_database(url, readonly=True)
    db = await open_database(url)
    assert await db.schema_version() == SCHEMA_VERSION
    await db.close()


async def test_failed_migration_rolls_back(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.db as dbmod

    url = pg_server.create_database()
    good = pg.migrations()
    broken = [*good, (len(good) + 1, "9999_broken.sql", "CREATE TABLE x (a int); SELECT nope;")]
    monkeypatch.setattr(pg, "migrations", lambda: broken)
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StorageError):
        await dbmod.open_database(url)
    dbname = url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT version FROM chanwatch_schema", dbname) == str(len(good))
    assert pg_server.psql("SELECT to_regclass('x') IS NULL", dbname) == "t"


async def test_bad_url_server_down_and_missing_database_are_one_line(
    pg_server: PgServer,
) -> None:
    with pytest.raises(StorageError, match="names no database"):
        await open_database("postgresql://me@127.0.0.1:5")
    with socket_closed() as port:
        with pytest.raises(StorageError, match=r"cannot reach .* start it") as caught:
            await open_database(f"postgresql://me@127.0.0.1:{port}/archive")
        assert "\n" not in str(caught.value)
    with pytest.raises(StorageError, match=r"does not exist.*createdb"):
        await open_database(pg_server.url("no_such_db"))


def test_server_down_on_the_command_line_is_one_line_and_exit_3(capsys) -> None:
    env = ["--env-file", "/nonexistent.env"]
    with socket_closed() as port:
        url = f"postgresql://me@127.0.0.1:{port}/archive"
        assert cli.main([*env, "search", "x", "--db", url]) == 3
    err = capsys.readouterr().err
    assert err.startswith("chanwatch: cannot reach the PostgreSQL server") and err.count("\n") == 1


def test_bad_url_in_the_settings_is_a_setting_error(tmp_path: Path, capsys) -> None:
    env = tmp_path / ".env"
    env.write_text("CHANWATCH_DB=postgresql://me@host:notaport/db\n")
    assert cli.main(["--env-file", str(env), "search", "x"]) == 2
    assert "CHANWATCH_DB" in capsys.readouterr().err


class socket_closed:  # noqa: N801 - used as a context manager
    """A local port where nothing listens."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


async def test_a_role_without_rights_gets_the_fix(pg_server: PgServer, capsys) -> None:
    url = pg_server.create_database()
    await (await open_database(url)).close()
    dbname = url.rsplit("/", 1)[1]
    pg_server.psql("DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object "
                   "THEN NULL; END $$")  # fmt: skip
    reader = pg_server.url(dbname, user="reader")
    with pytest.raises(StorageError, match=r"role 'reader' may not use .* grant") as caught:
        await open_database(reader, readonly=True)
    assert "\n" not in str(caught.value)
    checks = {c.name: c for c in await check_postgres(reader)}
    assert not checks["database permissions"].ok
    assert "GRANT" in checks["database permissions"].fix
    # an empty database that the role may not create tables in
    empty = pg_server.create_database()
    pg_server.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", empty.rsplit("/", 1)[1])
    with pytest.raises(StorageError, match="owner"):
        await open_database(pg_server.url(empty.rsplit("/", 1)[1], user="reader"))
    owner = {c.name: c for c in await check_postgres(url)}
    assert all(c.ok for name, c in owner.items() if name != "delivery"), owner
    assert owner["delivery"].warning and "no watcher delivers" in owner["delivery"].detail


async def test_what_the_server_refuses_is_a_database_error_with_its_sqlstate(
    pg_server: PgServer,
) -> None:
    """asyncpg's errors come out of the archive as ServerRefused (what the service
    catches never names asyncpg), keeping the SQLSTATE that tells a full disk or a
    read-only server (retry) from a bad statement; the transaction is rolled back."""
    db = await open_database(pg_server.create_database())
    await archive.save_channel(db, Channel(100, 1, "frontnews", "Front news"))
    with pytest.raises(DB_ERRORS) as bad:
        await db.execute("SELECT no_such_column FROM posts")
    assert isinstance(bad.value, ServerRefused) and bad.value.sqlstate == "42703"
    assert "no_such_column" in str(bad.value) and not unavailable(bad.value)
    with pytest.raises(ServerRefused) as readonly:
        async with db.transaction() as conn:
            await conn.execute("SET TRANSACTION READ ONLY")
            await conn.execute("UPDATE channels SET title = 'changed' WHERE id = 100")
    assert readonly.value.sqlstate == "25006" and unavailable(readonly.value)
    assert await db.fetchone("SELECT title FROM channels WHERE id = 100") == ("Front news",)
    await db.close()


def test_browse_refuses_postgres_with_the_alternative(pg_server: PgServer, capsys) -> None:
    url = pg_server.create_database()
    assert cli.main(["--env-file", "/nonexistent.env", "browse", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "Datasette reads SQLite files only" in err and "chanwatch search" in err
    assert err.count("\n") == 1


@pytest.fixture
def own_server() -> PgServer:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed")
    server = PgServer(bin_dir).start()
    yield server
    server.remove()


async def test_server_going_away_fails_writes_as_unavailable_then_reconnects(
    own_server: PgServer,
) -> None:
    db = await open_database(own_server.create_database())
    await archive.save_channel(db, Channel(100, 1, "frontnews", "Front news"))
    post = Post(channel_id=100, msg_id=1, date=T0, text="пленный", raw={"id": 1})
    await archive.archive_post(db, post, "пленный")
    await asyncio.to_thread(own_server.stop)
    later = Post(channel_id=100, msg_id=2, date=T0, text="второй пленный", raw={"id": 2})
    with pytest.raises(Exception) as caught:
        await archive.archive_post(db, later, "второй пленный")
    assert unavailable(caught.value), caught.value
    with pytest.raises(Exception) as again:  # still down: fails fast, still "unavailable"
        await search(db, "пленный")
    assert unavailable(again.value)
    await asyncio.to_thread(own_server.restart)
    await archive.archive_post(db, later, "второй пленный")
    hits = await search(db, "пленный")
    assert [h.msg_id for h in hits] == [2, 1]
    await db.close()


def test_null_safe_comparisons_are_translated() -> None:
    assert translate("UPDATE t SET a = ? WHERE id = ? AND a IS NOT ?") == (
        "UPDATE t SET a = $1 WHERE id = $2 AND a IS DISTINCT FROM $3"
    )
    assert translate("SELECT 1 WHERE a IS ? AND b IS NOT NULL AND c IS NULL") == (
        "SELECT 1 WHERE a IS NOT DISTINCT FROM $1 AND b IS NOT NULL AND c IS NULL"
    )


def test_a_number_as_truth_value_is_translated() -> None:
    assert translate("UPDATE t SET a = CASE WHEN ? THEN ? ELSE a END") == (
        "UPDATE t SET a = CASE WHEN $1::integer <> 0 THEN $2 ELSE a END"
    )


def test_group_concat_becomes_string_agg() -> None:
    assert translate("SELECT group_concat(kind, ', '), group_concat(x) FROM m") == (
        "SELECT string_agg(kind, ', '), string_agg(x, ',') FROM m"
    )


def test_numbered_placeholders_keep_their_numbers() -> None:
    assert translate("UPDATE t SET a = ?2 WHERE id = ?1 AND b = ?1") == (
        "UPDATE t SET a = $2 WHERE id = $1 AND b = $1"
    )


async def test_outbox_notices_reach_the_listener_again_after_its_connection_drops(
    pg_server: PgServer,
) -> None:
    url = pg_server.create_database()
    notices: asyncio.Queue[None] = asyncio.Queue()
    listening = asyncio.create_task(
        pg.listen(url, outbox.OUTBOX_CHANNEL, lambda: notices.put_nowait(None))
    )
    sender = await pg.connect(url)
    try:
        async with asyncio.timeout(15):
            await notices.get()  # listening: told once, for what came before
            await sender.execute("SELECT pg_notify($1, '')", outbox.OUTBOX_CHANNEL)
            await notices.get()
            # the server drops the listener's connection (a restart, a proxy timeout)
            await sender.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await notices.get()  # listening again: told once more
            await sender.execute("SELECT pg_notify($1, '')", outbox.OUTBOX_CHANNEL)
            await notices.get()
        assert notices.empty()
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await sender.close()
