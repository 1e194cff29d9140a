"""Malformed and unexpected messages: archived as far as possible, never stopping the watcher.

Each test sends odd messages both through catch-up (published before the service
starts) and live, then a normal post, and checks that the normal post is archived
too: one poison message must not stop the rest of its channel or batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from telethon.tl import types

import bot.pipeline
import bot.watch.watcher
from bot.simulator import Simulator
from storage import archive
from tests.watch_helpers import eventually, running, settings_for

HUGE = ("Очень длинный пост о пленных. " * 3500)[:100_000]


@pytest.fixture
def user(sim: Simulator):
    return sim.add_user(phone="+15550001", first_name="Monitor")


def _odd_media() -> dict[str, object]:
    return {
        "unsupported": types.MessageMediaUnsupported(),
        "dice": types.MessageMediaDice(value=4, emoticon="🎲"),
        "geo": types.MessageMediaGeo(geo=types.GeoPoint(long=36.9, lat=50.5, access_hash=1)),
        "poll": types.MessageMediaPoll(
            poll=types.Poll(
                id=77,
                hash=0,
                question=types.TextWithEntities(text="Где?", entities=[]),
                answers=[
                    types.PollAnswer(text=types.TextWithEntities("Да", []), option=b"1"),
                    types.PollAnswer(text=types.TextWithEntities("Нет", []), option=b"2"),
                ],
            ),
            results=types.PollResults(),
        ),
    }


def _publish_odd(sim: Simulator, channel, *, push: bool, tag: str) -> dict[str, int]:
    """One of each odd message; returns what -> msg id."""
    ids = {
        kind: sim.post(channel, f"{tag} {kind}", media=media, push=push)
        for kind, media in _odd_media().items()
    }
    ids["empty"] = sim.post(channel, "", push=push)
    ids["service"] = sim.post_service(channel, types.MessageActionPinMessage(), push=push)
    ids["huge"] = sim.post(channel, HUGE, push=push)
    ids["after"] = sim.post(channel, f"{tag} обычный пост после странных", push=push)
    return ids


async def _row(app, channel_id: int, msg_id: int):
    return await archive.get_post(app.db, channel_id, msg_id)


async def _check_odd(app, channel_id: int, ids: dict[str, int], tag: str) -> None:
    for kind in _odd_media():
        row = await _row(app, channel_id, ids[kind])
        assert row is not None, f"{kind} post was not archived"
        assert row["text"] == f"{tag} {kind}"
        media = await archive.post_media(app.db, row["id"])
        assert [m["kind"] for m in media] == [kind], kind
    empty = await _row(app, channel_id, ids["empty"])
    assert empty is not None and empty["text"] == ""
    service = await _row(app, channel_id, ids["service"])
    assert service is not None and service["text"] == "[PinMessage]"
    huge = await _row(app, channel_id, ids["huge"])
    assert huge is not None and huge["text"] == HUGE  # all 100,000 characters kept
    assert huge["lemmas"]  # and analysed, so it can be searched
    after = await _row(app, channel_id, ids["after"])
    assert after is not None and after["text"] == f"{tag} обычный пост после странных"


async def test_odd_messages_are_archived_by_catch_up_and_live(sim, user, tmp_path: Path):
    channel = sim.add_channel(username="odd", title="Странный канал")
    early = _publish_odd(sim, channel, push=False, tag="до")
    async with running(sim, user, settings_for(tmp_path, "odd")) as app:
        await _check_odd(app, channel.id, early, "до")
        live = _publish_odd(sim, channel, push=True, tag="живой")
        await eventually(app, lambda: _archived(app, channel.id, live["after"]))
        await _check_odd(app, channel.id, live, "живой")
        count = await app.db.fetchone("SELECT count(*) FROM posts")
        assert count[0] == 2 * len(early)


async def _archived(app, channel_id: int, msg_id: int) -> bool:
    return await _row(app, channel_id, msg_id) is not None


async def test_a_message_that_cannot_be_converted_is_kept_with_its_text_and_the_error(
    sim, user, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errors_logged: list[str]
):
    channel = sim.add_channel(username="poison", title="Яд")
    convert = bot.watch.watcher.to_post

    def breaks_on_poison(message, channel_id=None):
        if "POISON" in (getattr(message, "message", "") or ""):
            raise KeyError("an attribute this Telethon layer does not have")
        return convert(message, channel_id)

    monkeypatch.setattr(bot.watch.watcher, "to_post", breaks_on_poison)
    before = [
        sim.post(channel, f"пост {i}" + (" POISON" if i == 5 else ""), push=False)
        for i in range(12)
    ]
    async with running(sim, user, settings_for(tmp_path, "poison")) as app:
        live = [sim.post(channel, "живой POISON"), sim.post(channel, "живой обычный")]
        await eventually(app, lambda: _archived(app, channel.id, live[1]))
        for msg_id in before + live:
            assert await _row(app, channel.id, msg_id) is not None, msg_id
        for msg_id, text in ((before[5], "пост 5 POISON"), (live[0], "живой POISON")):
            row = await _row(app, channel.id, msg_id)
            assert row["text"] == text  # the text survived the failed conversion
            raw = json.loads(row["raw"])
            assert raw["conversion_error"].startswith("KeyError")
            assert raw["_"] == "Message"
    assert sum("could not read a Message" in line for line in errors_logged) == 2


async def test_detection_failing_on_one_post_keeps_the_rest_of_its_batch(
    sim, user, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errors_logged: list[str]
):
    channel = sim.add_channel(username="detect", title="Детектор")
    detect = bot.pipeline.detect_claim

    def breaks_on_poison(analysis):
        if any(t.norm == "poison" for t in analysis.tokens):
            raise ZeroDivisionError("a detector bug")
        return detect(analysis)

    monkeypatch.setattr(bot.pipeline, "detect_claim", breaks_on_poison)
    before = [
        sim.post(channel, f"пост {i}" + (" poison" if i == 30 else ""), push=False)
        for i in range(60)
    ]
    async with running(sim, user, settings_for(tmp_path, "detect")) as app:
        live = [sim.post(channel, "живой poison"), sim.post(channel, "Взяли в плен двоих")]
        await eventually(app, lambda: _archived(app, channel.id, live[1]))
        rows = await app.db.fetchall(
            "SELECT msg_id, detected_at FROM posts WHERE channel_id = ? ORDER BY msg_id",
            (channel.id,),
        )
    assert [r["msg_id"] for r in rows] == before + live  # all archived
    undetected = [r["msg_id"] for r in rows if r["detected_at"] is None]
    assert undetected == [before[30], live[0]]  # only the poison posts lack a verdict
    assert sum("claim detection failed" in line for line in errors_logged) == 2


async def test_a_post_the_archive_refuses_is_skipped_and_its_batch_archived(
    sim, user, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errors_logged: list[str]
):
    channel = sim.add_channel(username="refused", title="Отказ")
    row_of = archive._post_row

    def refuses_poison(post, post_id, lemmas, now):
        if "poison" in post.text:
            raise ValueError("a value SQLite cannot bind")
        return row_of(post, post_id, lemmas, now)

    monkeypatch.setattr(archive, "_post_row", refuses_poison)
    before = [
        sim.post(channel, f"пост {i}" + (" poison" if i == 7 else ""), push=False)
        for i in range(40)
    ]
    async with running(sim, user, settings_for(tmp_path, "refused")) as app:
        after = sim.post(channel, "живой пост после отказа")
        await eventually(app, lambda: _archived(app, channel.id, after))
        archived = {
            r["msg_id"]
            for r in await app.db.fetchall(
                "SELECT msg_id FROM posts WHERE channel_id = ?", (channel.id,)
            )
        }
    # everything but the one post the archive cannot store; that one is logged by id
    assert archived == (set(before) | {after}) - {before[7]}
    assert any(f"could not archive post {before[7]}" in line for line in errors_logged)
