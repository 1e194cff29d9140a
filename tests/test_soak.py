"""The soak in smoke size: `bench/soak.py` for 25 s instead of 2 or 10 minutes.

The real service as its own process watches 500 simulated channels posting 50 posts
a second with edits and deletions, while connections drop every 8 s and FloodWaits
are injected every few seconds; then every invariant of the full soak is checked.
The 2-minute short mode and the 10-minute soak are run by hand (README: Faults and
guarantees).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.soak import CHANNELS, Plan, alerts_in, error_records, soak
from bot.simulator.world import SimMessage


def test_the_soak_counts_alerts_on_its_own_channels_posts_only() -> None:
    # The corpus's texts link to other channels' posts; posted in two channels and
    # alerted twice, such a text shows its link twice: neither an alert nor a duplicate.
    text = (
        "🔔 Soak 155\nhttps://t.me/soak_155/7 · 11:04 UTC\n\n"
        "Не так давно мы [спрашивали вас](https://t.me/goproglib/3760) про пет-проекты"
    )
    again = text.replace("soak_155/7", "soak_027/38")
    edited = "https://t.me/soak_155/7 Soak 155 ✏️ edited: про пет-проекты"  # no reply possible
    now = datetime.now(UTC)
    messages = [SimMessage(i, now, t) for i, t in enumerate((text, again, edited), 1)]
    counted = alerts_in(messages, {"soak_155", "soak_027"})
    assert counted == {("soak_155", 7): 1, ("soak_027", 38): 1}
    assert alerts_in(messages)[("goproglib", 3760)] == 2  # what it counted before


def test_the_soak_reports_each_error_with_its_traceback() -> None:
    log = [
        "2026-12-07 22:40:01 WARNING bot.watch.watcher soak_001: FloodWait of 1 s {}",
        "2026-12-07 22:40:02 WARNING bot.watch.watcher could not read soak_002 {}",
        "Traceback (most recent call last):",
        '  File "bot/watch/watcher.py", line 1, in read',
        "ConnectionError: Connection to Telegram failed 5 time(s)",
        "2026-12-07 22:40:03 INFO    bot.pipeline archived 3 posts {}",
        "2026-12-07 22:40:04 ERROR   bot.alerts.notifier could not send alert 7 {}",
        "Task exception was never retrieved",
        "Traceback (most recent call last):",
        "RuntimeError: boom",
    ]
    first, second = error_records(log)
    assert first.splitlines() == log[1:5]  # the warning that carried a traceback, whole
    assert second.splitlines() == log[6:]
    assert error_records(log[:1] + log[5:6]) == []


@pytest.mark.slow
async def test_soak_smoke_loses_nothing_under_drops_and_floodwaits() -> None:
    figures = await soak(Plan(seconds=25, warmup=10, drop_every=8, flood_every=5, pool=600))
    assert figures["service_exit"] == 0, figures
    assert figures["channels"] == CHANNELS
    assert figures["posts_published"] >= CHANNELS + 25 * 40  # the load really ran
    assert figures["connection_drops"] >= 2 and figures["floodwaits_injected"] >= 2
    assert figures["posts_archived"] == figures["posts_published"], figures
    assert figures["edits_recorded"] == figures["edits_made"] > 0, figures
    assert figures["deletions_recorded"] == figures["deletions_made"] > 0, figures
    assert figures["alerts_expected"] > 0 and figures["alerts_missing"] == 0, figures
    assert figures["alerts_duplicated"] == 0 and figures["alerts_unexpected"] == 0, figures
    assert figures["outbox_pending"] == 0
    assert figures["integrity"] == "ok"
    assert figures["service_errors_logged"] == 0, figures.get("first_errors")
    assert figures["rss_growth_pct"] < 10, figures
    assert figures["ok"]
