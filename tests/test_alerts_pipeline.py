"""Archiving and alert planning in one transaction: detection results, outbox rows, dedup."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.alerts.policy import Policy
from bot.pipeline import Pipeline
from storage import archive, outbox, subscribers
from storage.db import open_database
from storage.models import Channel, Forward, Post

NOW = datetime.now(UTC).replace(microsecond=0)
CLAIM = "Бойцы РДК взяли в плен двоих военнослужащих ВСУ"


@pytest.fixture
async def db(archive_target: Path | str):
    database = await open_database(archive_target)
    await archive.save_channel(database, Channel(10, 1, "rdk_channel", "РДК"))
    await archive.save_channel(database, Channel(11, 2, "news_agg", "Новости"))
    await subscribers.upsert(database, 1, "analyst", name="Ann")
    await subscribers.upsert(database, 2, "analyst", name="Bob")
    await subscribers.set_preferences(database, 2, claims=False)
    yield database
    await database.close()


def post(channel: int, msg: int, text: str, **kw: object) -> Post:
    fields: dict = {"date": NOW - timedelta(minutes=1)}
    fields.update(kw)
    return Post(channel_id=channel, msg_id=msg, text=text, **fields)


async def rows(db) -> list[tuple]:
    found = await db.fetchall("SELECT chat_id, post_id, reason, payload FROM alerts ORDER BY id")
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in found]


async def test_detection_is_stored_and_one_alert_per_chat_is_planned(db) -> None:
    await subscribers.add_rule(db, 1, "пленный", None)
    await subscribers.add_rule(db, 1, '"взять в плен"', None)
    await subscribers.add_rule(db, 2, "Белгород", None)
    pipeline = Pipeline(db)
    woken = []
    pipeline.on_alerts(lambda: woken.append(1))
    (done,) = await pipeline.ingest([post(10, 5, CLAIM)], "live")
    stored = await archive.get_post(db, 10, 5)
    assert stored["claim_label"] == "claim" and stored["claim_score"] > 0.5
    assert stored["lang"] == "ru" and stored["claim_count"] == 2
    assert json.loads(stored["claim_evidence"])[0]["kind"]
    planned = await rows(db)
    assert [(c, r) for c, _, r, _ in planned] == [(1, "alert")]
    why = planned[0][3]
    assert [r["rule"] for r in why["rules"]] == ['"взять в плен"']
    assert why["claim"]["label"] == "claim"
    assert woken == [1]

    # the same post again (catch-up, reconcile) plans nothing new
    await pipeline.ingest([post(10, 5, CLAIM)], "catchup")
    assert len(await rows(db)) == 1


async def test_rules_limited_to_a_channel_and_exclusions(db) -> None:
    await subscribers.add_rule(db, 2, "Белгород in @news_agg -not учения", None)
    pipeline = Pipeline(db)
    await pipeline.ingest([post(10, 1, "Обстрел Белгорода")], "live")
    await pipeline.ingest([post(11, 1, "Учения под Белгородом")], "live")
    assert await rows(db) == []
    await pipeline.ingest([post(11, 2, "Обстрел Белгородской области")], "live")
    assert [(c, r["rules"][0]["words"]) for c, _, _, r in await rows(db)] == [(2, ["Белгородской"])]


async def test_forwarded_copies_alert_once(db) -> None:
    await subscribers.add_rule(db, 2, "Шебекино", None)
    pipeline = Pipeline(db)
    await pipeline.ingest([post(10, 7, "Обстановка в Шебекино")], "live")
    fwd = Forward(channel_id=10, msg_id=7)
    await pipeline.ingest([post(11, 3, "Обстановка в Шебекино", fwd_from=fwd)], "live")
    assert len(await rows(db)) == 1
    # copies of a post from an unwatched channel dedup among themselves too
    other = Forward(channel_id=99, msg_id=1)
    await pipeline.ingest([post(10, 8, "Шебекино снова", fwd_from=other)], "live")
    await pipeline.ingest([post(11, 4, "Шебекино снова", fwd_from=other)], "live")
    assert len(await rows(db)) == 2
    (view,) = await outbox.views(db, (await outbox.due(db))[1:])
    assert [p.username for p in view.also_in] == ["news_agg"]


async def test_edit_into_match_then_edit_and_delete_follow_ups(db) -> None:
    await subscribers.add_rule(db, 2, "Шебекино", None)
    pipeline = Pipeline(db)
    await pipeline.ingest([post(10, 9, "Обстановка спокойная")], "live")
    assert await rows(db) == []
    edit = NOW
    await pipeline.ingest([post(10, 9, "Обстрел Шебекино", edit_date=edit)], "live")
    (first,) = await rows(db)
    assert first[2] == "alert" and first[3]["edited"] is True
    later = edit + timedelta(minutes=1)
    await pipeline.ingest([post(10, 9, "Обстрел Шебекино, двое раненых", edit_date=later)], "live")
    await pipeline.deleted(10, [9])
    await pipeline.deleted(10, [9])  # reported twice: one follow-up
    assert [r for _, _, r, _ in await rows(db)] == ["alert", "edited:2", "deleted"]
    assert (await rows(db))[1][3]["matches"] is True


async def test_old_catch_up_posts_are_archived_only_and_imports_never_alert(db) -> None:
    await subscribers.add_rule(db, 1, "Шебекино", None)
    pipeline = Pipeline(db, policy=Policy(max_age=timedelta(hours=1)))
    old = NOW - timedelta(hours=3)
    await pipeline.ingest([post(10, 1, "Шебекино вчера", date=old)], "catchup")
    await pipeline.ingest([post(10, 2, "Шебекино из архива")], "import")
    assert await rows(db) == []
    await pipeline.ingest([post(10, 3, "Шебекино сейчас")], "catchup")
    assert [r["delayed"] for _, _, _, r in await rows(db)] == [True]
    assert (await archive.get_post(db, 10, 2))["claim_label"] == "none"  # detected all the same
    # `chanwatch import --alert`: imports alert too, as late posts
    await pipeline.ingest([post(10, 4, "Шебекино из файла")], "import", alert=True)
    await pipeline.ingest([post(10, 5, "Шебекино давно", date=old)], "import", alert=True)
    assert [r["source"] for _, _, _, r in await rows(db)] == ["catchup", "import"]


async def test_rule_changes_apply_after_audience_changed(db) -> None:
    pipeline = Pipeline(db)
    await pipeline.ingest([post(10, 1, "Шебекино")], "live")
    await subscribers.add_rule(db, 1, "Шебекино", None)
    pipeline.audience_changed()
    await pipeline.ingest([post(10, 2, "Шебекино")], "live")
    await subscribers.deactivate(db, 1, "revoked")
    pipeline.audience_changed()
    await pipeline.ingest([post(10, 3, "Шебекино")], "live")
    assert [p for _, p, _, _ in await rows(db)] == [(await archive.get_post(db, 10, 2))["id"]]


async def test_an_alert_shows_the_text_it_was_planned_on_after_later_edits(db) -> None:
    await subscribers.add_rule(db, 2, "Шебекино", None)
    pipeline = Pipeline(db)
    await pipeline.ingest([post(10, 9, "Обстановка спокойная")], "live")
    await pipeline.ingest([post(10, 9, "Обстрел Шебекино", edit_date=NOW)], "live")
    (alert,) = [q for q in await outbox.due(db) if q.reason == "alert"]
    assert alert.payload["rev"] == 1 and "text" not in alert.payload
    # edited twice more before delivery: the alert's spans still point into its own text
    for n, text in enumerate(("Обстрел Шебекино, двое раненых", "Всё спокойно"), start=1):
        await pipeline.ingest([post(10, 9, text, edit_date=NOW + timedelta(minutes=n))], "live")
    (view,) = await outbox.views(db, [alert])
    assert view.text == "Обстрел Шебекино"
    ((start, end),) = alert.payload["spans"]
    assert view.text[start:end] == "Шебекино"
    # a post never edited since its alert shows its current text
    await pipeline.ingest([post(10, 10, "Шебекино утром")], "live")
    (fresh,) = [
        q for q in await outbox.due(db) if q.post_id != alert.post_id and q.reason == "alert"
    ]
    (view,) = await outbox.views(db, [fresh])
    assert fresh.payload["rev"] == 0 and view.text == "Шебекино утром"


async def test_a_post_grouped_in_process_is_analysed_once(db, monkeypatch) -> None:
    import bot.pipeline

    analysed: list[str] = []
    real = bot.pipeline.analyze

    def counted(text: str):
        analysed.append(text)
        return real(text)

    monkeypatch.setattr(bot.pipeline, "analyze", counted)
    pipeline = Pipeline(db)
    await pipeline.ingest([post(10, 5, CLAIM)], "live")
    answer = "Губернатор: у Козинки бойцы РДК взяли в плен двоих военнослужащих"
    await pipeline.ingest([post(11, 6, answer, date=NOW)], "live")
    # both were compared by grouping (a claim opens an incident; the second joins it)
    # from the analysis detection made, not from a second one
    assert analysed == [CLAIM, answer]
    members = await db.fetchall("SELECT incident_id FROM incident_posts ORDER BY post_id")
    assert len(members) == 2 and members[0][0] is not None


async def test_posts_re_read_as_archived_are_not_analysed_again(db, monkeypatch) -> None:
    """Reconcile and metrics snapshots re-read posts that are mostly as they were
    archived: those are archived again (counters) without detection; a changed one in
    the same batch is analysed, and so is one that changed after the pipeline looked
    (its look said unchanged)."""
    import bot.pipeline as pipeline_module

    await subscribers.add_rule(db, 1, "пленный", None)
    pipeline = Pipeline(db)
    first = [
        post(10, 1, CLAIM, views=5, raw={"views": 5}),
        post(10, 2, "Обстрел Шебекино"),
        post(10, 3, "Тихо"),
    ]
    await pipeline.ingest(first, "catchup")
    before = {p.msg_id: await archive.get_post(db, 10, p.msg_id) for p in first}
    analysed: list[str] = []
    real = pipeline_module.analyze

    def counting(text: str):
        analysed.append(text)
        return real(text)

    monkeypatch.setattr(pipeline_module, "analyze", counting)
    again = [
        post(10, 1, CLAIM, views=99, raw={"views": 99}),  # counted again, not analysed
        post(10, 2, "Обстрел Шебекино"),
        post(10, 3, "Тихо. Пленный сдался", edit_date=NOW),  # edited
    ]
    result = await pipeline.ingest(again, "reconcile")
    assert [a.status for a in result] == ["unchanged", "unchanged", "edited"]
    assert analysed == ["Тихо. Пленный сдался"]
    kept = await archive.get_post(db, 10, 1)
    assert kept["views"] == 99
    for column in ("lemmas", "claim_label", "claim_score", "lang"):
        assert kept[column] == before[1][column], column
    assert (await archive.get_post(db, 10, 3))["lemmas"] != before[3]["lemmas"]
    assert [(c, r) for c, _, r, _ in await rows(db)] == [(1, "alert"), (1, "alert")]

    # the look before the transaction said unchanged, but the post changed: analysed
    # inside the transaction after all, and archived as the edit it is
    async def stale_look(_db, posts):
        return {(p.channel_id, p.msg_id) for p in posts}

    monkeypatch.setattr(archive, "unchanged", stale_look)
    analysed.clear()
    planned = len(await rows(db))
    (late,) = await pipeline.ingest([post(10, 2, "Пленный в Шебекино", edit_date=NOW)], "poll")
    assert late.status == "edited"
    assert analysed == ["Пленный в Шебекино"]
    assert "пленный" in (await archive.get_post(db, 10, 2))["lemmas"]
    (chat, post_id, _, _) = (await rows(db))[planned]  # alerted as a new match
    assert (chat, post_id) == (1, late.post_id)


async def test_a_batch_with_two_texts_for_one_post_is_not_taken_as_unchanged(db) -> None:
    await archive.archive_post(db, post(10, 7, "Первый текст"), "первый текст")
    copies = [post(10, 7, "Первый текст"), post(10, 7, "Второй текст", edit_date=NOW)]
    assert await archive.unchanged(db, copies) == set()
    assert await archive.unchanged(db, copies[:1]) == {(10, 7)}
    entities = post(10, 7, "Первый текст", entities=[{"type": "bold", "offset": 0, "length": 6}])
    assert await archive.unchanged(db, [entities]) == set()
