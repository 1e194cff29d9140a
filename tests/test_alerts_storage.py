"""Subscribers, invites, rules and the outbox on a real SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import archive, outbox, subscribers
from storage.models import Channel, Forward, Media, Post, iso
from storage.outbox import NewAlert

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(archive_target: Path | str):
    from storage.db import open_database

    database = await open_database(archive_target)
    await archive.save_channel(database, Channel(10, 1, "rdk_channel", "РДК"))
    await archive.save_channel(database, Channel(11, 2, "news_agg", "Новости"))
    yield database
    await database.close()


def post(channel: int, msg: int, text: str = "текст", **kw: object) -> Post:
    return Post(channel_id=channel, msg_id=msg, date=T0 + timedelta(minutes=msg), text=text, **kw)


async def test_admins_from_settings_and_invited_analysts(db) -> None:
    await subscribers.sync_admins(db, frozenset({1, 2, 3}))
    assert {s.chat_id for s in await subscribers.list_all(db)} == {1, 2, 3}
    await subscribers.upsert(db, 3, "admin", invited_by=1)  # also invited as an analyst
    await subscribers.sync_admins(db, frozenset({1}))
    two, three = await subscribers.get(db, 2), await subscribers.get(db, 3)
    assert (two.role, two.active, two.inactive_reason) == ("analyst", False, "no longer an admin")
    assert (three.role, three.active) == ("analyst", True)
    await subscribers.sync_admins(db, frozenset({1, 2}))
    assert (await subscribers.get(db, 2)).active and (await subscribers.get(db, 2)).is_admin

    invite = await subscribers.create_invite(db, 1, timedelta(hours=1), now=T0)
    assert await subscribers.open_invites(db, now=T0) == [invite]
    outcome = await subscribers.redeem_invite(
        db, invite.code, 50, name="Ann", access_hash=99, now=T0 + timedelta(minutes=5)
    )
    assert outcome == "ok"
    ann = await subscribers.get(db, 50)
    assert (ann.role, ann.name, ann.access_hash, ann.active) == ("analyst", "Ann", 99, True)
    again = await subscribers.redeem_invite(db, invite.code, 51, name="Eve", access_hash=1, now=T0)
    assert again == "used"
    late = await subscribers.create_invite(db, 1, timedelta(hours=1), now=T0)
    when = T0 + timedelta(hours=2)
    assert await subscribers.redeem_invite(
        db, late.code, 51, name=None, access_hash=1, now=when
    ) == ("expired")
    assert await subscribers.redeem_invite(db, "nope", 51, name=None, access_hash=1) == "unknown"
    assert await subscribers.get(db, 51) is None


async def test_revoked_analyst_keeps_rules_and_comes_back_with_a_new_invite(db) -> None:
    await subscribers.upsert(db, 50, "analyst", name="Ann")
    await subscribers.add_rule(db, 50, "пленный", None)
    assert await subscribers.deactivate(db, 50, "revoked")
    assert not (await subscribers.get(db, 50)).active
    assert await subscribers.active_rules(db) == []
    invite = await subscribers.create_invite(db, 1, timedelta(hours=1))
    assert await subscribers.redeem_invite(db, invite.code, 50, name=None, access_hash=None) == "ok"
    assert [r.text for r in await subscribers.active_rules(db)] == ["пленный"]


async def test_strangers_are_noted_once_and_counted(db) -> None:
    from datetime import timedelta

    from storage.models import utcnow

    now = utcnow()
    first = await subscribers.note_stranger(db, 66, "Mallory", now=now)
    assert first.first and first.notify
    again = await subscribers.note_stranger(db, 66, "Mallory", bad_code=True, now=now)
    assert not again.first and not again.notify and (again.messages, again.bad_codes) == (2, 1)
    later = now + subscribers.STRANGER_QUIET + timedelta(seconds=1)
    after_an_hour = await subscribers.note_stranger(db, 66, "Mallory", now=later)
    assert after_an_hour.notify and after_an_hour.messages == 3  # one line an hour at most
    quiet = await subscribers.note_stranger(db, 66, "Mallory", now=later)
    assert not quiet.notify


async def test_rules_and_preferences(db) -> None:
    await subscribers.upsert(db, 50, "analyst")
    a = await subscribers.add_rule(db, 50, "пленный", None)
    b = await subscribers.add_rule(db, 50, '"взяли в плен" -учения', 10)
    assert await subscribers.rules_of(db, 50) == [a, b]
    assert not await subscribers.delete_rule(db, 51, a.id)  # not theirs
    assert await subscribers.delete_rule(db, 50, a.id)
    assert await subscribers.rules_of(db, 50) == [b]
    await subscribers.set_preferences(
        db, 50, tz="Europe/Kyiv", muted_until=T0, quiet_from="23:00", quiet_to="07:00"
    )
    sub = await subscribers.get(db, 50)
    assert (sub.tz, sub.muted_until, sub.quiet_from) == ("Europe/Kyiv", T0, "23:00")
    with pytest.raises(ValueError):
        await subscribers.set_preferences(db, 50, role="admin")


async def _archive(db, *posts: Post) -> list[int]:
    async with db.transaction() as conn:
        done = await archive.archive_posts_in(conn, [(p, "") for p in posts])
    return [a.post_id for a in done]


async def test_outbox_ignores_replans_and_forwarded_copies(db) -> None:
    await subscribers.upsert(db, 50, "analyst")
    original, copy = await _archive(
        db, post(10, 5), post(11, 9, fwd_from=Forward(channel_id=10, msg_id=5))
    )
    async with db.transaction() as conn:
        first = await outbox.add_in(conn, [NewAlert(50, original, "alert", "10/5", {"a": 1})])
        again = await outbox.add_in(conn, [NewAlert(50, original, "alert", "10/5", {"a": 2})])
        forward = await outbox.add_in(conn, [NewAlert(50, copy, "alert", "10/5", {})])
        follow = await outbox.add_in(conn, [NewAlert(50, original, "edited:1", "10/5", {})])
        assert await outbox.alerted_in(conn, [original, copy]) == {original: {50: "pending"}}
    assert (first, again, forward, follow) == (1, 0, 0, 1)
    queued = await outbox.due(db)
    assert [(q.reason, q.payload) for q in queued] == [("alert", {"a": 1}), ("edited:1", {})]
    assert await outbox.pending_count(db) == 2

    views = await outbox.views(db, queued)
    assert views[0].place.title == "РДК" and views[0].also_in[0].username == "news_agg"
    assert views[1].reply_to is None
    batch = await outbox.assign_batch(db, [queued[0].id])
    await outbox.mark_sent(db, [queued[0].id], tg_msg_id=41)
    assert batch == queued[0].id
    assert await outbox.original_of(db, 50, original) == ("sent", 41)
    assert (await outbox.views(db, [queued[1]]))[0].reply_to == 41
    assert [q.reason for q in await outbox.due(db)] == ["edited:1"]


async def test_a_planned_batch_keeps_its_order_and_counts_only_new_rows(db) -> None:
    for chat in (50, 51):
        await subscribers.upsert(db, chat, "analyst")
    a, b = await _archive(db, post(10, 5), post(10, 6))
    later = T0 + timedelta(hours=1)
    async with db.transaction() as conn:
        await outbox.add_in(conn, [NewAlert(51, b, "alert", "10/6", {"n": 0})])
        added = await outbox.add_in(
            conn,
            [
                NewAlert(50, b, "alert", "10/6", {"n": 1}),
                NewAlert(51, b, "alert", "10/6", {"n": 2}),  # planned in an earlier batch
                NewAlert(50, a, "alert", "10/5", {"n": 3}),
                NewAlert(50, a, "alert", "10/5", {"n": 4}),  # twice in one batch: first kept
                NewAlert(51, a, "edited:1", "10/5", {"n": 5}, not_before=later),
            ],
        )
        again = await outbox.add_in(conn, [NewAlert(50, a, "alert", "10/5", {"n": 6})])
    assert (added, again) == (3, 0)
    rows = await db.fetchall("SELECT chat_id, payload, not_before FROM alerts ORDER BY id")
    assert [(r["chat_id"], r["payload"], r["not_before"]) for r in rows] == [
        (51, '{"n":0}', None),
        (50, '{"n":1}', None),
        (50, '{"n":3}', None),
        (51, '{"n":5}', iso(later)),
    ]


async def test_rows_planned_one_at_a_time_keep_their_own_payloads(db) -> None:
    await subscribers.upsert(db, 50, "analyst")
    ids = await _archive(db, *(post(10, msg) for msg in range(1, 41)))
    shared = {"claim": 1}
    async with db.transaction() as conn:
        # a generator: each row (and its payload) is gone before the next one is made
        made = (NewAlert(50, pid, "alert", f"10/{n}", {"n": n}) for n, pid in enumerate(ids))
        assert await outbox.add_in(conn, made) == 40
        both = [NewAlert(50, pid, "edited:1", "10/1", shared) for pid in ids[:2]]
        assert await outbox.add_in(conn, both) == 2
    rows = await db.fetchall("SELECT payload FROM alerts ORDER BY id")
    assert [r["payload"] for r in rows] == [f'{{"n":{n}}}' for n in range(40)] + ['{"claim":1}'] * 2


def test_payloads_are_stored_as_json_would_write_them() -> None:
    """orjson writes what json.dumps(ensure_ascii=False, compact) writes for every kind
    of value a payload holds; an integer orjson refuses goes through json instead."""
    payloads = [
        {
            "rules": [{"id": 7, "rule": "взять в плен", "words": ["взяли", "плен"]}],
            "claim": {"label": "claim", "score": 0.87, "count": None, "unverified": True},
            "spans": [(0, 5), [10, 14]],
            "rev": 0,
            "source": "catchup",
            "delayed": True,
        },
        {"text": 'Цитата "в кавычках"\n\tи \\ обратная черта \u2028 😀 \x01', "matches": False},
        {"thread": 12, "incident": 3, "score": 0.1, "tiny": 1e-7, "big": 1e17},
        {"id": 2**70},
    ]
    for payload in payloads:
        expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        assert json.loads(outbox.payload_json(payload)) == json.loads(expected)
    assert outbox.payload_json(payloads[0]) == json.dumps(
        payloads[0], ensure_ascii=False, separators=(",", ":")
    )
    assert outbox.payload_json(payloads[1]) == json.dumps(
        payloads[1], ensure_ascii=False, separators=(",", ":")
    )
    assert outbox.payload_json(payloads[3]) == '{"id":1180591620717411303424}'


async def test_album_media_is_summarised_from_every_part(db) -> None:
    ids = await _archive(
        db,
        post(10, 1, "подпись", grouped_id=7, media=(Media("photo"),)),
        post(10, 2, "", grouped_id=7, media=(Media("photo"),)),
        post(10, 3, "", grouped_id=7, media=(Media("video"),)),
    )
    await subscribers.upsert(db, 50, "analyst")
    async with db.transaction() as conn:
        await outbox.add_in(conn, [NewAlert(50, ids[0], "alert", "10/1", {})])
    (view,) = await outbox.views(db, await outbox.due(db))
    assert view.media == ("photo", "photo", "video") and view.grouped_id == 7


async def test_deferral_skip_and_stats(db) -> None:
    await subscribers.upsert(db, 50, "analyst")
    (pid,) = await _archive(db, post(10, 5))
    async with db.transaction() as conn:
        await outbox.add_in(conn, [NewAlert(50, pid, "alert", "10/5", {})])
    (row,) = await outbox.due(db)
    await outbox.defer(db, [row.id], T0 + timedelta(seconds=30), "FLOOD_WAIT")
    assert await outbox.next_wakeup(db, T0) == T0 + timedelta(seconds=30)
    assert await outbox.next_wakeup(db, T0 + timedelta(minutes=1)) is None
    assert await outbox.chats_due(db, T0) == []
    assert await outbox.chats_due(db, T0 + timedelta(minutes=1)) == [50]
    assert await outbox.skip_pending_of(db, 50, "blocked the bot") == 1
    assert await outbox.pending_count(db) == 0
    stats = await outbox.stats(db, T0 - timedelta(days=1000))
    assert stats == {"skipped": 1, "queue": 0}
