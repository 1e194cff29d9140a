"""Alert planning, delivery decisions and message formatting: pure, with a fixed clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.alerts import format as fmt
from bot.alerts.policy import (
    Claim,
    Decision,
    Hit,
    Policy,
    Subject,
    decide,
    digest_due,
    in_quiet_hours,
    plan,
    plan_deleted,
    story_of,
)
from storage.models import Forward, Post
from storage.outbox import AlertView, Place, Queued, payload_json
from storage.subscribers import Subscriber

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ANN = Subscriber(chat_id=1, role="analyst", name="Ann")
BOB = Subscriber(chat_id=2, role="admin", name="Bob", claims=False)
TEXT = "Бойцы РДК взяли в плен двоих военнослужащих"


def post(text: str = TEXT, **kw: object) -> Post:
    fields: dict = {"channel_id": 10, "msg_id": 5, "date": NOW - timedelta(minutes=1)}
    fields.update(kw)
    return Post(text=text, **fields)


def hit(rule: str = "плен", start: int = 18, end: int = 22, rule_id: int = 1) -> Hit:
    return Hit(rule_id, rule, (TEXT[start:end],), ((start, end),))


CLAIM = Claim("claim", 0.8, count=2, unverified=True, spans=((10, 22),))


def stored(payload: dict) -> dict:
    """A planned payload as the outbox stores it (JSON: a tuple is an array)."""
    return json.loads(payload_json(payload))


def subject(**kw: object) -> Subject:
    fields: dict = {"post_id": 77, "post": post(), "status": "new", "source": "live"}
    fields.update(kw)
    return Subject(**fields)


def test_one_alert_per_chat_however_many_rules_and_the_claim_fire() -> None:
    hits = {1: [hit(), hit("взять", 10, 15, rule_id=2)]}
    rows = plan(subject(hits=hits, claim=CLAIM), {1: ANN, 2: BOB}, Policy(), NOW)
    assert [(r.chat_id, r.reason) for r in rows] == [(1, "alert")]
    why = stored(rows[0].payload)
    assert [r["rule"] for r in why["rules"]] == ["плен", "взять"]
    assert why["claim"] == {"label": "claim", "score": 0.8, "count": 2, "unverified": True}
    assert why["spans"] == [[10, 15], [10, 22], [18, 22]]
    assert why["rev"] == 0 and "text" not in why and "delayed" not in why
    assert rows[0].story == "10/5"


def test_claims_respect_each_chats_switch_and_minimum_score() -> None:
    weak = Claim("claim", 0.4)
    strict = Subscriber(chat_id=3, role="analyst", claims_min=0.9)
    assert plan(subject(claim=CLAIM), {2: BOB, 3: strict}, Policy(), NOW) == []
    assert [r.chat_id for r in plan(subject(claim=CLAIM), {1: ANN}, Policy(), NOW)] == [1]
    assert plan(subject(claim=weak), {1: ANN}, Policy(), NOW) == []
    denial = Claim("denial", 0.9)
    assert plan(subject(claim=denial), {1: ANN}, Policy(), NOW) == []


def test_chats_alerted_for_the_claim_alone_get_the_same_payload() -> None:
    cat = Subscriber(chat_id=3, role="analyst", name="Cat")
    rows = plan(
        subject(hits={3: [hit()]}, claim=CLAIM, source="catchup"), {1: ANN, 3: cat}, Policy(), NOW
    )
    assert stored(rows[0].payload) == {
        "claim": {"label": "claim", "score": 0.8, "count": 2, "unverified": True},
        "spans": [[10, 22]],
        "rev": 0,
        "source": "catchup",
        "delayed": True,
    }
    assert [r["rule"] for r in rows[1].payload["rules"]] == ["плен"]
    assert stored(rows[1].payload)["spans"] == [[10, 22], [18, 22]]
    dan = Subscriber(chat_id=4, role="analyst", name="Dan")
    rows = plan(subject(claim=CLAIM), {1: ANN, 4: dan}, Policy(), NOW)
    assert [r.chat_id for r in rows] == [1, 4] and rows[0].payload == rows[1].payload


def test_forwarded_copies_share_the_origins_story() -> None:
    copy = post(channel_id=11, msg_id=9, fwd_from=Forward(channel_id=10, msg_id=5))
    assert story_of(copy) == story_of(post()) == "10/5"
    assert story_of(post(fwd_from=Forward(from_name="someone"))) == "10/5"


def test_catch_up_alerts_are_marked_delayed_unless_too_old() -> None:
    hits = {1: [hit()]}
    rows = plan(subject(hits=hits, source="catchup"), {1: ANN}, Policy(), NOW)
    assert rows[0].payload["delayed"] is True
    old = subject(hits=hits, source="catchup", post=post(date=NOW - timedelta(days=2)))
    assert plan(old, {1: ANN}, Policy(max_age=timedelta(hours=12)), NOW) == []
    assert plan(old, {1: ANN}, Policy(max_age=None), NOW)  # no limit configured
    live_old = subject(hits=hits, post=post(date=NOW - timedelta(days=2)))
    assert plan(live_old, {1: ANN}, Policy(), NOW)  # a live post is never "too old"
    assert plan(subject(hits=hits, source="import"), {1: ANN}, Policy(), NOW) == []


def test_album_alerts_wait_for_the_other_parts() -> None:
    rows = plan(subject(hits={1: [hit()]}, post=post(grouped_id=42)), {1: ANN}, Policy(), NOW)
    assert rows[0].not_before == NOW + timedelta(seconds=1)


def test_edit_into_a_match_alerts_and_edits_of_alerted_posts_follow_up() -> None:
    edited = post(edit_date=NOW)
    into = plan(
        subject(status="edited", post=edited, hits={1: [hit()]}, revision=1),
        {1: ANN, 2: BOB},
        Policy(),
        NOW,
    )
    assert [(r.chat_id, r.reason, r.payload.get("edited")) for r in into] == [(1, "alert", True)]
    follow = plan(
        subject(status="edited", post=edited, hits={}, alerted={1: "sent", 2: "muted"}, revision=2),
        {1: ANN, 2: BOB},
        Policy(),
        NOW,
    )
    assert [(r.chat_id, r.reason) for r in follow] == [(1, "edited:2")]
    assert follow[0].payload == {"text": TEXT, "matches": False}
    assert plan(subject(status="unchanged", hits={1: [hit()]}), {1: ANN}, Policy(), NOW) == []


def test_deletion_follows_up_only_where_the_alert_was_or_will_be_sent() -> None:
    rows = plan_deleted(77, "10/5", {1: "sent", 2: "digest", 3: "pending"})
    assert [(r.chat_id, r.reason) for r in rows] == [(1, "deleted"), (3, "deleted")]


def test_inactive_subscribers_get_nothing() -> None:
    gone = Subscriber(chat_id=1, role="analyst", active=False)
    assert plan(subject(hits={1: [hit()]}), {1: gone}, Policy(), NOW) == []


# --- delivery decisions ---------------------------------------------------------


def test_mute_quiet_hours_and_digest_in_the_chats_time_zone() -> None:
    kyiv = Subscriber(chat_id=1, role="analyst", tz="Europe/Kyiv")
    assert decide(kyiv, NOW) is Decision.SEND
    muted = Subscriber(chat_id=1, role="analyst", muted_until=NOW + timedelta(hours=2))
    assert decide(muted, NOW) is Decision.MUTED
    assert decide(muted, NOW + timedelta(hours=2)) is Decision.SEND
    quiet = Subscriber(
        chat_id=1, role="analyst", tz="Europe/Kyiv", quiet_from="23:00", quiet_to="07:00"
    )
    # 12:00 UTC is 15:00 in Kyiv (summer time); 21:30 UTC is 00:30 there
    assert not in_quiet_hours(quiet, NOW)
    assert in_quiet_hours(quiet, NOW.replace(hour=21, minute=30))
    assert in_quiet_hours(quiet, NOW.replace(hour=20, minute=0))  # 23:00 local
    assert not in_quiet_hours(quiet, NOW.replace(hour=4, minute=0))  # 07:00 local
    assert decide(quiet, NOW.replace(hour=21, minute=30)) is Decision.SEND_SILENTLY
    day = Subscriber(chat_id=1, role="analyst", quiet_from="09:00", quiet_to="17:00")
    assert in_quiet_hours(day, NOW) and not in_quiet_hours(day, NOW.replace(hour=18))
    digest = Subscriber(chat_id=1, role="analyst", digest_at="08:00")
    assert decide(digest, NOW) is Decision.DIGEST
    assert decide(digest, NOW, followup=True) is Decision.SEND
    assert decide(None, NOW) is Decision.SKIP
    assert decide(Subscriber(chat_id=1, role="analyst", active=False), NOW) is Decision.SKIP


def test_digest_is_due_once_per_local_day_at_its_time() -> None:
    sub = Subscriber(chat_id=1, role="analyst", tz="Europe/Kyiv", digest_at="08:00")
    before = datetime(2024, 5, 1, 4, 59, tzinfo=UTC)  # 07:59 Kyiv
    at = datetime(2024, 5, 1, 5, 0, tzinfo=UTC)
    assert not digest_due(sub, before)
    assert digest_due(sub, at)
    done = Subscriber(
        chat_id=1, role="analyst", tz="Europe/Kyiv", digest_at="08:00", last_digest_at=at
    )
    assert not digest_due(done, at + timedelta(hours=20))
    assert digest_due(done, at + timedelta(days=1))
    assert not digest_due(Subscriber(chat_id=1, role="analyst"), at)


# --- formatting -----------------------------------------------------------------


def view(payload: dict, *, reason: str = "alert", **kw: object) -> AlertView:
    queued = Queued(9, 1, 77, reason, "10/5", payload, None, 0, None, NOW)
    fields: dict = {
        "alert": queued,
        "place": Place(10, 5, "РДК <official>", "rdk_channel"),
        "date": NOW,
        "text": TEXT,
        "deleted": False,
        "grouped_id": None,
        "media": (),
        "also_in": (),
        "reply_to": None,
    }
    fields.update(kw)
    return AlertView(**fields)


def alert_payload() -> dict:
    rows = plan(subject(hits={1: [hit()]}, claim=CLAIM), {1: ANN}, Policy(), NOW)
    return rows[0].payload


def test_alert_names_channel_links_post_highlights_and_says_why() -> None:
    text = fmt.alert(view(alert_payload()), "Europe/Kyiv")
    assert "<b>РДК &lt;official&gt;</b>" in text
    assert '<a href="https://t.me/rdk_channel/5">https://t.me/rdk_channel/5</a>' in text
    assert "2024-05-01 15:00 EEST" in text
    assert "Бойцы РДК <b>взяли в плен</b> двоих" in text
    assert "rule «плен» (плен)" in text
    assert "captured-soldier claim, score 0.80, 2 captives, unverified" in text


def test_private_channel_link_album_summary_and_other_appearances() -> None:
    v = view(
        alert_payload(),
        place=Place(10, 5, "Closed", None),
        grouped_id=1,
        media=("photo", "photo", "photo", "video"),
        also_in=(Place(11, 9, "Новости", "news_agg"),),
    )
    text = fmt.alert(v, "UTC")
    assert "https://t.me/c/10/5" in text
    assert "📎 album: 3 photos, 1 video" in text
    assert 'Also in: <a href="https://t.me/news_agg/9">Новости</a>' in text
    assert fmt.media_summary(["video"], False) == "video"


def test_delayed_and_edited_marks() -> None:
    payload = alert_payload() | {"delayed": True, "edited": True}
    assert "delayed · matches after an edit" in fmt.alert(view(payload), "UTC")


def test_long_posts_are_cut_around_the_match_and_messages_fit_telegrams_limit() -> None:
    long_text = ("слово " * 2000) + "<пленный> " + ("ещё " * 2000)
    start = long_text.index("пленный")
    payload = {"rules": [{"rule": "пленный", "words": ["пленный"]}], "text": long_text}
    payload["spans"] = [[start, start + 7]]
    text = fmt.alert(view(payload), "UTC")
    assert "&lt;<b>пленный</b>&gt;" in text
    assert fmt.plain_length(text) <= fmt.LIMIT
    huge = "😀" * 5000
    assert fmt.plain_length(fmt.fit(f"<b>{huge}</b>")) <= fmt.LIMIT
    assert fmt.fit(f"<b>{huge}</b>").endswith("…</b>")


def test_follow_ups_and_bursts() -> None:
    edited = view({"text": "новый текст", "matches": False}, reason="edited:1", reply_to=3)
    assert fmt.followup(edited, "UTC") == "✏️ edited (no longer matches): новый текст"
    deleted = view({}, reason="deleted", reply_to=3)
    assert fmt.followup(deleted, "UTC") == "🗑 deleted — archived copy kept"
    in_burst = view({}, reason="deleted", reply_to=3, shared=True)
    expected = '<a href="https://t.me/rdk_channel/5">РДК &lt;official&gt;</a> 🗑 deleted'
    assert fmt.followup(in_burst, "UTC").startswith(expected)
    views = [view(alert_payload()) for _ in range(100)]
    messages = fmt.burst(views, "UTC")
    assert len(messages) > 1
    assert all(fmt.plain_length(m) <= fmt.LIMIT for m in messages)
    assert sum(m.count("• ") for m in messages) == 100
    assert messages[0].startswith(f"⚡ <b>100 alerts</b> · 1/{len(messages)}")
    nothing = "📰 <b>Digest 2024-05-01</b>: nothing matched since the last digest."
    assert fmt.digest([], "UTC", NOW) == [nothing]


def test_a_combined_message_carries_follow_ups_among_alerts_in_order() -> None:
    views = [view(alert_payload()) for _ in range(6)]
    views.insert(2, view({"text": "новый текст", "matches": True}, reason="edited:1"))
    views.insert(5, view({}, reason="deleted", reply_to=3))
    ((message, carried),) = fmt.burst_parts(views, "UTC")
    assert carried == list(range(8))
    assert message.startswith("⚡ <b>6 alerts</b>, 2 updates\n\n")
    entries = message.split("\n\n")[1:]
    assert len(entries) == 8
    assert entries[2].endswith("✏️ edited: новый текст")
    assert entries[5].endswith("🗑 deleted — archived copy kept")
    assert all('<a href="https://t.me/rdk_channel/5">' in e for e in entries)
    assert fmt.burst_header(0, updates=1) == "⚡ <b>1 update</b>"
    assert fmt.burst_header(1, 2, 3, updates=0) == "⚡ <b>1 alert</b> · 2/3"
    resent = fmt.combined(views, "UTC")  # the same rows resent after a crash: one message
    assert resent.startswith("⚡ <b>6 alerts</b>, 2 updates\n\n") and resent.count("• ") == 8
