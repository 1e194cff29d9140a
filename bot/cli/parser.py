"""The `chanwatch` command line: a thin layer over the library.

Every subcommand is listed in COMMANDS; tests check each one is documented in
the README.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable, Sequence

from loguru import logger

from bot.service.logs import setup_logging
from config.settings import ConfigError, Settings, load_settings
from storage.db import StorageError

Handler = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace, need: frozenset[str] = frozenset()) -> Settings:
    settings = load_settings(env_file=args.env_file, need=need)
    setup_logging(args.log_level or settings.log_level)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from bot.service.app import App, NotAuthorized

    settings = _settings(args, need=frozenset({"user"}))
    if not settings.channels:
        logger.warning("no channels configured (CHANWATCH_CHANNELS); nothing to watch yet")
    app = App(settings)

    async def main() -> None:
        app.install_signal_handlers()
        await app.run()

    try:
        asyncio.run(main())
    except NotAuthorized as exc:
        print(f"chanwatch: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    from bot.clients import user_client

    settings = _settings(args, need=frozenset({"user"}))

    async def main() -> int:
        client = user_client(settings)
        await client.connect()
        try:
            if await client.is_user_authorized():
                me = await client.get_me()
                print(f"already logged in as {me.first_name} (id {me.id})")
                return 0
            phone = args.phone or await asyncio.to_thread(input, "phone (international format): ")
            await client.start(
                phone=lambda: phone.strip(),
                code_callback=lambda: input("login code sent by Telegram: ").strip(),
                password=lambda: getpass.getpass("two-step verification password: "),
                max_attempts=3,
            )
            me = await client.get_me()
            print(f"logged in as {me.first_name} (id {me.id}); session: {settings.session_path}")
            return 0
        finally:
            await client.disconnect()

    return asyncio.run(main())


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.cli import demo

    setup_logging(args.log_level or "WARNING")
    return demo.run(Path(args.dir), forever=args.forever, pace=args.pace)


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="data/demo", help="where the demo archive is written")
    parser.add_argument("--forever", action="store_true", help="keep posting after the scenario")
    parser.add_argument("--pace", type=float, default=0.8, help="seconds between steps")


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.cli.doctor import report, run_checks

    setup_logging(args.log_level or "WARNING")
    text, code = report(asyncio.run(run_checks(args.env_file)))
    print(text)
    return code


def cmd_classify(args: argparse.Namespace) -> int:
    from bot.cli import classify

    return classify.run(args, sys.stdin, sys.stdout)


def _add_classify(parser: argparse.ArgumentParser) -> None:
    from bot.cli import classify

    classify.add_arguments(parser)


def cmd_search(args: argparse.Namespace) -> int:
    from bot.cli import search as search_cmd

    return search_cmd.run(args, _settings(args).db_path)


def _add_search(parser: argparse.ArgumentParser) -> None:
    from bot.cli import search as search_cmd

    search_cmd.add_arguments(parser)


def cmd_export(args: argparse.Namespace) -> int:
    from bot.cli import export as export_cmd

    return export_cmd.run(args, _settings(args).db_path)


def _add_export(parser: argparse.ArgumentParser) -> None:
    from bot.cli import export as export_cmd

    export_cmd.add_arguments(parser)


def cmd_verify_export(args: argparse.Namespace) -> int:
    from bot.cli import export as export_cmd

    return export_cmd.run_verify(args)


def _add_verify_export(parser: argparse.ArgumentParser) -> None:
    from bot.cli import export as export_cmd

    export_cmd.add_verify_arguments(parser)


def cmd_import(args: argparse.Namespace) -> int:
    from bot.cli import importer

    return importer.run(args, _settings(args))


def _add_import(parser: argparse.ArgumentParser) -> None:
    from bot.cli import importer

    importer.add_arguments(parser)


def cmd_browse(args: argparse.Namespace) -> int:
    from bot.cli import browse

    return browse.run(args, _settings(args).db_path)


def _add_browse(parser: argparse.ArgumentParser) -> None:
    from bot.cli import browse

    browse.add_arguments(parser)


def cmd_redetect(args: argparse.Namespace) -> int:
    from bot.cli import redetect

    return redetect.run(args, _settings(args).db_path)


def _add_redetect(parser: argparse.ArgumentParser) -> None:
    from bot.cli import redetect

    redetect.add_arguments(parser)


def cmd_migrate_archive(args: argparse.Namespace) -> int:
    from bot.cli import migrate as migrate_cmd

    return migrate_cmd.run(args, _settings(args).db_path)


def _add_migrate_archive(parser: argparse.ArgumentParser) -> None:
    from bot.cli import migrate as migrate_cmd

    migrate_cmd.add_arguments(parser)


def cmd_incidents(args: argparse.Namespace) -> int:
    from bot.cli import incidents as incidents_cmd

    return incidents_cmd.run_list(args, _settings(args).db_path)


def _add_incidents(parser: argparse.ArgumentParser) -> None:
    from bot.cli import incidents as incidents_cmd

    incidents_cmd.add_list_arguments(parser)


def cmd_incident(args: argparse.Namespace) -> int:
    from bot.cli import incidents as incidents_cmd

    return incidents_cmd.run_show(args, _settings(args).db_path)


def _add_incident(parser: argparse.ArgumentParser) -> None:
    from bot.cli import incidents as incidents_cmd

    incidents_cmd.add_show_arguments(parser)


def cmd_status(args: argparse.Namespace) -> int:
    from bot.cli import status

    return status.run(args, _settings(args))


def _add_status(parser: argparse.ArgumentParser) -> None:
    from bot.cli import status

    status.add_arguments(parser)


COMMANDS: dict[str, tuple[str, Handler, Callable[[argparse.ArgumentParser], None] | None]] = {
    "run": ("watch the configured channels and archive every post", cmd_run, None),
    "login": (
        "log the user account in (phone, code, 2FA) and save the session (mode 0600)",
        cmd_login,
        lambda p: p.add_argument("--phone", help="phone number; asked for when missing"),
    ),
    "demo": (
        "play a scripted scenario against a simulated Telegram: no account needed",
        cmd_demo,
        _add_demo,
    ),
    "doctor": (
        "check settings, session, database, disk space and the server; print fixes",
        cmd_doctor,
        None,
    ),
    "status": (
        "show which watcher holds which channels and who delivers (shared archives)",
        cmd_status,
        _add_status,
    ),
    "classify": (
        "detect keywords and captured-soldier claims in JSON lines from stdin",
        cmd_classify,
        _add_classify,
    ),
    "search": (
        "full-text search of the archive (any inflection, phrases, prefix*, AND/OR/NOT)",
        cmd_search,
        _add_search,
    ),
    "export": (
        "export posts with revisions and media metadata as JSON lines or CSV",
        cmd_export,
        _add_export,
    ),
    "verify-export": (
        "check an export file against its manifest (SHA-256, rows, record hashes)",
        cmd_verify_export,
        _add_verify_export,
    ),
    "import": (
        "import a Telegram Desktop export (result.json and its media) into the archive",
        cmd_import,
        _add_import,
    ),
    "browse": (
        "browse and query the archive in Datasette, read-only (needs the 'browse' extra)",
        cmd_browse,
        _add_browse,
    ),
    "incidents": (
        "list incidents (one story across channels), latest first, with a sparkline",
        cmd_incidents,
        _add_incidents,
    ),
    "incident": (
        "show one incident's timeline: every post, its link and why it joined",
        cmd_incident,
        _add_incident,
    ),
    "redetect": (
        "re-run claim detection over the archive and store the new verdicts (no alerts)",
        cmd_redetect,
        _add_redetect,
    ),
    "migrate-archive": (
        "copy the SQLite archive into PostgreSQL (re-runnable) and compare the two",
        cmd_migrate_archive,
        _add_migrate_archive,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chanwatch",
        description="Telegram channel monitor: archive posts, edits and deletions; alert analysts.",
    )
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        default=os.environ.get("CHANWATCH_ENV_FILE", ".env"),
        help="settings file (default: .env, or $CHANWATCH_ENV_FILE); the environment wins over it",
    )
    parser.add_argument("--log-level", default=None, help="override CHANWATCH_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, handler, configure) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if configure is not None:
            configure(command)
        command.set_defaults(handler=handler)
    return parser


# Subcommands whose positional words are a search query, where `-word` excludes.
_QUERY_COMMANDS = ("search", "export")
MINUS_SIGN = "\u2212"  # what a query's `-word` is passed through argparse as


def _protect_minus_words(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`chanwatch search Белгород -плен`: a `-word` that is no option of the command
    is a query word, not an unknown option (argparse would refuse it)."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    at = next((i for i, a in enumerate(argv) if a in _QUERY_COMMANDS), None)
    if at is None or (at > 0 and argv[at - 1] in ("--env-file", "--log-level")):
        return argv
    options = subparsers.choices[argv[at]]._option_string_actions
    out = argv[: at + 1]
    takes_value = False
    for arg in argv[at + 1 :]:
        if arg == "--":
            return out + argv[len(out) :]
        is_word = (
            not takes_value
            and len(arg) > 1
            and arg[0] == "-"
            and arg[1].isalpha()
            and arg.split("=", 1)[0] not in options
        )
        out.append(MINUS_SIGN + arg[1:] if is_word else arg)
        action = options.get(arg.split("=", 1)[0])
        takes_value = action is not None and action.nargs != 0 and "=" not in arg
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(
        _protect_minus_words(list(sys.argv[1:] if argv is None else argv), parser)
    )
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"chanwatch: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"chanwatch: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
