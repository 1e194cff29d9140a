"""Regex rules cannot stall the service: a linear-time engine, and what it cannot
bound is refused with a clear reply."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.detection import analyze
from bot.detection.keywords import compile_rules, parse_rule
from storage import subscribers
from tests.bot_helpers import ask, bot_settings, received, service
from tests.watch_helpers import eventually

# Patterns that backtrack exponentially (or polynomially) in Python's re.
CATASTROPHIC = [
    r"(a+)+$",
    r"(a|a)+$",
    r"(a|aa)+$",
    r"(a*)*$",
    r"(a+)*b",
    r"(\w+\s?)+$",
    r"^(([a-z])+.)+[A-Z]([a-z])+$",
    r"(.*a){25}",
    r"(x+x+)+y",
]


class LoopBlocked(Exception):
    pass


@contextlib.contextmanager
def hang_guard(seconds: int) -> Iterator[list[bool]]:
    """Turn a match that never ends into a failure: SIGALRM interrupts Python's re
    (which checks for signals), so a test on a backtracking engine fails instead of
    hanging. Yields a flag list that is non-empty if the guard fired."""
    fired: list[bool] = []

    def on_alarm(signum: int, frame: object) -> None:
        fired.append(True)
        raise LoopBlocked(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield fired
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_finish_on_long_inputs(pattern: str) -> None:
    rule = parse_rule(f"re:/{pattern}/")
    matcher = compile_rules([rule])
    texts = ["a" * 100_000 + "!", "x" * 50_000, "ab " * 30_000 + "!", "aA" * 40_000 + "1"]
    with hang_guard(60) as fired:
        for text in texts:
            matcher.match(analyze(text))
    assert not fired


def test_regexes_still_match_and_read_unicode_classes() -> None:
    matcher = compile_rules([parse_rule(r"re:/(a+)+$/"), parse_rule(r"re:/ЧВК\s+«?\w+/i")])
    text = "бойцы чвк\u00a0«Вагнер» вошли " + "a" * 50_000
    found = {m.rule_id: [w.text for w in m.words] for m in matcher.match(analyze(text))}
    assert found == {r"re:/(a+)+$/": ["a" * 50_000], r"re:/ЧВК\s+«?\w+/i": ["чвк\u00a0«Вагнер"]}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (r"re:/(a)\1/", "backreferences"),
        (r"re:/(?=a)a/", "lookaheads and lookbehinds are not supported"),
        (r"re:/(?<!x)a/", "lookaheads and lookbehinds are not supported"),
        (r"re:/((a{999}){999}){999}/", "repetition counts above 1000"),
        (r"re:/\bплен/", "word boundary"),
        (r"re:/[\W]/", "cannot be used inside"),
        (r"re:/a/x", "flags i, m, s"),
        ("re:/" + "a" * 301 + "/", "longer than 300"),
    ],
)
def test_what_cannot_be_bounded_is_refused_clearly(rule: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rule(rule)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_catastrophic_rule_does_not_hold_up_other_channels_or_commands(
    sim, monitor, bot, admin, ann, rdk, tmp_path: Path
) -> None:
    legion = sim.add_channel(username="legion", title="Легион")
    settings = bot_settings(tmp_path, bot, [admin], "rdk_channel", "legion")
    with hang_guard(60) as fired:
        async with service(sim, monitor, bot, settings) as app:
            await subscribers.upsert(app.db, ann.id, "analyst", name="Ann")
            app.pipeline.audience_changed()
            added = await ask(sim, ann, bot, "/rule add re:/(a+)+$/")
            assert added.text == "Rule 1 added: re:/(a+)+$/"
            await ask(sim, ann, bot, "/rule add Белгород")
            bad = sim.post(rdk, "a" * 4000 + "!")
            good = sim.post(legion, "Обстрел Белгорода ночью")
            status = await ask(sim, admin, bot, "/status")
            assert "rdk_channel" in status.text or "РДК" in status.text

            async def both_archived() -> bool:
                row = await app.db.fetchone(
                    "SELECT count(*) FROM posts WHERE (channel_id, msg_id) IN ((?, ?), (?, ?))",
                    (rdk.id, bad, legion.id, good),
                )
                return row[0] == 2

            await eventually(app, both_archived)
            (alert,) = (await received(sim, ann, bot, 3))[2:]
            assert "Белгорода" in alert.text  # the regex did not match the text ending in "!"
            sim.post(rdk, "a" * 4000)
            (regex_alert,) = (await received(sim, ann, bot, 4))[3:]
            assert "(a+)+$" in regex_alert.text
    assert not fired


async def test_regex_rules_per_analyst_are_capped_and_refusals_are_one_line(
    sim, monitor, bot, admin, ann, rdk, tmp_path: Path
) -> None:
    settings = bot_settings(tmp_path, bot, [admin], "rdk_channel")
    async with service(sim, monitor, bot, settings) as app:
        await subscribers.upsert(app.db, ann.id, "analyst", name="Ann")
        app.pipeline.audience_changed()
        refused = await ask(sim, ann, bot, r"/rule add re:/(a)\1/")
        assert "backreferences" in refused.text and "\n" not in refused.text
        for n in range(10):
            assert "added" in (await ask(sim, ann, bot, f"/rule add re:/x{n}y/")).text
        capped = await ask(sim, ann, bot, "/rule add re:/x10y/")
        assert capped.text == "at most 10 regex rules; delete some with /rule del N"
        assert "added" in (await ask(sim, ann, bot, "/rule add пленный")).text  # keywords still
        assert len(await subscribers.rules_of(app.db, ann.id)) == 11
