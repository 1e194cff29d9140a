"""Who may use the bot: admins from the settings, invited analysts, nobody else."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from loguru import logger

from storage import subscribers
from tests.bot_helpers import ask, bot_settings, service
from tests.watch_helpers import TIMEOUT


@pytest.fixture
def settings(tmp_path: Path, bot, admin):
    return bot_settings(tmp_path, bot, [admin])


async def _stranger(app, user_id: int) -> dict | None:
    row = await app.db.fetchone("SELECT * FROM strangers WHERE user_id = ?", (user_id,))
    return dict(row) if row is not None else None


async def _until_stranger(app, user_id: int, messages: int) -> dict:
    """Wait (bounded) until the stranger's row counts `messages`: nothing else is
    written when a stranger is ignored, so the row is the condition to wait on."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            row = await _stranger(app, user_id)
            if row is not None and row["messages"] >= messages:
                return row
            await asyncio.sleep(0.02)


async def test_strangers_get_one_polite_refusal_and_a_log_line(
    sim, monitor, bot, admin, ann, settings
):
    lines: list[str] = []
    sink_id = logger.add(lambda m: lines.append(m.record["message"]), level="TRACE")
    try:
        async with service(sim, monitor, bot, settings) as app:
            refusal = await ask(sim, ann, bot, "/search пленный")
            assert "private bot" in refusal.text and "invitation" in refusal.text
            await sim.user_sends(ann, bot, "/rule add пленный")
            await sim.user_sends(ann, bot, "hello?")
            await sim.user_sends(ann, bot, "/status")
            row = await _until_stranger(app, ann.id, 4)
            assert len(sim.messages_to(ann, from_=bot)) == 1
            assert await subscribers.rules_of(app.db, ann.id) == []
    finally:
        logger.remove(sink_id)
    assert len([line for line in lines if line.startswith("refused Ann (@ann)")]) == 1
    about_ann = [line for line in lines if str(ann.id) in line or "Ann" in line]
    assert len(about_ann) == 1, about_ann  # one line, not one per message
    assert row["messages"] == 4 and row["bad_codes"] == 0


async def test_wrong_codes_get_one_reply_and_one_log_line(sim, monitor, bot, admin, ann, settings):
    lines: list[str] = []
    sink_id = logger.add(lambda m: lines.append(m.record["message"]), level="TRACE")
    try:
        async with service(sim, monitor, bot, settings) as app:
            first = await ask(sim, ann, bot, "/start wrongcode1")
            assert first.text == "This invitation code is not valid. Ask an admin for a new one."
            for attempt in range(2, 6):
                await sim.user_sends(ann, bot, f"/start wrongcode{attempt}")
            row = await _until_stranger(app, ann.id, 5)
            assert row["bad_codes"] == 5
            assert len(sim.messages_to(ann, from_=bot)) == 1  # one reply for five attempts
            # a real invitation still works after wrong guesses
            answer = await ask(sim, admin, bot, "/invite")
            code = re.search(r"start=(\S+)", answer.text).group(1)
            welcome = await ask(sim, ann, bot, f"/start {code}")
            assert "Welcome to chanwatch" in welcome.text
    finally:
        logger.remove(sink_id)
    refused = [line for line in lines if "invitation refused" in line]
    assert len(refused) == 1, refused
    assert not [line for line in lines if "wrongcode" in line]  # codes are never logged


async def test_invite_link_admits_one_analyst_once(sim, monitor, bot, admin, ann, settings):
    eve = sim.add_user(phone="+15550004", first_name="Eve")
    async with service(sim, monitor, bot, settings) as app:
        answer = await ask(sim, admin, bot, "/invite")
        link = re.search(r"https://t\.me/watch_bot\?start=(\S+)", answer.text)
        assert link, answer.text
        code = link.group(1)
        welcome = await ask(sim, ann, bot, f"/start {code}")
        assert "Welcome to chanwatch" in welcome.text
        sub = await subscribers.get(app.db, ann.id)
        assert sub.role == "analyst" and sub.active and sub.name == "Ann (@ann)"
        used = await ask(sim, eve, bot, f"/start {code}")
        assert used.text == "This invitation was already used. Ask an admin for a new one."
        assert await subscribers.get(app.db, eve.id) is None
        # the analyst can now use commands
        assert "Rule 1 added" in (await ask(sim, ann, bot, "/rule add пленный")).text
        # /users lists them; /revoke shuts them out
        users = await ask(sim, admin, bot, "/users")
        assert f"{ann.id} Ann (@ann) — analyst, active, 1 rules" in users.text
        revoked = await ask(sim, admin, bot, f"/revoke {ann.id}")
        assert revoked.text.startswith("Revoked Ann")
        refused = await ask(sim, ann, bot, "/rule list")
        assert "private bot" in refused.text


async def test_expired_and_cancelled_invitations(sim, monitor, bot, admin, ann, settings):
    from datetime import timedelta

    async with service(sim, monitor, bot, settings) as app:
        app.bot.dispatcher.services.invite_ttl = timedelta(seconds=-1)
        code = re.search(r"start=(\S+)", (await ask(sim, admin, bot, "/invite")).text).group(1)
        assert "expired" in (await ask(sim, ann, bot, f"/start {code}")).text
        app.bot.dispatcher.services.invite_ttl = timedelta(hours=1)
        code = re.search(r"start=(\S+)", (await ask(sim, admin, bot, "/invite")).text).group(1)
        assert (await ask(sim, admin, bot, f"/revoke {code}")).text == "Invitation cancelled."
        eve = sim.add_user(phone="+15550004", first_name="Eve")  # ann's replies are rate-limited
        assert "not valid" in (await ask(sim, eve, bot, f"/start {code}")).text


async def test_admin_commands_are_for_admins_and_bad_arguments_get_usage(
    sim, monitor, bot, admin, ann, settings
):
    async with service(sim, monitor, bot, settings) as app:
        await subscribers.upsert(app.db, ann.id, "analyst", name="Ann")
        assert (await ask(sim, ann, bot, "/invite")).text == "Only admins can use /invite."
        assert (await ask(sim, ann, bot, "/watch @x")).text == "Only admins can use /watch."
        assert (await ask(sim, admin, bot, "/invite now")).text == "Usage: /invite (no arguments)"
        assert (await ask(sim, admin, bot, "/revoke")).text.startswith("Usage: /revoke")
        assert "is not an active analyst" in (await ask(sim, admin, bot, "/revoke 42")).text
        assert "admins come from" in (await ask(sim, admin, bot, f"/revoke {admin.id}")).text
        assert (await ask(sim, ann, bot, "/frobnicate")).text.startswith("Unknown command")
        assert (
            await ask(sim, ann, bot, "hello")
        ).text == "I only understand commands; /help lists them."


async def test_commands_are_registered_and_help_lists_them(sim, monitor, bot, admin, ann, settings):
    async with service(sim, monitor, bot, settings) as app:
        names = [name for name, _ in bot.commands]
        for expected in ("watch", "rule", "claims", "mute", "quiet", "tz", "search", "status"):
            assert expected in names
        await subscribers.upsert(app.db, ann.id, "analyst", name="Ann")
        analyst_help = (await ask(sim, ann, bot, "/help")).text
        admin_help = (await ask(sim, admin, bot, "/help")).text
        assert "/rule add" in analyst_help and "/invite" not in analyst_help
        assert "/invite" in admin_help and "/watch" in admin_help


async def test_a_failing_command_gets_an_apology_not_a_traceback(
    sim, monitor, bot, admin, settings, monkeypatch
):
    from bot.commands import base

    async def broken(ctx) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(
        base.REGISTRY, "status", base.REGISTRY["status"].__class__("status", "s", "u", broken)
    )
    async with service(sim, monitor, bot, settings):
        answer = await ask(sim, admin, bot, "/status")
        assert answer.text == "Sorry, /status failed on our side; the error was logged."
        assert "Traceback" not in answer.text


async def test_a_refused_bot_token_stops_the_service_with_a_clear_message(
    sim, monitor, bot, admin, tmp_path: Path
):
    from dataclasses import replace

    from bot.alerts.alertbot import BotOptions
    from bot.service.app import App, NotAuthorized

    settings = replace(bot_settings(tmp_path, bot, [admin]), bot_token="123456:WRONGTOKENWRONG")
    options = BotOptions(session=sim.session_for(None), client_options={"retry_delay": 0.1})
    app = App(
        settings, session=sim.session_for(monitor), client_options={"retry_delay": 0.1}, bot=options
    )
    with pytest.raises(NotAuthorized, match="refused the bot token") as refused:
        async with asyncio.timeout(TIMEOUT):
            await app.run()
    assert "WRONGTOKENWRONG" not in str(refused.value)
