"""Alert delivery end to end: channel post -> archive -> outbox -> bot -> analyst's chat."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.simulator import Simulator
from tests.bot_helpers import add_rule, bold_words, bot_settings, make_analyst, received, service


@pytest.fixture
def monitor(sim: Simulator):
    return sim.add_user(phone="+15550001", first_name="Monitor")


@pytest.fixture
def bot(sim: Simulator):
    return sim.add_bot(username="watch_bot")


@pytest.fixture
def admin(sim: Simulator):
    return sim.add_user(phone="+15550002", first_name="Admin")


@pytest.fixture
def ann(sim: Simulator):
    return sim.add_user(phone="+15550003", first_name="Ann", username="ann")


async def test_a_matching_post_reaches_the_analyst(sim, monitor, bot, admin, ann, tmp_path: Path):
    rdk = sim.add_channel(username="rdk_channel", title="РДК")
    settings = bot_settings(tmp_path, bot, [admin], "rdk_channel")
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann, "Ann")
        await add_rule(app, ann, "Белгород")
        msg = sim.post(rdk, "Обстрел Белгородской области <утром>")
        sim.post(rdk, "Обстановка спокойная")
        (alert,) = await received(sim, ann, bot, 1)
        assert alert.text.startswith("🔔 РДК\n")
        assert f"https://t.me/rdk_channel/{msg}" in alert.text
        assert "Обстрел Белгородской области <утром>" in alert.text
        assert "rule «Белгород» (Белгородской)" in alert.text
        assert bold_words(alert) == ["РДК", "Белгородской"]
        assert sim.messages_to(admin, from_=bot) == []  # admins have no rules here
