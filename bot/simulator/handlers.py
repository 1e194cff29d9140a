"""One function per TL request the simulator answers.

A handler takes the request context and the (unwrapped) request and returns what
Telegram would return: a TL object, a list (serialised as a vector), a bool, or raw
bytes. It raises ``RpcFail`` for an ``rpc_error``. ``HANDLERS`` maps request classes
to handlers; a request without an entry is answered ``400 SIM_UNHANDLED_<Name>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from telethon import password as tl_password
from telethon.tl import TLObject, functions, types

from .context import AuthKeyRecord, SimulatorView
from .mtproto import DH_G, DH_PRIME
from .world import RpcFail, SimChannel, SimMessage, SimUser, World, utcnow

HandlerResult = TLObject | list[Any] | bool | bytes
Handler = Callable[["Context", Any], HandlerResult | Awaitable[HandlerResult]]


@dataclass
class Route:
    handler: Handler
    needs_auth: bool


HANDLERS: dict[type, Route] = {}


def handles(*request_types: type, auth: bool = True) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        for request_type in request_types:
            HANDLERS[request_type] = Route(func, auth)
        return func

    return register


@dataclass
class Context:
    """What a handler may use: the simulator, the world, the connection and its account."""

    sim: SimulatorView
    conn: object  # the connection a request came on: the origin of the events it causes
    key: AuthKeyRecord

    @property
    def world(self) -> World:
        return self.sim.world

    @property
    def user(self) -> SimUser:
        user = self.world.users.get(self.key.user_id or 0)
        if user is None:
            raise RpcFail(401, "AUTH_KEY_UNREGISTERED")
        return user

    @property
    def maybe_user(self) -> SimUser | None:
        return self.world.users.get(self.key.user_id or 0)


# ----------------------------------------------------------------------------- peers


def input_user(ctx: Context, peer: Any) -> SimUser:
    if isinstance(peer, types.InputUserSelf | types.InputPeerSelf):
        return ctx.user
    if isinstance(peer, types.InputUserFromMessage | types.InputPeerUserFromMessage):
        user = ctx.world.users.get(peer.user_id)
        if user is None:
            raise RpcFail(400, "USER_ID_INVALID")
        return user
    if isinstance(peer, types.InputUser | types.InputPeerUser):
        user = ctx.world.users.get(peer.user_id)
        zero_ok = peer.access_hash == 0 and ctx.user.is_bot
        if user is None or (peer.access_hash != user.access_hash and not zero_ok):
            raise RpcFail(400, "USER_ID_INVALID")
        return user
    raise RpcFail(400, "USER_ID_INVALID")


def input_channel(ctx: Context, peer: Any) -> SimChannel:
    if isinstance(peer, types.InputChannel | types.InputPeerChannel):
        channel = ctx.world.channels.get(peer.channel_id)
        if channel is None or peer.access_hash != ctx.world.access_hash_for(channel, ctx.user):
            raise RpcFail(400, "CHANNEL_INVALID")
        return channel
    if isinstance(peer, types.InputChannelFromMessage | types.InputPeerChannelFromMessage):
        channel = ctx.world.channels.get(peer.channel_id)
        if channel is None:
            raise RpcFail(400, "CHANNEL_INVALID")
        return channel
    raise RpcFail(400, "CHANNEL_INVALID")


def input_peer(ctx: Context, peer: Any) -> SimUser | SimChannel:
    if isinstance(
        peer,
        types.InputPeerChannel | types.InputChannel | types.InputPeerChannelFromMessage,
    ):
        return input_channel(ctx, peer)
    if isinstance(peer, types.InputPeerEmpty | types.InputPeerChat):
        raise RpcFail(400, "PEER_ID_INVALID")
    try:
        return input_user(ctx, peer)
    except RpcFail:
        raise RpcFail(400, "PEER_ID_INVALID") from None


def channel_messages(
    ctx: Context, channel: SimChannel, messages: list[SimMessage], count: int | None = None
) -> types.messages.ChannelMessages:
    viewer = ctx.maybe_user
    return types.messages.ChannelMessages(
        pts=channel.pts,
        count=len(messages) if count is None else count,
        messages=[m.to_tl() for m in messages],
        topics=[],
        chats=ctx.world.chats_of(messages, viewer) or [ctx.world.channel_tl(channel, viewer)],
        users=ctx.world.users_of(messages, viewer),
    )


# ----------------------------------------------------------------------------- connection setup


@handles(functions.help.GetConfigRequest, auth=False)
def get_config(ctx: Context, req: functions.help.GetConfigRequest) -> types.Config:
    now = utcnow()
    return types.Config(
        date=now,
        expires=now + dt.timedelta(hours=1),
        test_mode=False,
        this_dc=ctx.sim.dc_id,
        dc_options=[types.DcOption(id=ctx.sim.dc_id, ip_address=ctx.sim.host, port=ctx.sim.port)],
        dc_txt_domain_name="sim.invalid",
        chat_size_max=200,
        megagroup_size_max=200000,
        forwarded_count_max=100,
        online_update_period_ms=210000,
        offline_blur_timeout_ms=5000,
        offline_idle_timeout_ms=30000,
        online_cloud_timeout_ms=300000,
        notify_cloud_delay_ms=30000,
        notify_default_delay_ms=1500,
        push_chat_period_ms=60000,
        push_chat_limit=2,
        edit_time_limit=172800,
        revoke_time_limit=2147483647,
        revoke_pm_time_limit=2147483647,
        rating_e_decay=2419200,
        stickers_recent_limit=200,
        channels_read_media_period=604800,
        call_receive_timeout_ms=20000,
        call_ring_timeout_ms=90000,
        call_connect_timeout_ms=30000,
        call_packet_timeout_ms=10000,
        me_url_prefix="https://t.me/",
        caption_length_max=1024,
        message_length_max=4096,
        webfile_dc_id=ctx.sim.dc_id,
    )


@handles(functions.help.GetNearestDcRequest, auth=False)
def get_nearest_dc(ctx: Context, req: Any) -> types.NearestDc:
    return types.NearestDc(country="ZZ", this_dc=ctx.sim.dc_id, nearest_dc=ctx.sim.dc_id)


@handles(functions.account.UpdateStatusRequest)
def update_status(ctx: Context, req: Any) -> bool:
    return True


# ----------------------------------------------------------------------------- users


@handles(functions.users.GetUsersRequest)
def get_users(ctx: Context, req: functions.users.GetUsersRequest) -> list[types.User]:
    found = []
    for item in req.id:
        try:
            found.append(ctx.world.user_tl(input_user(ctx, item), ctx.user))
        except RpcFail:
            continue
    return found


@handles(functions.users.GetFullUserRequest)
def get_full_user(ctx: Context, req: functions.users.GetFullUserRequest) -> types.users.UserFull:
    user = input_user(ctx, req.id)
    bot_info = None
    if user.is_bot:
        bot_info = types.BotInfo(
            user_id=user.id,
            commands=[types.BotCommand(c, d) for c, d in user.commands],
        )
    return types.users.UserFull(
        full_user=types.UserFull(
            id=user.id,
            settings=types.PeerSettings(),
            notify_settings=types.PeerNotifySettings(),
            common_chats_count=0,
            blocked=(user.id in ctx.user.blocked) or None,
            bot_info=bot_info,
        ),
        chats=[],
        users=[ctx.world.user_tl(user, ctx.user)],
    )


@handles(functions.contacts.ResolveUsernameRequest)
def resolve_username(
    ctx: Context, req: functions.contacts.ResolveUsernameRequest
) -> types.contacts.ResolvedPeer:
    found = ctx.world.by_username(req.username)
    if found is None:
        raise RpcFail(400, "USERNAME_NOT_OCCUPIED")
    if isinstance(found, SimChannel):
        return types.contacts.ResolvedPeer(
            peer=types.PeerChannel(found.id),
            chats=[ctx.world.channel_tl(found, ctx.user)],
            users=[],
        )
    return types.contacts.ResolvedPeer(
        peer=types.PeerUser(found.id), chats=[], users=[ctx.world.user_tl(found, ctx.user)]
    )


@handles(functions.contacts.BlockRequest)
def block(ctx: Context, req: functions.contacts.BlockRequest) -> bool:
    other = input_peer(ctx, req.id)
    if isinstance(other, SimUser):
        ctx.world.block(ctx.user, other)
    return True


@handles(functions.contacts.UnblockRequest)
def unblock(ctx: Context, req: functions.contacts.UnblockRequest) -> bool:
    other = input_peer(ctx, req.id)
    if isinstance(other, SimUser):
        ctx.world.unblock(ctx.user, other)
    return True


# ----------------------------------------------------------------------------- updates


def _state(user: SimUser) -> types.updates.State:
    return types.updates.State(pts=user.pts, qts=0, date=utcnow(), seq=0, unread_count=0)


@handles(functions.updates.GetStateRequest)
def get_state(ctx: Context, req: Any) -> types.updates.State:
    return _state(ctx.user)


@handles(functions.updates.GetDifferenceRequest)
def get_difference(ctx: Context, req: functions.updates.GetDifferenceRequest) -> TLObject:
    user = ctx.user
    if req.pts >= user.pts:
        return types.updates.DifferenceEmpty(date=utcnow(), seq=0)
    new_messages, others = ctx.world.private_difference(user, req.pts)
    return types.updates.Difference(
        new_messages=[m.to_tl() for m in new_messages],
        new_encrypted_messages=[],
        other_updates=others,
        chats=[],
        users=[
            ctx.world.user_tl(u, user)
            for u in ctx.world.users.values()
            if u.id == user.id or any(m.peer_user_id == u.id for m in new_messages)
        ],
        state=_state(user),
    )


@handles(functions.updates.GetChannelDifferenceRequest)
def get_channel_difference(
    ctx: Context, req: functions.updates.GetChannelDifferenceRequest
) -> TLObject:
    channel = input_channel(ctx, req.channel)
    if req.pts <= 0:
        raise RpcFail(400, "PERSISTENT_TIMESTAMP_INVALID")
    if req.pts > channel.pts:
        raise RpcFail(400, "PERSISTENT_TIMESTAMP_INVALID")
    if req.pts == channel.pts:
        return types.updates.ChannelDifferenceEmpty(pts=channel.pts, final=True)
    pending = sum(len(e.message_ids) for e in channel.events if e.pts > req.pts)
    too_long = ctx.sim.channel_difference_too_long
    viewer = ctx.user
    if too_long is not None and pending > too_long:
        latest = channel.live_messages_desc()[: max(1, req.limit)]
        top = latest[0].id if latest else 0
        return types.updates.ChannelDifferenceTooLong(
            dialog=types.Dialog(
                peer=types.PeerChannel(channel.id),
                top_message=top,
                read_inbox_max_id=top,
                read_outbox_max_id=0,
                unread_count=0,
                unread_mentions_count=0,
                unread_reactions_count=0,
                unread_poll_votes_count=0,
                notify_settings=types.PeerNotifySettings(),
                pts=channel.pts,
            ),
            messages=[m.to_tl() for m in latest],
            chats=ctx.world.chats_of(latest, viewer) or [ctx.world.channel_tl(channel, viewer)],
            users=ctx.world.users_of(latest, viewer),
            final=True,
        )
    new_messages, others, new_pts, final = ctx.world.channel_difference(channel, req.pts, req.limit)
    other_updates: list[TLObject] = []
    for event in others:
        if event.kind == "edit":
            for msg_id in event.message_ids:
                msg = channel.messages[msg_id]
                if not msg.deleted:
                    other_updates.append(
                        types.UpdateEditChannelMessage(msg.to_tl(), event.pts, event.pts_count)
                    )
        elif event.kind == "delete":
            other_updates.append(
                types.UpdateDeleteChannelMessages(
                    channel_id=channel.id,
                    messages=list(event.message_ids),
                    pts=event.pts,
                    pts_count=event.pts_count,
                )
            )
    chats = ctx.world.chats_of(new_messages, viewer)
    if channel.id not in {c.id for c in chats}:
        chats.append(ctx.world.channel_tl(channel, viewer))
    return types.updates.ChannelDifference(
        pts=new_pts,
        new_messages=[m.to_tl() for m in new_messages],
        other_updates=other_updates,
        chats=chats,
        users=ctx.world.users_of(new_messages, viewer),
        final=final,
    )


# ----------------------------------------------------------------------------- channels


@handles(functions.channels.GetChannelsRequest)
def get_channels(ctx: Context, req: functions.channels.GetChannelsRequest) -> types.messages.Chats:
    return types.messages.Chats(
        chats=[ctx.world.channel_tl(input_channel(ctx, c), ctx.user) for c in req.id]
    )


@handles(functions.channels.GetFullChannelRequest)
def get_full_channel(
    ctx: Context, req: functions.channels.GetFullChannelRequest
) -> types.messages.ChatFull:
    channel = input_channel(ctx, req.channel)
    live = channel.live_messages_desc()
    top = live[0].id if live else 0
    return types.messages.ChatFull(
        full_chat=types.ChannelFull(
            id=channel.id,
            about=channel.about,
            read_inbox_max_id=top,
            read_outbox_max_id=0,
            unread_count=0,
            chat_photo=types.PhotoEmpty(id=0),
            notify_settings=types.PeerNotifySettings(),
            bot_info=[],
            pts=channel.pts,
            participants_count=len(channel.members),
        ),
        chats=[ctx.world.channel_tl(channel, ctx.user)],
        users=[],
    )


@handles(functions.channels.JoinChannelRequest)
def join_channel(ctx: Context, req: functions.channels.JoinChannelRequest) -> types.Updates:
    channel = input_channel(ctx, req.channel)
    user = ctx.user
    if user.is_bot:
        raise RpcFail(400, "BOT_METHOD_INVALID")
    if user.id in channel.members:
        raise RpcFail(400, "USER_ALREADY_PARTICIPANT")
    ctx.world.join(user, channel)
    return ctx.world.updates([types.UpdateChannel(channel.id)], [], user, extra_chats=[channel])


@handles(functions.channels.LeaveChannelRequest)
def leave_channel(ctx: Context, req: functions.channels.LeaveChannelRequest) -> types.Updates:
    channel = input_channel(ctx, req.channel)
    user = ctx.user
    if user.id not in channel.members:
        raise RpcFail(400, "USER_NOT_PARTICIPANT")
    ctx.world.leave(user, channel)
    return ctx.world.updates([types.UpdateChannel(channel.id)], [], user, extra_chats=[channel])


@handles(functions.channels.ReadHistoryRequest)
def channel_read_history(ctx: Context, req: Any) -> bool:
    input_channel(ctx, req.channel)
    return True


@handles(functions.messages.GetHistoryRequest)
def get_history(ctx: Context, req: functions.messages.GetHistoryRequest) -> TLObject:
    if ctx.user.is_bot:
        raise RpcFail(400, "BOT_METHOD_INVALID")
    peer = input_peer(ctx, req.peer)
    source = ctx.world.messages_between(ctx.user, peer) if isinstance(peer, SimUser) else peer
    page, total = ctx.world.history(
        source,
        offset_id=req.offset_id,
        offset_date=req.offset_date,
        add_offset=req.add_offset,
        limit=req.limit,
        max_id=req.max_id,
        min_id=req.min_id,
    )
    if isinstance(peer, SimChannel):
        return channel_messages(ctx, peer, page, count=total)
    return types.messages.MessagesSlice(
        count=total,
        messages=[m.to_tl() for m in page],
        topics=[],
        chats=[],
        users=ctx.world.users_of(page, ctx.user) or [ctx.world.user_tl(peer, ctx.user)],
    )


@handles(functions.channels.GetMessagesRequest)
def channel_get_messages(
    ctx: Context, req: functions.channels.GetMessagesRequest
) -> types.messages.ChannelMessages:
    channel = input_channel(ctx, req.channel)
    found: list[SimMessage] = []
    result: list[TLObject] = []
    for item in req.id:
        msg_id = getattr(item, "id", None)
        msg = channel.messages.get(msg_id) if isinstance(msg_id, int) else None
        if msg is None or msg.deleted:
            result.append(types.MessageEmpty(id=msg_id or 0, peer_id=types.PeerChannel(channel.id)))
        else:
            found.append(msg)
            result.append(msg.to_tl())
    viewer = ctx.maybe_user
    chats = ctx.world.chats_of(found, viewer)
    if channel.id not in {c.id for c in chats}:
        chats.append(ctx.world.channel_tl(channel, viewer))
    return types.messages.ChannelMessages(
        pts=channel.pts,
        count=len(result),
        messages=result,
        topics=[],
        chats=chats,
        users=ctx.world.users_of(found, viewer),
    )


@handles(functions.messages.GetMessagesRequest)
def get_messages(
    ctx: Context, req: functions.messages.GetMessagesRequest
) -> types.messages.Messages:
    user = ctx.user
    found: list[SimMessage] = []
    for item in req.id:
        msg_id = getattr(item, "id", None)
        msg = user.messages.get(msg_id) if isinstance(msg_id, int) else None
        if msg is not None and not msg.deleted:
            found.append(msg)
    return types.messages.Messages(
        messages=[m.to_tl() for m in found],
        topics=[],
        chats=[],
        users=ctx.world.users_of(found, user),
    )


@handles(functions.messages.GetMessagesViewsRequest)
def get_messages_views(
    ctx: Context, req: functions.messages.GetMessagesViewsRequest
) -> types.messages.MessageViews:
    peer = input_peer(ctx, req.peer)
    if not isinstance(peer, SimChannel):
        raise RpcFail(400, "PEER_ID_INVALID")
    views = []
    for msg_id in req.id:
        msg = peer.messages.get(msg_id)
        if msg is None or msg.deleted:
            views.append(types.MessageViews())
            continue
        if req.increment and msg.views is not None:
            msg.views += 1
        replies = None
        if msg.replies is not None:
            replies = types.MessageReplies(replies=msg.replies, replies_pts=0)
        views.append(types.MessageViews(views=msg.views, forwards=msg.forwards, replies=replies))
    return types.messages.MessageViews(
        views=views, chats=[ctx.world.channel_tl(peer, ctx.user)], users=[]
    )


@handles(functions.messages.ReadHistoryRequest)
def read_history(ctx: Context, req: Any) -> types.messages.AffectedMessages:
    return types.messages.AffectedMessages(pts=ctx.user.pts, pts_count=0)


@dataclass
class _DialogRow:
    peer: types.PeerChannel | types.PeerUser
    top: SimMessage | None
    pts: int | None
    channel: SimChannel | None = None
    other: SimUser | None = None


def _dialog_rows(ctx: Context) -> list[_DialogRow]:
    user = ctx.user
    rows: list[_DialogRow] = []
    for channel in ctx.world.channels.values():
        if user.id in channel.members:
            live = channel.live_messages_desc()
            rows.append(
                _DialogRow(
                    types.PeerChannel(channel.id), live[0] if live else None, channel.pts, channel
                )
            )
    latest: dict[int, SimMessage] = {}
    for msg in user.messages.values():
        if not msg.deleted and msg.peer_user_id is not None:
            if msg.peer_user_id not in latest or latest[msg.peer_user_id].id < msg.id:
                latest[msg.peer_user_id] = msg
    for other_id, msg in latest.items():
        rows.append(
            _DialogRow(types.PeerUser(other_id), msg, None, other=ctx.world.users[other_id])
        )
    rows.sort(
        key=lambda r: r.top.date if r.top else r.channel.date if r.channel else utcnow(),
        reverse=True,
    )
    return rows


def _dialogs_payload(
    ctx: Context, rows: list[_DialogRow]
) -> tuple[list[types.Dialog], list[TLObject], list[types.Channel], list[types.User]]:
    dialogs = [
        types.Dialog(
            peer=row.peer,
            top_message=row.top.id if row.top else 0,
            read_inbox_max_id=row.top.id if row.top else 0,
            read_outbox_max_id=row.top.id if row.top else 0,
            unread_count=0,
            unread_mentions_count=0,
            unread_reactions_count=0,
            unread_poll_votes_count=0,
            notify_settings=types.PeerNotifySettings(),
            pts=row.pts,
        )
        for row in rows
    ]
    tops = [row.top for row in rows if row.top is not None]
    chats = ctx.world.chats_of(tops, ctx.user)
    known = {c.id for c in chats}
    chats += [
        ctx.world.channel_tl(row.channel, ctx.user)
        for row in rows
        if row.channel is not None and row.channel.id not in known
    ]
    users = ctx.world.users_of(tops, ctx.user)
    known = {u.id for u in users}
    users += [
        ctx.world.user_tl(row.other, ctx.user)
        for row in rows
        if row.other is not None and row.other.id not in known
    ]
    return dialogs, [m.to_tl() for m in tops], chats, users


@handles(functions.messages.GetDialogsRequest)
def get_dialogs(ctx: Context, req: functions.messages.GetDialogsRequest) -> TLObject:
    if ctx.user.is_bot:
        raise RpcFail(400, "BOT_METHOD_INVALID")
    rows = [] if req.folder_id else _dialog_rows(ctx)
    if req.offset_date is not None and req.offset_date.timestamp() > 0:
        rows = [r for r in rows if r.top is not None and r.top.date < req.offset_date]
    dialogs, messages, chats, users = _dialogs_payload(ctx, rows)
    return types.messages.Dialogs(dialogs=dialogs, messages=messages, chats=chats, users=users)


@handles(functions.messages.GetPeerDialogsRequest)
def get_peer_dialogs(
    ctx: Context, req: functions.messages.GetPeerDialogsRequest
) -> types.messages.PeerDialogs:
    wanted = set()
    for item in req.peers:
        peer = input_peer(ctx, getattr(item, "peer", item))
        wanted.add((isinstance(peer, SimChannel), peer.id))
    rows = [
        r
        for r in _dialog_rows(ctx)
        if (
            isinstance(r.peer, types.PeerChannel),
            getattr(r.peer, "channel_id", None) or getattr(r.peer, "user_id", None),
        )
        in wanted
    ]
    dialogs, messages, chats, users = _dialogs_payload(ctx, rows)
    return types.messages.PeerDialogs(
        dialogs=dialogs, messages=messages, chats=chats, users=users, state=_state(ctx.user)
    )


# ----------------------------------------------------------------------------- sending


def _reply_to_id(reply_to: Any) -> int | None:
    return getattr(reply_to, "reply_to_msg_id", None) if reply_to is not None else None


def _sent(ctx: Context, sender: SimUser, random_id: int, msg: SimMessage, pts: int) -> Any:
    """What a client's send gets back: its random id is spent, the message is new."""
    ctx.world.record_random_id(sender, random_id)
    return ctx.world.updates(
        [
            types.UpdateMessageID(id=msg.id, random_id=random_id),
            types.UpdateNewMessage(msg.to_tl(), pts, 1),
        ],
        [msg],
        sender,
    )


@handles(functions.messages.SendMessageRequest)
def send_message(ctx: Context, req: functions.messages.SendMessageRequest) -> types.Updates:
    sender = ctx.user
    peer = input_peer(ctx, req.peer)
    if isinstance(peer, SimChannel):
        raise RpcFail(403, "CHAT_WRITE_FORBIDDEN")
    if not req.message:
        raise RpcFail(400, "MESSAGE_EMPTY")
    if len(req.message) > 4096:
        raise RpcFail(400, "MESSAGE_TOO_LONG")
    ctx.world.check_random_id(sender, req.random_id)
    msg, event = ctx.world.send_private(
        sender,
        peer,
        req.message,
        entities=req.entities,
        reply_markup=req.reply_markup,
        reply_to=_reply_to_id(req.reply_to),
        origin=ctx.conn,
    )
    return _sent(ctx, sender, req.random_id, msg, event.pts)


@handles(functions.upload.SaveFilePartRequest)
def save_file_part(ctx: Context, req: functions.upload.SaveFilePartRequest) -> bool:
    parts = ctx.world.uploads.setdefault((ctx.user.id, req.file_id), {})
    parts[req.file_part] = bytes(req.bytes)
    return True


def _uploaded(ctx: Context, file: Any) -> bytes:
    parts = ctx.world.uploads.pop((ctx.user.id, file.id), None)
    if parts is None or len(parts) != file.parts:
        raise RpcFail(400, "FILE_PARTS_INVALID")
    return b"".join(parts[i] for i in range(file.parts))


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        raise RpcFail(400, "IMAGE_PROCESS_FAILED")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@handles(functions.messages.SendMediaRequest)
def send_media(ctx: Context, req: functions.messages.SendMediaRequest) -> types.Updates:
    """An uploaded PNG photo to a private chat (what the bot's digest chart needs)."""
    sender = ctx.user
    peer = input_peer(ctx, req.peer)
    if isinstance(peer, SimChannel):
        raise RpcFail(403, "CHAT_WRITE_FORBIDDEN")
    if not isinstance(req.media, types.InputMediaUploadedPhoto):
        raise RpcFail(400, "MEDIA_INVALID")
    data = _uploaded(ctx, req.media.file)
    width, height = _png_size(data)
    ctx.world.check_random_id(sender, req.random_id)
    msg, event = ctx.world.send_private(
        sender,
        peer,
        req.message or "",
        entities=req.entities,
        reply_to=_reply_to_id(req.reply_to),
        media=ctx.world.photo(width, height, size=len(data)),
        origin=ctx.conn,
    )
    msg.file_bytes = data
    if msg.pair_id is not None and msg.pair_id in peer.messages:
        peer.messages[msg.pair_id].file_bytes = data
    return _sent(ctx, sender, req.random_id, msg, event.pts)


@handles(functions.messages.EditMessageRequest)
def edit_message(ctx: Context, req: functions.messages.EditMessageRequest) -> types.Updates:
    editor = ctx.user
    peer = input_peer(ctx, req.peer)
    if isinstance(peer, SimChannel):
        raise RpcFail(403, "CHAT_WRITE_FORBIDDEN")
    msg, event = ctx.world.edit_private(
        editor,
        peer,
        req.id,
        req.message,
        entities=req.entities,
        reply_markup=req.reply_markup,
        origin=ctx.conn,
    )
    return ctx.world.updates([types.UpdateEditMessage(msg.to_tl(), event.pts, 1)], [msg], editor)


@handles(functions.messages.DeleteMessagesRequest)
def delete_messages(
    ctx: Context, req: functions.messages.DeleteMessagesRequest
) -> types.messages.AffectedMessages:
    user = ctx.user
    ids = [i for i in req.id if i in user.messages and not user.messages[i].deleted]
    if not ids:
        return types.messages.AffectedMessages(pts=user.pts, pts_count=0)
    return ctx.world.delete_private(user, ids, revoke=bool(req.revoke), origin=ctx.conn)


# ----------------------------------------------------------------------------- bots


@handles(functions.bots.SetBotCommandsRequest)
def set_bot_commands(ctx: Context, req: functions.bots.SetBotCommandsRequest) -> bool:
    if not ctx.user.is_bot:
        raise RpcFail(400, "USER_BOT_REQUIRED")
    ctx.user.commands = [(c.command, c.description) for c in req.commands]
    return True


@handles(functions.bots.GetBotCommandsRequest)
def get_bot_commands(ctx: Context, req: Any) -> list[types.BotCommand]:
    if not ctx.user.is_bot:
        raise RpcFail(400, "USER_BOT_REQUIRED")
    return [types.BotCommand(c, d) for c, d in ctx.user.commands]


@handles(functions.bots.ResetBotCommandsRequest)
def reset_bot_commands(ctx: Context, req: Any) -> bool:
    if not ctx.user.is_bot:
        raise RpcFail(400, "USER_BOT_REQUIRED")
    ctx.user.commands = []
    return True


@handles(functions.messages.SetBotCallbackAnswerRequest)
def set_bot_callback_answer(
    ctx: Context, req: functions.messages.SetBotCallbackAnswerRequest
) -> bool:
    ctx.sim.answer_callback(ctx.user, req.query_id, req.message, bool(req.alert), req.url)
    return True


@handles(functions.messages.GetBotCallbackAnswerRequest)
async def get_bot_callback_answer(
    ctx: Context, req: functions.messages.GetBotCallbackAnswerRequest
) -> types.messages.BotCallbackAnswer:
    bot = input_user(ctx, req.peer)
    try:
        answer = await ctx.sim.press(ctx.user, bot, req.msg_id, req.data, timeout=10)
    except TimeoutError:
        raise RpcFail(400, "BOT_RESPONSE_TIMEOUT") from None
    return types.messages.BotCallbackAnswer(
        cache_time=0, alert=answer.alert or None, message=answer.message, url=answer.url
    )


# ----------------------------------------------------------------------------- login


@handles(functions.auth.ImportBotAuthorizationRequest, auth=False)
def import_bot_authorization(
    ctx: Context, req: functions.auth.ImportBotAuthorizationRequest
) -> types.auth.Authorization:
    bot = ctx.world.by_token(req.bot_auth_token)
    if bot is None:
        raise RpcFail(400, "ACCESS_TOKEN_INVALID")
    ctx.sim.bind(ctx.key, bot)
    return types.auth.Authorization(user=ctx.world.user_tl(bot, bot))


@handles(functions.auth.SendCodeRequest, auth=False)
def send_code(ctx: Context, req: functions.auth.SendCodeRequest) -> types.auth.SentCode:
    user = ctx.world.by_phone(req.phone_number)
    if user is None or user.is_bot:
        raise RpcFail(400, "PHONE_NUMBER_INVALID")
    phone_code_hash = os.urandom(8).hex()
    ctx.key.login = {"phone": req.phone_number, "hash": phone_code_hash, "user_id": user.id}
    return types.auth.SentCode(
        type=types.auth.SentCodeTypeApp(length=len(ctx.sim.login_code)),
        phone_code_hash=phone_code_hash,
    )


@handles(functions.auth.SignInRequest, auth=False)
def sign_in(ctx: Context, req: functions.auth.SignInRequest) -> types.auth.Authorization:
    pending = ctx.key.login
    if not pending or pending.get("hash") != req.phone_code_hash:
        raise RpcFail(400, "PHONE_CODE_EXPIRED")
    if req.phone_code != ctx.sim.login_code:
        raise RpcFail(400, "PHONE_CODE_INVALID")
    user = ctx.world.users[pending["user_id"]]
    if user.password is not None:
        pending["code_ok"] = True
        raise RpcFail(401, "SESSION_PASSWORD_NEEDED")
    ctx.key.login = None
    ctx.sim.bind(ctx.key, user)
    return types.auth.Authorization(user=ctx.world.user_tl(user, user))


def _srp_algo(
    user: SimUser,
) -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
    salt = hashlib.sha256(f"sim-salt:{user.id}".encode()).digest()
    return types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
        salt1=salt[:16], salt2=salt[16:], g=DH_G, p=DH_PRIME.to_bytes(256, "big")
    )


def _srp_user(ctx: Context) -> SimUser:
    pending = ctx.key.login
    if pending and pending.get("code_ok"):
        return ctx.world.users[pending["user_id"]]
    user = ctx.maybe_user
    if user is None:
        raise RpcFail(401, "AUTH_KEY_UNREGISTERED")
    return user


@handles(functions.account.GetPasswordRequest, auth=False)
def get_password(ctx: Context, req: Any) -> types.account.Password:
    user = _srp_user(ctx)
    new_algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
        salt1=os.urandom(8), salt2=os.urandom(16), g=DH_G, p=DH_PRIME.to_bytes(256, "big")
    )
    secure = types.SecurePasswordKdfAlgoSHA512(salt=os.urandom(8))
    if user.password is None:
        return types.account.Password(
            new_algo=new_algo, new_secure_algo=secure, secure_random=os.urandom(32)
        )
    algo = _srp_algo(user)
    v = pow(DH_G, int.from_bytes(tl_password.compute_hash(algo, user.password), "big"), DH_PRIME)
    k = int.from_bytes(tl_password.sha256(algo.p, tl_password.big_num_for_hash(DH_G)), "big")
    while True:
        b = int.from_bytes(os.urandom(256), "big")
        big_b = (k * v + pow(DH_G, b, DH_PRIME)) % DH_PRIME
        if tl_password.is_good_mod_exp_first(big_b, DH_PRIME):
            break
    srp_id = int.from_bytes(os.urandom(8), "little", signed=True)
    ctx.key.srp = {"id": srp_id, "b": b, "B": big_b, "v": v, "user_id": user.id}
    return types.account.Password(
        new_algo=new_algo,
        new_secure_algo=secure,
        secure_random=os.urandom(32),
        has_password=True,
        current_algo=algo,
        srp_B=tl_password.big_num_for_hash(big_b),
        srp_id=srp_id,
        hint=None,
    )


@handles(functions.auth.CheckPasswordRequest, auth=False)
def check_password(
    ctx: Context, req: functions.auth.CheckPasswordRequest
) -> types.auth.Authorization:
    srp = ctx.key.srp
    check = req.password
    if not srp or not isinstance(check, types.InputCheckPasswordSRP) or check.srp_id != srp["id"]:
        raise RpcFail(400, "SRP_ID_INVALID")
    ctx.key.srp = None
    user = ctx.world.users[srp["user_id"]]
    algo = _srp_algo(user)
    p_bytes = algo.p
    a_bytes = tl_password.num_bytes_for_hash(check.A)
    b_bytes = tl_password.big_num_for_hash(srp["B"])
    big_a = int.from_bytes(check.A, "big")
    if not 0 < big_a < DH_PRIME:
        raise RpcFail(400, "SRP_A_INVALID")
    u = int.from_bytes(tl_password.sha256(a_bytes, b_bytes), "big")
    s = pow(big_a * pow(srp["v"], u, DH_PRIME) % DH_PRIME, srp["b"], DH_PRIME)
    session_key = tl_password.sha256(tl_password.big_num_for_hash(s))
    expected = tl_password.sha256(
        tl_password.xor(
            tl_password.sha256(p_bytes), tl_password.sha256(tl_password.big_num_for_hash(DH_G))
        ),
        tl_password.sha256(algo.salt1),
        tl_password.sha256(algo.salt2),
        a_bytes,
        b_bytes,
        session_key,
    )
    if expected != check.M1:
        raise RpcFail(400, "PASSWORD_HASH_INVALID")
    ctx.key.login = None
    ctx.sim.bind(ctx.key, user)
    return types.auth.Authorization(user=ctx.world.user_tl(user, user))


@handles(functions.auth.LogOutRequest)
def log_out(ctx: Context, req: Any) -> types.auth.LoggedOut:
    ctx.sim.unbind(ctx.key)
    return types.auth.LoggedOut()


# ----------------------------------------------------------------------------- files


@handles(functions.upload.GetFileRequest)
def get_file(ctx: Context, req: functions.upload.GetFileRequest) -> types.upload.File:
    media_id = getattr(req.location, "id", None)
    size = ctx.world.files.get(media_id) if isinstance(media_id, int) else None
    if size is None:
        raise RpcFail(400, "FILE_REFERENCE_INVALID")
    content = file_content(media_id, size)
    chunk = content[req.offset : req.offset + req.limit]
    return types.upload.File(type=types.storage.FileUnknown(), mtime=0, bytes=chunk)


_FILE_CACHE: dict[int, bytes] = {}


def file_content(media_id: int, size: int) -> bytes:
    """Deterministic pseudo-random bytes standing in for a media file."""
    content = _FILE_CACHE.get(media_id)
    if content is None or len(content) != size:
        content = hashlib.shake_256(f"sim-file:{media_id}".encode()).digest(size)
        if len(_FILE_CACHE) > 64:
            _FILE_CACHE.clear()
        _FILE_CACHE[media_id] = content
    return content


async def run_handler(route: Route, ctx: Context, request: Any) -> HandlerResult:
    result = route.handler(ctx, request)
    if inspect.isawaitable(result):
        return await result
    return result


def unhandled(name: str) -> RpcFail:
    logger.error("Simulator has no handler for {}; answering 400 SIM_UNHANDLED_{}", name, name)
    return RpcFail(400, f"SIM_UNHANDLED_{name}")
