"""Every command of the CLI is documented in the README, and every README command exists."""

import re
from pathlib import Path

import pytest

from bot.cli.parser import COMMANDS, build_parser, main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_is_documented_in_readme(name: str) -> None:
    assert f"`chanwatch {name}" in README, f"README does not document `chanwatch {name}`"


def test_readme_mentions_no_command_that_does_not_exist() -> None:
    mentioned = set(re.findall(r"`chanwatch ([a-z][a-z-]*)", README))
    assert mentioned <= set(COMMANDS), mentioned - set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    assert COMMANDS[name][0].split()[0] in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-command"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_global_options_have_help() -> None:
    from bot.cli.parser import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "--env-file FILE settings file (default: .env" in text
    assert "--log-level LOG_LEVEL override CHANWATCH_LOG_LEVEL" in text
