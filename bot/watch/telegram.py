"""The edge: Telethon message and media types become plain `Post` records here.

Nothing downstream of `to_post()` imports Telethon.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from telethon.tl import types

from storage.models import Forward, Media, Post


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_PLAIN = frozenset({str, int, bool, float, type(None)})


def _raw(obj: Any) -> Any:
    """Telethon's to_dict() made JSON-friendly (bytes as hex, dates as ISO)."""
    if type(obj) in _PLAIN:  # most values of a message: returned before the checks below
        return obj
    if isinstance(obj, dict):
        return {k: _raw(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_raw(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, datetime):
        return _utc(obj).isoformat()  # type: ignore[union-attr]
    return obj


def _photo_media(photo: types.TypePhoto | None) -> Media:
    if not isinstance(photo, types.Photo):
        return Media(kind="photo")
    width = height = size = None
    for item in photo.sizes:
        if isinstance(item, types.PhotoSize):
            width, height, size = item.w, item.h, item.size
        elif isinstance(item, types.PhotoSizeProgressive) and item.sizes:
            width, height, size = item.w, item.h, max(item.sizes)
    return Media(
        kind="photo",
        mime="image/jpeg",
        size=size,
        width=width,
        height=height,
        tg_id=photo.id,
        access_hash=photo.access_hash,
        dc_id=photo.dc_id,
    )


def _document_media(document: types.TypeDocument | None) -> Media:
    if not isinstance(document, types.Document):
        return Media(kind="document")
    kind = "document"
    width = height = None
    duration: float | None = None
    file_name = None
    for attr in document.attributes:
        if isinstance(attr, types.DocumentAttributeVideo):
            kind = "round" if attr.round_message else "video"
            width, height, duration = attr.w, attr.h, float(attr.duration)
        elif isinstance(attr, types.DocumentAttributeAudio):
            kind = "voice" if attr.voice else "audio"
            duration = float(attr.duration)
        elif isinstance(attr, types.DocumentAttributeSticker):
            kind = "sticker"
        elif isinstance(attr, types.DocumentAttributeAnimated) and kind == "document":
            kind = "animation"
        elif isinstance(attr, types.DocumentAttributeImageSize) and width is None:
            width, height = attr.w, attr.h
        elif isinstance(attr, types.DocumentAttributeFilename):
            file_name = attr.file_name
    return Media(
        kind=kind,
        mime=document.mime_type,
        size=document.size,
        width=width,
        height=height,
        duration=duration,
        file_name=file_name,
        tg_id=document.id,
        access_hash=document.access_hash,
        dc_id=document.dc_id,
    )


def to_media(media: types.TypeMessageMedia | None) -> tuple[Media, ...]:
    if media is None or isinstance(media, types.MessageMediaEmpty):
        return ()
    if isinstance(media, types.MessageMediaPhoto):
        return (_photo_media(media.photo),)
    if isinstance(media, types.MessageMediaDocument):
        return (_document_media(media.document),)
    if isinstance(media, types.MessageMediaWebPage):
        page = media.webpage
        url = getattr(page, "url", None)
        return (Media(kind="webpage", file_name=url),)
    # geo, poll, contact, dice, game, invoice, story, giveaway, unknown future types
    name = type(media).__name__.removeprefix("MessageMedia").lower() or "unknown"
    return (Media(kind=name),)


def _forward(header: types.MessageFwdHeader | None) -> Forward | None:
    if header is None:
        return None
    channel_id = user_id = None
    if isinstance(header.from_id, types.PeerChannel):
        channel_id = header.from_id.channel_id
    elif isinstance(header.from_id, types.PeerUser):
        user_id = header.from_id.user_id
    return Forward(
        channel_id=channel_id,
        msg_id=header.channel_post,
        from_name=header.from_name or header.post_author,
        user_id=user_id,
        date=_utc(header.date),
    )


def _reactions(reactions: types.MessageReactions | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in reactions.results if reactions else ():
        reaction = result.reaction
        if isinstance(reaction, types.ReactionEmoji):
            key = reaction.emoticon
        elif isinstance(reaction, types.ReactionCustomEmoji):
            key = f"custom:{reaction.document_id}"
        else:
            key = type(reaction).__name__.removeprefix("Reaction").lower()
        counts[key] = counts.get(key, 0) + result.count
    return counts


def channel_id_of(message: types.TypeMessage) -> int | None:
    peer = getattr(message, "peer_id", None)
    return peer.channel_id if isinstance(peer, types.PeerChannel) else None


def to_post(message: types.TypeMessage, channel_id: int | None = None) -> Post | None:
    """Convert a channel message; None for what is not a post (empty messages).

    Service messages (channel created, photo changed, pinned ...) are kept with
    their action as text in brackets, so the archive records them too.
    """
    if isinstance(message, types.MessageEmpty):
        return None
    channel_id = channel_id or channel_id_of(message)
    if channel_id is None or message.date is None:
        return None
    raw = _raw(message.to_dict())
    date = _utc(message.date)
    assert date is not None
    if isinstance(message, types.MessageService):
        action = type(message.action).__name__.removeprefix("MessageAction")
        return Post(
            channel_id=channel_id, msg_id=message.id, date=date, text=f"[{action}]", raw=raw
        )
    reply_to = message.reply_to
    return Post(
        channel_id=channel_id,
        msg_id=message.id,
        date=date,
        text=message.message or "",
        edit_date=_utc(message.edit_date),
        entities=tuple(_raw(e.to_dict()) for e in message.entities or ()),
        grouped_id=message.grouped_id,
        fwd_from=_forward(message.fwd_from),
        reply_to=reply_to.reply_to_msg_id
        if isinstance(reply_to, types.MessageReplyHeader)
        else None,
        post_author=message.post_author,
        views=message.views,
        forwards=message.forwards,
        replies=message.replies.replies if message.replies else None,
        reactions=_reactions(message.reactions),
        media=to_media(message.media),
        raw=raw,
    )


def salvage(message: Any, channel_id: int, error: BaseException) -> Post | None:
    """What can still be read of a message that `to_post` could not convert: its id,
    date and text, with the conversion error in `raw`, so one malformed message is
    archived as far as possible instead of stopping the channel. None if even the id
    or the date cannot be read."""
    try:
        msg_id = int(message.id)
        date = _utc(message.date)
        if date is None:
            return None
        text = getattr(message, "message", None)
        raw: dict[str, Any] = {
            "_": type(message).__name__,
            "conversion_error": f"{error.__class__.__name__}: {error}"[:1000],
        }
        return Post(
            channel_id=channel_id,
            msg_id=msg_id,
            date=date,
            text=text if isinstance(text, str) else "",
            raw=raw,
        )
    except Exception:
        return None
