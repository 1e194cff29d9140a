"""The drain after an outage: alerts and follow-ups waiting together go out as a few
combined messages, each post's alert before its follow-ups (real service, bot and
Telethon clients against the simulator, Telegram's limits enforced)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

from storage import outbox
from tests.bot_helpers import (
    add_rule,
    bot_settings,
    make_analyst,
    service,
    settled,
    statuses,
)
from tests.watch_helpers import eventually, running


async def test_a_drain_after_an_outage_combines_alerts_and_follow_ups_into_few_messages(
    sim, monitor, bot, admin, ann, rdk, tmp_path: Path
):
    agg = sim.add_channel(username="news_agg", title="Новости")
    settings = bot_settings(tmp_path, bot, [admin], "rdk_channel", "news_agg")
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        before = [sim.post(rdk, f"Шебекино, до простоя {i}") for i in range(7)]
        await settled(app, lambda: _all_sent(app, ann, 7))
    seen_before = len(sim.messages_to(ann, from_=bot))

    # The bot is down (or Telegram refuses it) while the watcher archives: 49 alerts and
    # 7 follow-ups wait, a follow-up after every 7 alerts.
    texts: list[str] = []
    edited_in_drain: list[str] = []
    async with running(sim, monitor, dataclasses.replace(settings, bot_token=None)) as app:
        for i in range(49):
            channel = rdk if i % 2 else agg
            text = f"Шебекино, сообщение {i}"
            msg_id = sim.post(channel, text)
            texts.append(text)
            if i % 7 == 6:
                k = i // 7
                if k < 5:  # edits of posts alerted before the outage
                    sim.edit(rdk, before[k], f"Шебекино, до простоя {k} (уточнение)")
                elif k == 5:  # a post of the drain itself, edited: its alert goes first
                    sim.edit(channel, msg_id, f"{text} (уточнение)")
                    edited_in_drain.append(text)
                else:
                    sim.delete(rdk, [before[5]])
        await eventually(app, lambda: _pending(app, 56))
        order = await statuses(app, ann)
    followups = [i for i, (reason, _) in enumerate(order) if reason != "alert"]
    assert len(followups) == 7 and followups[0] < len(order) - 7  # interleaved

    sim.enforce_bot_limits = True
    async with service(sim, monitor, bot, settings, limits=None) as app:  # production limits
        await settled(app, lambda: _all_sent(app, ann, 7 + 56))
        drained = sim.messages_to(ann, from_=bot)[seen_before:]
    assert sim.flood_waits_issued == 0
    text = "\n".join(m.text for m in drained)
    print(f"drain after the outage: 49 alerts + 7 follow-ups in {len(drained)} messages")
    assert len(drained) <= 4, [m.text[:40] for m in drained]  # 56 entries, few messages
    assert drained[0].text.startswith("⚡ 49 alerts, 7 updates")
    for posted in texts:  # every alert once
        assert len(re.findall(re.escape(posted) + r"(?!\d)", text)) == 1 + (
            posted in edited_in_drain
        )
    assert text.count("✏️ edited") == 6 and text.count("🗑 deleted — archived copy kept") == 1
    for k in range(5):
        assert f"✏️ edited: Шебекино, до простоя {k} (уточнение)" in text
    (late,) = edited_in_drain  # its alert comes before its edit
    assert text.index(late + "\n") < text.index(f"✏️ edited: {late} (уточнение)")


async def _all_sent(app, user, n: int) -> bool:
    rows = await statuses(app, user)
    return len(rows) == n and all(status == "sent" for _, status in rows)


async def _pending(app, n: int) -> bool:
    return await outbox.pending_count(app.db) == n


async def test_a_combined_message_with_a_follow_up_resent_after_a_crash_is_the_same_message(
    sim, monitor, bot, admin, ann, rdk, tmp_path: Path
):
    from tests.bot_helpers import crash
    from tests.test_bot_crash import Freeze, TelegramDedup
    from tests.watch_helpers import TIMEOUT

    settings = bot_settings(tmp_path, bot, [admin], "rdk_channel")
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        first = sim.post(rdk, "Шебекино, утро")
        await settled(app, lambda: _all_sent(app, ann, 1))
    async with running(sim, monitor, dataclasses.replace(settings, bot_token=None)) as app:
        sim.edit(rdk, first, "Шебекино, утро (уточнение)")  # the follow-up comes first
        for i in range(4):
            sim.post(rdk, f"Шебекино, сообщение {i}")
        await eventually(app, lambda: _pending(app, 5))
    sent: list[tuple[int, str]] = []

    def capture(sender):
        class Capture:
            async def send(self, chat, html, **kw):
                sent.append((kw["random_id"], html))
                return await sender.send(chat, html, **kw)

        return Capture()

    server, freeze = TelegramDedup(), Freeze("after")
    async with service(
        sim, monitor, bot, settings, wrap_sender=lambda s: freeze.wrap(capture(server.wrap(s)))
    ) as app:
        async with asyncio.timeout(TIMEOUT):
            await freeze.reached.wait()  # the combined message reached the chat ...
        await crash(app)  # ... and the process died before recording it
    (original,) = sent
    assert original[1].startswith("⚡ <b>4 alerts</b>, 1 update\n\n")
    async with service(
        sim, monitor, bot, settings, wrap_sender=lambda s: capture(server.wrap(s))
    ) as app:
        await settled(app, lambda: _all_sent(app, ann, 6))
    assert sent == [original, original]  # the same rows, text and random id
    assert len(sim.messages_to(ann, from_=bot)) == 2  # the first alert, the combined one
