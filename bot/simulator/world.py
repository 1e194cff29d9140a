"""The simulated Telegram world: accounts, bots, channels, messages and their pts boxes.

Pure state plus the rules Telegram applies to it. Nothing here does I/O; when an
event must reach a live client the world calls ``push(user_id, updates, origin)``,
which the server turns into encrypted messages on that user's connections.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from telethon.tl import TLObject, types

Push = Callable[[int, TLObject, object | None], None]


class RpcFail(Exception):
    """A request failed the way Telegram would fail it (becomes an ``rpc_error``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# ----------------------------------------------------------------------------- entities


@dataclass(eq=False)
class SimMessage:
    """One message, either a channel post or a copy in one account's private box."""

    id: int
    date: dt.datetime
    text: str = ""
    channel_id: int | None = None  # set for channel posts
    owner_id: int | None = None  # private box: whose box this copy lives in
    peer_user_id: int | None = None  # private box: the other party
    from_id: int | None = None  # sender (user or bot id); None for channel posts
    out: bool = False
    entities: list[Any] | None = None
    media: Any = None
    fwd_from: types.MessageFwdHeader | None = None
    reply_to: int | None = None
    reply_markup: Any = None
    views: int | None = None
    forwards: int | None = None
    replies: int | None = None
    reactions: dict[str, int] = field(default_factory=dict)
    grouped_id: int | None = None
    edit_date: dt.datetime | None = None
    deleted: bool = False
    pair_id: int | None = None  # private: id of the same message in the other party's box
    action: Any = None  # a MessageAction*: this is a service message (pin, title change...)
    file_bytes: bytes | None = None  # an uploaded file this message carries (bots' photos)

    @property
    def edited(self) -> bool:
        return self.edit_date is not None

    @property
    def buttons(self) -> list[list[tuple[str, bytes | None]]]:
        """Inline keyboard as rows of (text, callback data or None)."""
        rows: list[list[tuple[str, bytes | None]]] = []
        for row in getattr(self.reply_markup, "rows", None) or []:
            out_row = []
            for button in row.buttons:
                data = getattr(getattr(button, "type", None), "data", None)
                if data is None:
                    data = getattr(button, "data", None)
                out_row.append((button.text, data))
            rows.append(out_row)
        return rows

    def peer(self) -> types.PeerChannel | types.PeerUser:
        if self.channel_id is not None:
            return types.PeerChannel(self.channel_id)
        assert self.peer_user_id is not None
        return types.PeerUser(self.peer_user_id)

    def to_tl(self) -> types.Message | types.MessageService:
        if self.action is not None:
            return types.MessageService(
                id=self.id,
                peer_id=self.peer(),
                date=self.date,
                action=self.action,
                out=self.out or None,
                post=True if self.channel_id is not None else None,
            )
        reactions = None
        if self.reactions:
            reactions = types.MessageReactions(
                results=[
                    types.ReactionCount(reaction=types.ReactionEmoji(emoticon=emoji), count=count)
                    for emoji, count in self.reactions.items()
                ],
                can_see_list=False,
            )
        replies = None
        if self.replies is not None:
            replies = types.MessageReplies(replies=self.replies, replies_pts=0)
        return types.Message(
            id=self.id,
            peer_id=self.peer(),
            date=self.date,
            message=self.text,
            out=self.out or None,
            post=True if self.channel_id is not None else None,
            from_id=types.PeerUser(self.from_id) if self.from_id is not None else None,
            fwd_from=self.fwd_from,
            reply_to=(
                types.MessageReplyHeader(reply_to_msg_id=self.reply_to)
                if self.reply_to is not None
                else None
            ),
            media=self.media,
            reply_markup=self.reply_markup,
            entities=list(self.entities) if self.entities else None,
            views=self.views,
            forwards=self.forwards,
            replies=replies,
            edit_date=self.edit_date,
            grouped_id=self.grouped_id,
            reactions=reactions,
        )


@dataclass(eq=False)
class BoxEvent:
    """One pts step (or several) in a private box or a channel."""

    pts: int
    pts_count: int
    kind: str  # "new" | "edit" | "delete"
    message_ids: list[int]


@dataclass(eq=False)
class SimUser:
    """A user account or a bot, with its private message box (the common pts box)."""

    id: int
    access_hash: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    phone: str | None = None
    password: str | None = None
    is_bot: bool = False
    token: str | None = None
    pts: int = 1
    next_msg_id: int = 1
    messages: dict[int, SimMessage] = field(default_factory=dict)
    events: list[BoxEvent] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)
    commands: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        kind = "bot" if self.is_bot else "user"
        return f"SimUser({kind} {self.id} @{self.username})"


@dataclass(eq=False)
class SimChannel:
    """A broadcast channel with its history and its own pts."""

    id: int
    access_hash: int
    title: str
    username: str | None = None
    about: str = ""
    date: dt.datetime = field(default_factory=utcnow)
    pts: int = 1
    next_msg_id: int = 1
    messages: dict[int, SimMessage] = field(default_factory=dict)
    events: list[BoxEvent] = field(default_factory=list)
    members: set[int] = field(default_factory=set)
    _live: list[SimMessage] = field(default_factory=list, repr=False)
    _live_key: tuple[int, int] = field(default=(-1, -1), repr=False)

    def __repr__(self) -> str:
        return f"SimChannel({self.id} @{self.username})"

    def live_messages_desc(self) -> list[SimMessage]:
        return list(self.live_desc())

    def live_desc(self) -> Sequence[SimMessage]:
        """The live messages newest first, shared until the history changes (a post adds a
        message, a deletion moves pts): getHistory pages through thousands of messages
        and must not sort them all again for every page. Not to be modified."""
        key = (len(self.messages), self.pts)
        if self._live_key != key:
            self._live = sorted(
                (m for m in self.messages.values() if not m.deleted),
                key=lambda m: m.id,
                reverse=True,
            )
            self._live_key = key
        return self._live


# ----------------------------------------------------------------------------- rate limits


class TokenBucket:
    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_needed(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


# ----------------------------------------------------------------------------- world


class World:
    """All accounts, bots and channels of one simulator."""

    def __init__(self, push: Push, seed: int | None = None, dc_id: int = 2) -> None:
        self.push = push
        self.dc_id = dc_id
        self.rng = random.Random(seed)
        self.users: dict[int, SimUser] = {}
        self.channels: dict[int, SimChannel] = {}
        self._usernames: dict[str, SimUser | SimChannel] = {}
        self._next_user_id = 100_001
        self._next_channel_id = 1_000_000_001
        self._next_media_id = 5_000_000_001
        self.files: dict[int, int] = {}  # media id -> size, for upload.getFile
        self.uploads: dict[tuple[int, int], dict[int, bytes]] = {}  # (user, file id) -> parts
        self.listeners: list[Callable[[], None]] = []
        # bot send limits (off by default)
        self.enforce_bot_limits = False
        self.join_limit = 500  # channels one account may join (CHANNELS_TOO_MUCH past it)
        self.flood_waits_issued = 0
        # Telegram refuses a second message with a random id it has seen from the same
        # sender (RANDOM_ID_DUPLICATE); off by default, like the simulator always was
        self.dedup_random_ids = False
        self._random_ids: set[tuple[int, int]] = set()
        self._chat_buckets: dict[tuple[int, int], TokenBucket] = {}
        self._global_buckets: dict[int, TokenBucket] = {}

    # --------------------------------------------------------------- helpers

    def _hash(self) -> int:
        return self.rng.getrandbits(63)

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener()

    def _claim_username(self, username: str | None, owner: SimUser | SimChannel) -> None:
        if username is None:
            return
        key = username.lower().lstrip("@")
        if key in self._usernames:
            raise ValueError(f"username @{username} is taken")
        self._usernames[key] = owner

    def by_username(self, username: str) -> SimUser | SimChannel | None:
        return self._usernames.get(username.lower().lstrip("@"))

    def by_phone(self, phone: str) -> SimUser | None:
        wanted = _digits(phone)
        for user in self.users.values():
            if user.phone and _digits(user.phone) == wanted:
                return user
        return None

    def by_token(self, token: str) -> SimUser | None:
        for user in self.users.values():
            if user.is_bot and user.token == token:
                return user
        return None

    # --------------------------------------------------------------- creation

    def add_user(
        self,
        phone: str | None = None,
        first_name: str = "User",
        username: str | None = None,
        password: str | None = None,
        last_name: str | None = None,
    ) -> SimUser:
        user = SimUser(
            id=self._next_user_id,
            access_hash=self._hash(),
            first_name=first_name,
            last_name=last_name,
            username=username,
            phone=phone if phone is not None else f"+1555{self._next_user_id:07d}",
            password=password,
        )
        self._next_user_id += 1
        self._claim_username(username, user)
        self.users[user.id] = user
        return user

    def add_bot(
        self, username: str, token: str | None = None, first_name: str | None = None
    ) -> SimUser:
        bot = SimUser(
            id=self._next_user_id,
            access_hash=self._hash(),
            first_name=first_name or username,
            username=username,
            is_bot=True,
        )
        bot.token = token or f"{bot.id}:SIM{self.rng.getrandbits(64):016x}"
        self._next_user_id += 1
        self._claim_username(username, bot)
        self.users[bot.id] = bot
        return bot

    def add_channel(self, username: str | None, title: str, about: str = "") -> SimChannel:
        channel = SimChannel(
            id=self._next_channel_id,
            access_hash=self._hash(),
            title=title,
            username=username,
            about=about,
        )
        self._next_channel_id += 1
        self._claim_username(username, channel)
        self.channels[channel.id] = channel
        return channel

    # --------------------------------------------------------------- media builders

    def _media_id(self, size: int) -> int:
        media_id = self._next_media_id
        self._next_media_id += 1
        self.files[media_id] = size
        return media_id

    def photo(
        self, w: int = 1280, h: int = 720, size: int | None = None
    ) -> types.MessageMediaPhoto:
        size = size if size is not None else w * h // 8
        media_id = self._media_id(size)
        small_w, small_h = _fit(w, h, 320)
        mid_w, mid_h = _fit(w, h, 800)
        return types.MessageMediaPhoto(
            photo=types.Photo(
                id=media_id,
                access_hash=self._hash(),
                file_reference=b"sim",
                date=utcnow(),
                sizes=[
                    types.PhotoSize(type="m", w=small_w, h=small_h, size=max(1, size // 20)),
                    types.PhotoSize(type="x", w=mid_w, h=mid_h, size=max(1, size // 4)),
                    types.PhotoSize(type="y", w=w, h=h, size=size),
                ],
                dc_id=self.dc_id,
            )
        )

    def document(
        self,
        mime: str = "application/pdf",
        file_name: str | None = "document.pdf",
        size: int = 100_000,
        attributes: list[Any] | None = None,
    ) -> types.MessageMediaDocument:
        attrs = list(attributes or [])
        if file_name:
            attrs.append(types.DocumentAttributeFilename(file_name=file_name))
        return types.MessageMediaDocument(
            document=types.Document(
                id=self._media_id(size),
                access_hash=self._hash(),
                file_reference=b"sim",
                date=utcnow(),
                mime_type=mime,
                size=size,
                dc_id=self.dc_id,
                attributes=attrs,
            )
        )

    def video(
        self,
        duration: float = 10,
        w: int = 1280,
        h: int = 720,
        size: int | None = None,
        file_name: str | None = "video.mp4",
        mime: str = "video/mp4",
    ) -> types.MessageMediaDocument:
        size = size if size is not None else int(duration * 250_000)
        media = self.document(
            mime=mime,
            file_name=file_name,
            size=size,
            attributes=[
                types.DocumentAttributeVideo(duration=duration, w=w, h=h, supports_streaming=True)
            ],
        )
        media.video = True
        return media

    # --------------------------------------------------------------- rendering

    def user_tl(self, user: SimUser, viewer: SimUser | None) -> types.User:
        is_self = viewer is not None and viewer.id == user.id
        return types.User(
            id=user.id,
            is_self=is_self or None,
            bot=user.is_bot or None,
            access_hash=user.access_hash,
            first_name=user.first_name,
            last_name=user.last_name,
            username=user.username,
            phone=user.phone if is_self and not user.is_bot else None,
            bot_info_version=1 if user.is_bot else None,
            bot_nochats=user.is_bot or None,
        )

    def channel_tl(self, channel: SimChannel, viewer: SimUser | None) -> types.Channel:
        return types.Channel(
            id=channel.id,
            title=channel.title,
            photo=types.ChatPhotoEmpty(),
            date=channel.date,
            broadcast=True,
            left=(viewer is None or viewer.id not in channel.members) or None,
            access_hash=self.access_hash_for(channel, viewer),
            username=channel.username,
            participants_count=len(channel.members),
        )

    def users_of(self, messages: list[SimMessage], viewer: SimUser | None) -> list[types.User]:
        ids: dict[int, None] = {}
        for msg in messages:
            for uid in (msg.from_id, msg.peer_user_id):
                if uid is not None and uid in self.users:
                    ids[uid] = None
        return [self.user_tl(self.users[uid], viewer) for uid in ids]

    def chats_of(self, messages: list[SimMessage], viewer: SimUser | None) -> list[types.Channel]:
        ids: dict[int, None] = {}
        for msg in messages:
            if msg.channel_id is not None:
                ids[msg.channel_id] = None
            origin = getattr(msg.fwd_from, "from_id", None)
            if isinstance(origin, types.PeerChannel) and origin.channel_id in self.channels:
                ids[origin.channel_id] = None
        return [self.channel_tl(self.channels[cid], viewer) for cid in ids]

    def updates(
        self,
        updates: list[TLObject],
        messages: list[SimMessage],
        viewer: SimUser | None,
        extra_chats: Sequence[SimChannel] = (),
        extra_users: Sequence[SimUser] = (),
    ) -> types.Updates:
        chats = self.chats_of(messages, viewer)
        known = {c.id for c in chats}
        chats += [self.channel_tl(c, viewer) for c in extra_chats if c.id not in known]
        users = self.users_of(messages, viewer)
        known = {u.id for u in users}
        users += [self.user_tl(u, viewer) for u in extra_users if u.id not in known]
        return types.Updates(updates=updates, users=users, chats=chats, date=utcnow(), seq=0)

    # --------------------------------------------------------------- channels

    def _channel_event(self, channel: SimChannel, kind: str, ids: list[int]) -> BoxEvent:
        channel.pts += len(ids)
        event = BoxEvent(pts=channel.pts, pts_count=len(ids), kind=kind, message_ids=list(ids))
        channel.events.append(event)
        return event

    def _push_channel(self, channel: SimChannel, build: Callable[[SimUser], TLObject]) -> None:
        for member_id in sorted(channel.members):
            member = self.users.get(member_id)
            if member is not None:
                self.push(member_id, build(member), None)

    def post(
        self,
        channel: SimChannel,
        text: str = "",
        *,
        push: bool = True,
        media: Any = None,
        fwd_from: types.MessageFwdHeader | None = None,
        reply_to: int | None = None,
        entities: list[Any] | None = None,
        date: dt.datetime | None = None,
        views: int | None = 0,
        forwards: int | None = 0,
        grouped_id: int | None = None,
    ) -> int:
        msg = self._new_channel_message(
            channel, text, media, fwd_from, reply_to, entities, date, views, forwards, grouped_id
        )
        event = self._channel_event(channel, "new", [msg.id])
        if push:
            self._push_channel(
                channel,
                lambda viewer: self.updates(
                    [types.UpdateNewChannelMessage(msg.to_tl(), event.pts, 1)], [msg], viewer
                ),
            )
        self._changed()
        return msg.id

    def post_service(self, channel: SimChannel, action: Any, *, push: bool = True) -> int:
        """A service message in a channel (title changed, message pinned, ...)."""
        msg = self._new_channel_message(channel, "", None, None, None, None, None, None, None, None)
        msg.action = action
        event = self._channel_event(channel, "new", [msg.id])
        if push:
            self._push_channel(
                channel,
                lambda viewer: self.updates(
                    [types.UpdateNewChannelMessage(msg.to_tl(), event.pts, 1)], [msg], viewer
                ),
            )
        self._changed()
        return msg.id

    def check_random_id(self, sender: SimUser, random_id: int) -> None:
        """With dedup_random_ids on, a (sender, random id) already delivered is refused."""
        if self.dedup_random_ids and (sender.id, random_id) in self._random_ids:
            raise RpcFail(500, "RANDOM_ID_DUPLICATE")

    def record_random_id(self, sender: SimUser, random_id: int) -> None:
        """Remember a random id once its message was delivered: a send refused by a
        FloodWait or a block may be retried with the same id, as on Telegram."""
        if self.dedup_random_ids:
            self._random_ids.add((sender.id, random_id))

    def _new_channel_message(
        self,
        channel: SimChannel,
        text: str,
        media: Any,
        fwd_from: types.MessageFwdHeader | None,
        reply_to: int | None,
        entities: list[Any] | None,
        date: dt.datetime | None,
        views: int | None,
        forwards: int | None,
        grouped_id: int | None,
    ) -> SimMessage:
        msg = SimMessage(
            id=channel.next_msg_id,
            date=(date or utcnow()).replace(microsecond=0),
            text=text,
            channel_id=channel.id,
            media=media,
            fwd_from=fwd_from,
            reply_to=reply_to,
            entities=entities,
            views=views,
            forwards=forwards,
            grouped_id=grouped_id,
        )
        channel.next_msg_id += 1
        channel.messages[msg.id] = msg
        return msg

    def post_album(
        self,
        channel: SimChannel,
        media: list[Any],
        caption: str = "",
        *,
        push: bool = True,
        entities: list[Any] | None = None,
        date: dt.datetime | None = None,
        views: int | None = 0,
    ) -> list[int]:
        if not media:
            raise ValueError("an album needs at least one media item")
        grouped_id = self.rng.getrandbits(62) + 1
        msgs = []
        for index, item in enumerate(media):
            msgs.append(
                self._new_channel_message(
                    channel,
                    caption if index == 0 else "",
                    item,
                    None,
                    None,
                    entities if index == 0 else None,
                    date,
                    views,
                    0,
                    grouped_id,
                )
            )
        events = [self._channel_event(channel, "new", [m.id]) for m in msgs]
        if push:
            self._push_channel(
                channel,
                lambda viewer: self.updates(
                    [
                        types.UpdateNewChannelMessage(m.to_tl(), e.pts, 1)
                        for m, e in zip(msgs, events, strict=True)
                    ],
                    msgs,
                    viewer,
                ),
            )
        self._changed()
        return [m.id for m in msgs]

    def forward(self, source: SimChannel, msg_id: int, to: SimChannel, *, push: bool = True) -> int:
        original = self.channel_message(source, msg_id)
        if original.forwards is not None:
            original.forwards += 1
        header = types.MessageFwdHeader(
            date=original.date,
            from_id=types.PeerChannel(source.id),
            channel_post=original.id,
        )
        return self.post(
            to,
            original.text,
            push=push,
            media=original.media,
            fwd_from=header,
            entities=original.entities,
        )

    def channel_message(self, channel: SimChannel, msg_id: int) -> SimMessage:
        msg = channel.messages.get(msg_id)
        if msg is None or msg.deleted:
            raise KeyError(f"no message {msg_id} in {channel!r}")
        return msg

    def edit(
        self,
        channel: SimChannel,
        msg_id: int,
        text: str,
        *,
        push: bool = True,
        entities: list[Any] | None = None,
        media: Any = None,
    ) -> None:
        msg = self.channel_message(channel, msg_id)
        msg.text = text
        msg.entities = entities
        if media is not None:
            msg.media = media
        msg.edit_date = max(utcnow(), msg.date + dt.timedelta(seconds=1))
        event = self._channel_event(channel, "edit", [msg.id])
        if push:
            self._push_channel(
                channel,
                lambda viewer: self.updates(
                    [types.UpdateEditChannelMessage(msg.to_tl(), event.pts, 1)], [msg], viewer
                ),
            )
        self._changed()

    def delete(self, channel: SimChannel, msg_ids: list[int], *, push: bool = True) -> None:
        ids = [i for i in msg_ids if i in channel.messages and not channel.messages[i].deleted]
        if not ids:
            return
        for i in ids:
            channel.messages[i].deleted = True
        event = self._channel_event(channel, "delete", ids)
        if push:
            self._push_channel(
                channel,
                lambda viewer: self.updates(
                    [
                        types.UpdateDeleteChannelMessages(
                            channel_id=channel.id,
                            messages=list(ids),
                            pts=event.pts,
                            pts_count=event.pts_count,
                        )
                    ],
                    [],
                    viewer,
                    extra_chats=[channel],
                ),
            )
        self._changed()

    def set_views(
        self,
        channel: SimChannel,
        msg_id: int,
        views: int | None = None,
        forwards: int | None = None,
        reactions: dict[str, int] | None = None,
        replies: int | None = None,
    ) -> None:
        msg = self.channel_message(channel, msg_id)
        if views is not None:
            msg.views = views
        if forwards is not None:
            msg.forwards = forwards
        if reactions is not None:
            msg.reactions = {k: v for k, v in reactions.items() if v > 0}
        if replies is not None:
            msg.replies = replies

    def join(self, user: SimUser, channel: SimChannel) -> None:
        joined = sum(1 for c in self.channels.values() if user.id in c.members)
        if joined >= self.join_limit:
            raise RpcFail(400, "CHANNELS_TOO_MUCH")
        channel.members.add(user.id)

    @staticmethod
    def access_hash_for(channel: SimChannel, viewer: SimUser | None) -> int:
        """As on Telegram, each account sees its own access hash for a channel."""
        if viewer is None:
            return channel.access_hash
        return (channel.access_hash ^ (viewer.id * 0x9E3779B97F4A7C15)) & ((1 << 63) - 1)

    def leave(self, user: SimUser, channel: SimChannel) -> None:
        channel.members.discard(user.id)

    def history(
        self,
        source: SimChannel | list[SimMessage],
        *,
        offset_id: int = 0,
        offset_date: dt.datetime | None = None,
        add_offset: int = 0,
        limit: int = 100,
        max_id: int = 0,
        min_id: int = 0,
    ) -> tuple[list[SimMessage], int]:
        """Telegram's getHistory paging over a channel (or a private chat's messages);
        returns (page newest-first, total count)."""
        everything: Sequence[SimMessage]
        if isinstance(source, SimChannel):
            everything = source.live_desc()
        else:
            everything = sorted(
                (m for m in source if not m.deleted), key=lambda m: m.id, reverse=True
            )

        # newest first, so the ids in (min_id, max_id) are one run found by bisection
        # instead of a pass over the whole history for every page
        def newer(m: SimMessage) -> int:
            return -m.id

        first = bisect.bisect_right(everything, -max_id, key=newer) if max_id > 0 else 0
        stop = max(first, bisect.bisect_left(everything, -min_id, key=newer))
        if offset_id:
            start = min(max(bisect.bisect_right(everything, -offset_id, key=newer), first), stop)
            start -= first
        elif offset_date is not None and offset_date.timestamp() > 0:
            start = next((i for i in range(first, stop) if everything[i].date < offset_date), stop)
            start -= first
        else:
            start = 0
        start += add_offset
        limit = max(0, min(limit, 100))
        end = min(max(start + limit, 0), stop - first)
        start = max(start, 0)
        page = list(everything[first + start : first + end]) if start < end else []
        return page, len(everything)

    def channel_difference(
        self, channel: SimChannel, pts: int, limit: int
    ) -> tuple[list[SimMessage], list[BoxEvent], int, bool]:
        """Events after ``pts``: (new messages, later edit/delete events, new pts, final)."""
        pending = [e for e in channel.events if e.pts > pts]
        taken: list[BoxEvent] = []
        count = 0
        for event in pending:
            if count >= max(1, limit):
                break
            taken.append(event)
            count += len(event.message_ids)
        new_pts = taken[-1].pts if taken else channel.pts
        final = new_pts >= channel.pts
        new_ids = {i for e in taken if e.kind == "new" for i in e.message_ids}
        new_messages = [
            channel.messages[i] for i in sorted(new_ids) if not channel.messages[i].deleted
        ]
        others = []
        for event in taken:
            if event.kind == "new":
                continue
            rest = [i for i in event.message_ids if i not in new_ids]
            if rest:
                others.append(BoxEvent(event.pts, event.pts_count, event.kind, rest))
        return new_messages, others, new_pts, final

    # --------------------------------------------------------------- private messages

    def _box_event(self, owner: SimUser, kind: str, ids: list[int]) -> BoxEvent:
        owner.pts += len(ids)
        event = BoxEvent(pts=owner.pts, pts_count=len(ids), kind=kind, message_ids=list(ids))
        owner.events.append(event)
        return event

    def check_bot_limits(self, sender: SimUser, chat_id: int) -> None:
        """Telegram's bot send limits: ~1 msg/s per chat (burst 3), ~30 msg/s overall."""
        if not (self.enforce_bot_limits and sender.is_bot):
            return
        now = time.monotonic()
        chat = self._chat_buckets.setdefault((sender.id, chat_id), TokenBucket(3, 1.0))
        overall = self._global_buckets.setdefault(sender.id, TokenBucket(30, 30.0))
        wait = max(chat.wait_needed(now), overall.wait_needed(now))
        if wait > 0:
            self.flood_waits_issued += 1
            raise RpcFail(420, f"FLOOD_WAIT_{max(1, math.ceil(wait))}")
        chat.take()
        overall.take()

    def send_private(
        self,
        sender: SimUser,
        receiver: SimUser,
        text: str,
        *,
        entities: list[Any] | None = None,
        reply_markup: Any = None,
        reply_to: int | None = None,
        media: Any = None,
        origin: object | None = None,
        push_to_sender: bool = True,
    ) -> tuple[SimMessage, BoxEvent]:
        """Deliver a private message; returns the sender's copy and its box event."""
        if receiver.is_bot and sender.is_bot:
            raise RpcFail(400, "USER_IS_BOT")
        if sender.id in receiver.blocked:
            raise RpcFail(400, "USER_IS_BLOCKED")
        self.check_bot_limits(sender, receiver.id)
        now = utcnow()
        out_msg = SimMessage(
            id=sender.next_msg_id,
            date=now,
            text=text,
            owner_id=sender.id,
            peer_user_id=receiver.id,
            from_id=sender.id,
            out=True,
            entities=entities,
            reply_markup=reply_markup,
            reply_to=reply_to,
            media=media,
        )
        sender.next_msg_id += 1
        receiver_reply = None
        if reply_to is not None and reply_to in sender.messages:
            receiver_reply = sender.messages[reply_to].pair_id
        in_msg = SimMessage(
            id=receiver.next_msg_id,
            date=now,
            text=text,
            owner_id=receiver.id,
            peer_user_id=sender.id,
            from_id=sender.id,
            out=False,
            entities=entities,
            reply_markup=reply_markup,
            reply_to=receiver_reply,
            media=media,
            pair_id=out_msg.id,
        )
        receiver.next_msg_id += 1
        out_msg.pair_id = in_msg.id
        sender.messages[out_msg.id] = out_msg
        receiver.messages[in_msg.id] = in_msg
        out_event = self._box_event(sender, "new", [out_msg.id])
        in_event = self._box_event(receiver, "new", [in_msg.id])
        self.push(
            receiver.id,
            self.updates(
                [types.UpdateNewMessage(in_msg.to_tl(), in_event.pts, 1)], [in_msg], receiver
            ),
            None,
        )
        if push_to_sender:
            self.push(
                sender.id,
                self.updates(
                    [types.UpdateNewMessage(out_msg.to_tl(), out_event.pts, 1)], [out_msg], sender
                ),
                origin,
            )
        self._changed()
        return out_msg, out_event

    def edit_private(
        self,
        editor: SimUser,
        peer: SimUser,
        msg_id: int,
        text: str | None,
        *,
        entities: list[Any] | None = None,
        reply_markup: Any = None,
        origin: object | None = None,
    ) -> tuple[SimMessage, BoxEvent]:
        mine = editor.messages.get(msg_id)
        if mine is None or mine.deleted or mine.peer_user_id != peer.id:
            raise RpcFail(400, "MESSAGE_ID_INVALID")
        if not mine.out:
            raise RpcFail(403, "MESSAGE_AUTHOR_REQUIRED")
        if text is not None and text == mine.text and reply_markup is None and entities is None:
            raise RpcFail(400, "MESSAGE_NOT_MODIFIED")
        theirs = peer.messages.get(mine.pair_id or 0)
        now = utcnow()
        results: list[tuple[SimUser, SimMessage, BoxEvent]] = []
        for owner, copy in ((editor, mine), (peer, theirs)):
            if copy is None:
                continue
            if text is not None:
                copy.text = text
                copy.entities = entities
            if reply_markup is not None:
                copy.reply_markup = reply_markup
            copy.edit_date = now
            results.append((owner, copy, self._box_event(owner, "edit", [copy.id])))
        for owner, copy, event in results:
            self.push(
                owner.id,
                self.updates([types.UpdateEditMessage(copy.to_tl(), event.pts, 1)], [copy], owner),
                origin if owner is editor else None,
            )
        self._changed()
        return mine, results[0][2]

    def delete_private(
        self, user: SimUser, ids: list[int], *, revoke: bool, origin: object | None = None
    ) -> types.messages.AffectedMessages:
        per_owner: dict[int, list[int]] = {user.id: []}
        for msg_id in ids:
            msg = user.messages[msg_id]
            msg.deleted = True
            per_owner[user.id].append(msg_id)
            peer = self.users.get(msg.peer_user_id or 0)
            if revoke and peer is not None and msg.pair_id in peer.messages:
                peer.messages[msg.pair_id].deleted = True
                per_owner.setdefault(peer.id, []).append(msg.pair_id)
        mine = None
        for owner_id, owner_ids in per_owner.items():
            owner = self.users[owner_id]
            event = self._box_event(owner, "delete", owner_ids)
            if owner_id == user.id:
                mine = event
            self.push(
                owner_id,
                self.updates(
                    [types.UpdateDeleteMessages(list(owner_ids), event.pts, event.pts_count)],
                    [],
                    owner,
                ),
                origin if owner_id == user.id else None,
            )
        self._changed()
        assert mine is not None
        return types.messages.AffectedMessages(pts=mine.pts, pts_count=mine.pts_count)

    def private_difference(
        self, user: SimUser, pts: int
    ) -> tuple[list[SimMessage], list[TLObject]]:
        new_ids: list[int] = []
        others: list[TLObject] = []
        for event in user.events:
            if event.pts <= pts:
                continue
            if event.kind == "new":
                new_ids.extend(event.message_ids)
            elif event.kind == "edit":
                for i in event.message_ids:
                    if i not in new_ids:
                        others.append(
                            types.UpdateEditMessage(
                                user.messages[i].to_tl(), event.pts, event.pts_count
                            )
                        )
            elif event.kind == "delete":
                others.append(
                    types.UpdateDeleteMessages(
                        messages=list(event.message_ids), pts=event.pts, pts_count=event.pts_count
                    )
                )
        new_messages = [user.messages[i] for i in new_ids if not user.messages[i].deleted]
        return new_messages, others

    def block(self, user: SimUser, other: SimUser) -> None:
        user.blocked.add(other.id)

    def unblock(self, user: SimUser, other: SimUser) -> None:
        user.blocked.discard(other.id)

    def messages_between(self, owner: SimUser, other: SimUser) -> list[SimMessage]:
        return sorted(
            (m for m in owner.messages.values() if m.peer_user_id == other.id and not m.deleted),
            key=lambda m: m.id,
        )


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def _fit(w: int, h: int, box: int) -> tuple[int, int]:
    scale = min(1.0, box / max(w, h, 1))
    return max(1, int(w * scale)), max(1, int(h * scale))
