"""to_post(): Telethon types in, plain Post out."""

import json
from datetime import UTC, datetime

import pytest
from telethon.tl import types

from bot.watch.telegram import to_post
from storage.models import canonical_json, iso

DATE = datetime(2023, 6, 1, 9, 30, tzinfo=UTC)
PEER = types.PeerChannel(1001)


def test_text_post_with_counters_forward_and_reply() -> None:
    message = types.Message(
        id=7,
        peer_id=PEER,
        date=DATE,
        message="Бойцы РДК взяли в плен двоих",
        entities=[types.MessageEntityBold(offset=0, length=5)],
        views=1500,
        forwards=12,
        replies=types.MessageReplies(replies=3, replies_pts=1),
        reactions=types.MessageReactions(
            results=[
                types.ReactionCount(reaction=types.ReactionEmoji("👍"), count=5),
                types.ReactionCount(reaction=types.ReactionCustomEmoji(99), count=2),
            ]
        ),
        fwd_from=types.MessageFwdHeader(
            date=DATE, from_id=types.PeerChannel(2002), channel_post=55
        ),
        reply_to=types.MessageReplyHeader(reply_to_msg_id=6),
        edit_date=DATE,
        post_author="admin",
    )
    post = to_post(message)
    assert post is not None
    assert (post.channel_id, post.msg_id, post.text) == (1001, 7, "Бойцы РДК взяли в плен двоих")
    assert (post.views, post.forwards, post.replies, post.reply_to) == (1500, 12, 3, 6)
    assert post.reactions == {"👍": 5, "custom:99": 2}
    assert post.fwd_from is not None and post.fwd_from.key == "2002/55"
    assert post.entities[0]["_"] == "MessageEntityBold"
    assert post.raw["message"] == post.text and post.raw["date"].startswith("2023-06-01T09:30")
    assert len(post.raw_sha256()) == 64


def test_media_kinds() -> None:
    photo = types.Photo(
        id=1,
        access_hash=2,
        file_reference=b"\x01",
        date=DATE,
        sizes=[
            types.PhotoSize("m", 320, 180, 1000),
            types.PhotoSizeProgressive("y", 1280, 720, [100, 5000, 20000]),
        ],
        dc_id=2,
    )
    video = types.Document(
        id=3,
        access_hash=4,
        file_reference=b"",
        date=DATE,
        mime_type="video/mp4",
        size=10_000_000,
        dc_id=2,
        attributes=[
            types.DocumentAttributeVideo(duration=31.5, w=1920, h=1080),
            types.DocumentAttributeFilename("raid.mp4"),
        ],
    )
    voice = types.Document(
        id=5,
        access_hash=6,
        file_reference=b"",
        date=DATE,
        mime_type="audio/ogg",
        size=900,
        dc_id=2,
        attributes=[types.DocumentAttributeAudio(duration=4, voice=True)],
    )
    results = {}
    for name, media in {
        "photo": types.MessageMediaPhoto(photo=photo),
        "video": types.MessageMediaDocument(document=video),
        "voice": types.MessageMediaDocument(document=voice),
        "geo": types.MessageMediaGeo(geo=types.GeoPointEmpty()),
    }.items():
        post = to_post(types.Message(id=1, peer_id=PEER, date=DATE, message="", media=media))
        assert post is not None
        results[name] = post.media[0]
    assert (results["photo"].width, results["photo"].size) == (1280, 20000)
    assert results["video"].kind == "video" and results["video"].duration == 31.5
    assert results["video"].file_name == "raid.mp4" and results["video"].mime == "video/mp4"
    assert results["voice"].kind == "voice"
    assert results["geo"].kind == "geo"


def test_empty_and_service_messages() -> None:
    assert to_post(types.MessageEmpty(id=3, peer_id=PEER)) is None
    service = types.MessageService(
        id=4, peer_id=PEER, date=DATE, action=types.MessageActionChannelCreate(title="x")
    )
    post = to_post(service)
    assert post is not None and post.text == "[ChannelCreate]"


def test_message_outside_a_channel_is_not_a_post() -> None:
    message = types.Message(id=1, peer_id=types.PeerUser(5), date=DATE, message="hi")
    assert to_post(message) is None


def test_raw_records_are_written_as_jsons_canonical_text() -> None:
    """A raw record's text (and so its SHA-256, compared when a post is seen again) is
    what json.dumps(sort_keys, compact, ensure_ascii off) writes, though orjson writes
    it; what orjson refuses goes through json, and what neither takes is refused."""
    video = types.Document(
        id=3,
        access_hash=-4_611_686_018_427_387_904,
        file_reference=b"\x00\xff",
        date=DATE,
        mime_type="video/mp4",
        size=10_000_000,
        dc_id=2,
        attributes=[types.DocumentAttributeVideo(duration=31.5, w=1920, h=1080)],
    )
    geo = types.GeoPoint(long=36.58, lat=50.595414, access_hash=1, accuracy_radius=20)
    records = [
        to_post(
            types.Message(
                id=7,
                peer_id=PEER,
                date=DATE,
                message='Бойцы "РДК"\n\tвзяли в плен \\ двоих 😀 \u2028 \x01',
                entities=[types.MessageEntityTextUrl(offset=0, length=5, url="https://t.me/x")],
                media=media,
                edit_date=DATE,
                views=1500,
            )
        )
        for media in (types.MessageMediaDocument(document=video), types.MessageMediaGeo(geo))
    ]
    values: list[object] = [post.raw for post in records if post is not None]
    values += [
        {"b": [0.1, 0.5, 1.25, 123456.789, 1e15, -0.0001], "a": {"z": None, "é": True}},
        {"when": DATE, "key": b"\x01\x02", "tags": frozenset({"x"}), "pair": (1, 2)},
    ]
    for value in values:
        assert canonical_json(value) == json.dumps(
            value,
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
            default=lambda v: v.hex() if isinstance(v, bytes) else iso(v)
            if isinstance(v, datetime) else sorted(v),
        )  # fmt: skip
    assert canonical_json({2: "b", 1: "a"}) == '{"1":"a","2":"b"}'
    assert canonical_json({"id": 2**70}) == '{"id":1180591620717411303424}'
    with pytest.raises(TypeError, match="cannot serialise object"):
        canonical_json({"x": object()})
