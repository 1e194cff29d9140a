from pathlib import Path

import pytest

from config.settings import (
    Backfill,
    ChannelSpec,
    ConfigError,
    ServerAddress,
    load_settings,
    parse_channel,
)

HASH = "0123456789abcdef0123456789abcdef"
TOKEN = "123456:AAE-secret_token_value_xyz"


def test_defaults_without_anything(tmp_path: Path) -> None:
    settings = load_settings({}, env_file=tmp_path / "missing.env")
    assert settings.db_path == Path("data/chanwatch.db")
    assert settings.channels == ()
    assert settings.log_level == "INFO"


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        f"CHANWATCH_API_ID=111\nCHANWATCH_API_HASH={HASH}\nCHANWATCH_LOG_LEVEL=debug\n"
        "CHANWATCH_CHANNELS=@rdk_channel, https://t.me/legion_svoboda:poll, -1001234567890\n"
    )
    settings = load_settings({"CHANWATCH_API_ID": "222"}, env_file=env, need=frozenset({"user"}))
    assert settings.api_id == 222
    assert settings.api_hash == HASH
    assert settings.log_level == "DEBUG"
    assert settings.channels == (
        ChannelSpec("rdk_channel", "live"),
        ChannelSpec("legion_svoboda", "poll"),
        ChannelSpec(1234567890, "live"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Belgorod_Governor", ChannelSpec("belgorod_governor")),
        ("t.me/s/rdk_channel", ChannelSpec("rdk_channel")),
        ("https://telegram.me/rdk_channel/", ChannelSpec("rdk_channel")),
        ("rdk_channel:poll", ChannelSpec("rdk_channel", "poll")),
        ("1234567", ChannelSpec(1234567)),
    ],
)
def test_channel_forms(text: str, expected: ChannelSpec) -> None:
    assert parse_channel(text) == expected


@pytest.mark.parametrize("text", ["https://t.me/+AbCdEf", "a", "bad name!", "0", "@1abc"])
def test_bad_channel_forms(text: str) -> None:
    with pytest.raises(ValueError):
        parse_channel(text)


def test_every_problem_reported_at_once_without_secrets(tmp_path: Path) -> None:
    bad_hash = "not-a-hash-but-SECRET-looking"
    bad_token = "SECRETTOKEN"
    key = tmp_path / "server.pem"
    key.write_text("-----BEGIN RSA PUBLIC KEY-----\ngarbage\n-----END RSA PUBLIC KEY-----\n")
    environ = {
        "CHANWATCH_API_ID": "abc",
        "CHANWATCH_API_HASH": bad_hash,
        "CHANWATCH_BOT_TOKEN": bad_token,
        "CHANWATCH_ADMINS": "42, bob",
        "CHANWATCH_CHANNELS": "@ok_channel, https://t.me/+invite",
        "CHANWATCH_LOG_LEVEL": "LOUD",
        "CHANWATCH_SERVER": "localhost:443",
        "CHANWATCH_SERVER_KEY": str(key),
        "CHANWATCH_BACKFILL": "lots",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, env_file=None, need=frozenset({"user", "bot"}))
    message = str(caught.value)
    problems = caught.value.problems
    assert len(problems) == 9, problems
    for name in (
        "CHANWATCH_API_ID",
        "CHANWATCH_API_HASH",
        "CHANWATCH_BOT_TOKEN",
        "'bob'",
        "invite link",
        "CHANWATCH_LOG_LEVEL",
        "CHANWATCH_SERVER ",
        "PEM RSA public key",
        "CHANWATCH_BACKFILL",
    ):
        assert name in message, name
    assert bad_hash not in message and bad_token not in message


def test_missing_required_values_are_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env_file=None, need=frozenset({"user", "bot"}))
    joined = "\n".join(caught.value.problems)
    for name in ("API_ID", "API_HASH", "BOT_TOKEN", "ADMINS"):
        assert f"CHANWATCH_{name} is missing" in joined


def test_unreadable_key_file_and_key_without_server(tmp_path: Path) -> None:
    environ = {"CHANWATCH_SERVER_KEY": str(tmp_path / "nope.pem")}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, env_file=None)
    assert any("cannot read" in p for p in caught.value.problems)
    assert any("CHANWATCH_SERVER is not" in p for p in caught.value.problems)


def test_server_key_and_backfill(tmp_path: Path) -> None:
    import rsa

    public, _ = rsa.newkeys(512)
    key = tmp_path / "server.pem"
    key.write_bytes(public.save_pkcs1())
    settings = load_settings(
        {
            "CHANWATCH_SERVER": "2:127.0.0.1:4430",
            "CHANWATCH_SERVER_KEY": str(key),
            "CHANWATCH_BACKFILL": "7d",
            "CHANWATCH_BOT_TOKEN": TOKEN,
            "CHANWATCH_ADMINS": "1 2,3",
        },
        env_file=None,
    )
    assert settings.server == ServerAddress(2, "127.0.0.1", 4430)
    assert settings.server_key is not None and "BEGIN RSA PUBLIC KEY" in settings.server_key
    assert settings.backfill == Backfill(posts=1_000_000, days=7)
    assert settings.admin_ids == frozenset({1, 2, 3})
    assert TOKEN not in repr(settings)


def test_env_example_documents_every_setting_and_loads() -> None:
    import re

    root = Path(__file__).resolve().parent.parent
    source = (root / "config" / "settings.py").read_text()
    used = {"CHANWATCH_" + n for n in re.findall(r'get\("([A-Z_]+)"\)', source)}
    used |= {"CHANWATCH_" + n for n in re.findall(r'\("([A-Z_]+)", "[a-z_]+"\)', source)}
    example = (root / ".env.example").read_text()
    documented = set(re.findall(r"^(CHANWATCH_[A-Z_]+)=", example, re.M))
    assert used and used <= documented, used - documented
    assert load_settings({}, env_file=root / ".env.example").log_level == "INFO"


@pytest.mark.parametrize("text", ["0", "65", "four", "-2"])
def test_catch_up_concurrency_must_be_a_sane_number(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"CHANWATCH_CATCHUP_CONCURRENCY": text}, env_file=None)
    assert caught.value.problems == [
        "CHANWATCH_CATCHUP_CONCURRENCY must be a whole number from 1 to 64"
    ]


def test_catch_up_concurrency_default_and_value() -> None:
    assert load_settings({}, env_file=None).catchup_concurrency == 4
    assert (
        load_settings({"CHANWATCH_CATCHUP_CONCURRENCY": "16"}, env_file=None).catchup_concurrency
        == 16
    )


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("LEASE_SECONDS", "1", "CHANWATCH_LEASE_SECONDS must be a whole number from 2 to 3600"),
        ("LEASE_SECONDS", "1m", "CHANWATCH_LEASE_SECONDS must be a whole number from 2 to 3600"),
        ("JOIN_LIMIT", "1001", "CHANWATCH_JOIN_LIMIT must be a whole number from 0 to 1000"),
        ("JOIN_LIMIT", "-5", "CHANWATCH_JOIN_LIMIT must be a whole number from 0 to 1000"),
    ],
)
def test_lease_and_join_limit_must_be_sane_numbers(name: str, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({f"CHANWATCH_{name}": text}, env_file=None)
    assert caught.value.problems == [problem]


def test_lease_and_join_limit_defaults_and_values() -> None:
    default = load_settings({}, env_file=None)
    assert (default.lease_seconds, default.join_limit) == (60, 500)
    given = load_settings(
        {"CHANWATCH_LEASE_SECONDS": "10", "CHANWATCH_JOIN_LIMIT": "0"}, env_file=None
    )
    assert (given.lease_seconds, given.join_limit) == (10, 0)
