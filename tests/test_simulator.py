"""The loopback Telegram, exercised through the real Telethon client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from telethon import TelegramClient, errors, events
from telethon.tl import functions, types

from bot.simulator import SimChannel, Simulator, SimUser

TIMEOUT = 10


@asynccontextmanager
async def connected(
    sim: Simulator, who: SimUser | None, **kwargs: Any
) -> AsyncIterator[TelegramClient]:
    client = sim.client_for(who, **kwargs)
    async with asyncio.timeout(TIMEOUT):
        await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


async def next_event(queue: asyncio.Queue[Any]) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return await queue.get()


async def joined_client_events(
    sim: Simulator, client: TelegramClient, channel: SimChannel
) -> asyncio.Queue[tuple[str, Any]]:
    """Join ``channel`` through the API and collect new/edited/deleted events."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def on_new(event: events.NewMessage.Event) -> None:
        await queue.put(("new", event.message))

    async def on_edit(event: events.MessageEdited.Event) -> None:
        await queue.put(("edit", event.message))

    async def on_delete(event: events.MessageDeleted.Event) -> None:
        await queue.put(("delete", event))

    client.add_event_handler(on_new, events.NewMessage())
    client.add_event_handler(on_edit, events.MessageEdited())
    client.add_event_handler(on_delete, events.MessageDeleted())
    async with asyncio.timeout(TIMEOUT):
        entity = await client.get_input_entity(channel.username)
        await client(functions.channels.JoinChannelRequest(entity))
    return queue


# ----------------------------------------------------------------------------- identity


async def test_get_me_for_user_and_bot(sim: Simulator) -> None:
    ann = sim.add_user(phone="+15550001", first_name="Ann", username="ann")
    bot = sim.add_bot(username="watch_bot", token="123456:TESTTOKEN")
    async with connected(sim, ann) as user_client, connected(sim, bot) as bot_client:
        async with asyncio.timeout(TIMEOUT):
            me = await user_client.get_me()
            bot_me = await bot_client.get_me()
            assert await bot_client.is_bot()
            assert not await user_client.is_bot()
    assert (me.id, me.username, me.first_name, me.phone) == (ann.id, "ann", "Ann", "+15550001")
    assert me.is_self and not me.bot
    assert bot_me.id == bot.id and bot_me.bot and bot_me.username == "watch_bot"


async def test_every_framing_works(sim: Simulator) -> None:
    from telethon.network import (
        ConnectionTcpAbridged,
        ConnectionTcpFull,
        ConnectionTcpIntermediate,
    )

    ann = sim.add_user(username="ann")
    for connection in (ConnectionTcpFull, ConnectionTcpIntermediate, ConnectionTcpAbridged):
        async with connected(sim, ann, connection=connection) as client:
            async with asyncio.timeout(TIMEOUT):
                assert (await client.get_me()).id == ann.id


async def test_resolve_channel_by_username_and_unknown_name(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="rdk_channel", title="Русский добровольческий корпус")
    async with connected(sim, ann) as client:
        async with asyncio.timeout(TIMEOUT):
            entity = await client.get_entity("rdk_channel")
            assert isinstance(entity, types.Channel)
            mine = sim.world.access_hash_for(channel, ann)
            assert (entity.id, entity.access_hash) == (channel.id, mine)
            assert entity.title == "Русский добровольческий корпус" and entity.broadcast
            # by id, from the session cache, then the full channel
            full = await client(functions.channels.GetFullChannelRequest(entity))
            assert full.full_chat.id == channel.id
            with pytest.raises(errors.UsernameNotOccupiedError):
                await client(functions.contacts.ResolveUsernameRequest("no_such_channel"))
            with pytest.raises(ValueError, match="no_such_channel"):
                await client.get_entity("no_such_channel")
            # get_input_entity answers from the session cache (get_entity would ask again)
            cached = await client.get_input_entity("rdk_channel")
            assert cached.channel_id == channel.id
    assert sim.requests_seen("ResolveUsernameRequest") == 3
    assert sim.requests_seen("contacts.ResolveUsername") == 3


async def test_unknown_request_is_loud(sim: Simulator, simulator_errors: list[str]) -> None:
    ann = sim.add_user(username="ann")
    async with connected(sim, ann) as client:
        with pytest.raises(errors.RPCError) as info:
            async with asyncio.timeout(TIMEOUT):
                await client(functions.help.GetTermsOfServiceUpdateRequest())
    assert info.value.code == 400
    assert "SIM_UNHANDLED_GetTermsOfServiceUpdateRequest" in str(info.value)
    assert any("GetTermsOfServiceUpdateRequest" in line for line in simulator_errors)
    simulator_errors.clear()


# ----------------------------------------------------------------------------- history


async def test_history_pages_in_both_directions(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="news", title="News")
    for i in range(1, 251):
        sim.post(channel, f"post {i}")
    sim.delete(channel, [13])
    async with connected(sim, ann) as client:
        async with asyncio.timeout(TIMEOUT):
            newest_first = [m.id async for m in client.iter_messages("news", wait_time=0)]
            oldest_first = [
                m.id async for m in client.iter_messages("news", reverse=True, wait_time=0)
            ]
            above = [m.id async for m in client.iter_messages("news", min_id=200, wait_time=0)]
            above_rev = [
                m.id
                async for m in client.iter_messages("news", min_id=40, reverse=True, wait_time=0)
            ]
            limited = [m.id async for m in client.iter_messages("news", limit=150, wait_time=0)]
            below = [m.id async for m in client.iter_messages("news", max_id=20, wait_time=0)]
            page = await client.get_messages("news", limit=5, offset_id=100)
            texts = {m.id: m.text async for m in client.iter_messages("news", limit=3)}
    expected = [i for i in range(250, 0, -1) if i != 13]
    assert newest_first == expected
    assert oldest_first == expected[::-1]
    assert above == list(range(250, 200, -1))
    assert above_rev == list(range(41, 251))
    assert limited == expected[:150]
    assert below == [i for i in range(19, 0, -1) if i != 13]
    assert [m.id for m in page] == [99, 98, 97, 96, 95]
    assert page.total == 249
    assert texts == {250: "post 250", 249: "post 249", 248: "post 248"}
    assert sim.requests_seen("GetHistoryRequest") >= 3 + 3 + 1 + 3


async def test_media_forwards_albums_and_counters(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    source = sim.add_channel(username="source", title="Source")
    mirror = sim.add_channel(username="mirror", title="Mirror")
    first = sim.post(source, "original", media=sim.photo(w=1280, h=720, size=160_000))
    album = sim.post_album(
        source, [sim.photo(), sim.video(duration=12, w=640, h=360)], caption="album"
    )
    pdf = sim.post(
        source, "report", media=sim.document(mime="application/pdf", file_name="r.pdf", size=4242)
    )
    copy = sim.forward(source, first, to=mirror)
    reply = sim.post(source, "reply", reply_to=first)
    sim.set_views(source, first, views=1500, reactions={"👍": 3, "🔥": 1})
    async with connected(sim, ann) as client:
        async with asyncio.timeout(TIMEOUT):
            msgs = {m.id: m async for m in client.iter_messages("source", wait_time=0)}
            forwarded = (await client.get_messages("mirror", ids=[copy]))[0]
            sim.delete(source, [pdf])
            by_id = await client.get_messages("source", ids=[reply, pdf, 9999])
            views = await client(
                functions.messages.GetMessagesViewsRequest(
                    peer=await client.get_input_entity("source"), id=[first], increment=False
                )
            )
    photo = msgs[first]
    assert isinstance(photo.media, types.MessageMediaPhoto)
    assert (photo.file.width, photo.file.height, photo.file.size) == (1280, 720, 160_000)
    assert photo.views == 1500 and photo.forwards == 1
    assert {r.reaction.emoticon: r.count for r in photo.reactions.results} == {"👍": 3, "🔥": 1}
    assert msgs[album[0]].grouped_id == msgs[album[1]].grouped_id is not None
    assert msgs[album[0]].text == "album" and msgs[album[1]].text == ""
    video = msgs[album[1]]
    assert video.video and video.file.duration == 12 and video.file.mime_type == "video/mp4"
    assert (msgs[pdf].file.name, msgs[pdf].file.size) == ("r.pdf", 4242)
    assert msgs[reply].reply_to.reply_to_msg_id == first
    assert forwarded.fwd_from.from_id == types.PeerChannel(source.id)
    assert forwarded.fwd_from.channel_post == first and forwarded.text == "original"
    assert views.views[0].views == 1500 and views.views[0].forwards == 1
    assert by_id[0].id == reply and by_id[1] is None and by_id[2] is None


# ----------------------------------------------------------------------------- live updates


async def test_live_new_edited_and_deleted_posts(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="live", title="Live")
    sim.post(channel, "before joining")
    async with connected(sim, ann) as client:
        queue = await joined_client_events(sim, client, channel)
        assert ann.id in channel.members
        mid = sim.post(channel, "hello")
        kind, msg = await next_event(queue)
        assert (kind, msg.id, msg.text, msg.chat_id) == (
            "new",
            mid,
            "hello",
            -1000000000000 - channel.id,
        )
        sim.edit(channel, mid, "hello, edited")
        kind, msg = await next_event(queue)
        assert (kind, msg.id, msg.text) == ("edit", mid, "hello, edited")
        assert msg.edit_date is not None
        sim.delete(channel, [mid])
        kind, event = await next_event(queue)
        assert kind == "delete" and event.deleted_ids == [mid]
        assert event.chat_id == -1000000000000 - channel.id
        ids = sim.post_album(channel, [sim.photo(), sim.photo()], caption="two")
        got = [(await next_event(queue))[1] for _ in ids]
        assert [m.id for m in got] == ids and got[0].grouped_id == got[1].grouped_id
    assert queue.empty()


async def test_gap_is_filled_through_channel_difference(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="gappy", title="Gappy")
    async with connected(sim, ann) as client:
        queue = await joined_client_events(sim, client, channel)
        first = sim.post(channel, "first")
        assert (await next_event(queue))[1].id == first
        missed = sim.post(channel, "missed", push=False)
        also_missed = sim.post(channel, "also missed", push=False)
        last = sim.post(channel, "last")
        got = sorted([(await next_event(queue))[1] for _ in range(3)], key=lambda m: m.id)
    assert [(m.id, m.text) for m in got] == [
        (missed, "missed"),
        (also_missed, "also missed"),
        (last, "last"),
    ]
    assert sim.requests_seen("updates.GetChannelDifferenceRequest") >= 1


async def test_dialogs_give_telethon_the_channel_pts_so_a_first_gap_is_seen(
    sim: Simulator,
) -> None:
    ann = sim.add_user(username="ann")
    bot = sim.add_bot(username="watch_bot")
    joined = sim.add_channel(username="joined", title="Joined")
    sim.add_channel(username="other", title="Not joined")
    sim.post(joined, "old")
    sim.join(ann, joined)
    await sim.user_sends(ann, bot, "/start")
    async with connected(sim, ann) as client:
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def on_new(event: events.NewMessage.Event) -> None:
            await queue.put(event.message)

        client.add_event_handler(on_new, events.NewMessage(chats=[joined.id]))
        async with asyncio.timeout(TIMEOUT):
            dialogs = await client.get_dialogs()
        assert {d.entity.id for d in dialogs} == {joined.id, bot.id}
        # without the dialogs Telethon would take the first update's pts as its start
        hidden = sim.post(joined, "hidden", push=False)
        shown = sim.post(joined, "shown")
        got = sorted([(await next_event(queue)).id for _ in range(2)])
    assert got == [hidden, shown]


async def test_too_long_gap_skips_to_the_present(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="firehose", title="Firehose")
    sim.channel_difference_too_long = 5
    async with connected(sim, ann) as client:
        queue = await joined_client_events(sim, client, channel)
        sim.post(channel, "seen")
        assert (await next_event(queue))[1].text == "seen"
        for i in range(10):
            sim.post(channel, f"lost {i}", push=False)
        sim.post(channel, "reveals the gap")  # Telethon drops it with the too-long gap
        async with asyncio.timeout(TIMEOUT):
            await sim.wait_until(lambda: sim.requests_seen("GetChannelDifferenceRequest"))
        later = sim.post(channel, "after the gap")
        kind, msg = await next_event(queue)
    assert (kind, msg.id) == ("new", later)


async def test_channel_difference_reports_missed_edits_and_deletions(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="diff", title="Diff")
    a = sim.post(channel, "a")
    b = sim.post(channel, "b")
    pts = channel.pts
    sim.edit(channel, a, "a2", push=False)
    sim.delete(channel, [b], push=False)
    c = sim.post(channel, "c", push=False)
    async with connected(sim, ann) as client:
        async with asyncio.timeout(TIMEOUT):
            entity = await client.get_input_entity("diff")
            diff = await client(
                functions.updates.GetChannelDifferenceRequest(
                    channel=entity, filter=types.ChannelMessagesFilterEmpty(), pts=pts, limit=100
                )
            )
            empty = await client(
                functions.updates.GetChannelDifferenceRequest(
                    channel=entity,
                    filter=types.ChannelMessagesFilterEmpty(),
                    pts=channel.pts,
                    limit=100,
                )
            )
    assert diff.final and diff.pts == channel.pts
    assert [m.id for m in diff.new_messages] == [c]
    kinds = {type(u).__name__: u for u in diff.other_updates}
    assert kinds["UpdateEditChannelMessage"].message.message == "a2"
    assert kinds["UpdateDeleteChannelMessages"].messages == [b]
    assert isinstance(empty, types.updates.ChannelDifferenceEmpty)


# ----------------------------------------------------------------------------- faults


async def test_flood_wait_is_waited_out_or_raised(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="busy", title="Busy")
    sim.post(channel, "one")
    async with connected(sim, ann, flood_sleep_threshold=60) as client:
        async with asyncio.timeout(TIMEOUT):
            await client.get_input_entity("busy")
            sim.fail(request="GetHistoryRequest", error="FLOOD_WAIT_1", times=1)
            msgs = await client.get_messages("busy", limit=5)
    assert [m.text for m in msgs] == ["one"]
    assert sim.requests_seen("GetHistoryRequest") == 2
    async with connected(sim, ann, flood_sleep_threshold=0) as client:
        async with asyncio.timeout(TIMEOUT):
            await client.get_input_entity("busy")
            sim.fail(request="messages.GetHistoryRequest", error="FLOOD_WAIT_1")
            with pytest.raises(errors.FloodWaitError) as info:
                await client.get_messages("busy", limit=5)
    assert info.value.seconds == 1


async def test_dropped_connection_reconnects(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    channel = sim.add_channel(username="flaky", title="Flaky")
    async with connected(sim, ann) as client:
        queue = await joined_client_events(sim, client, channel)
        assert await sim.drop_connections() >= 1
        async with asyncio.timeout(TIMEOUT):
            assert (await client.get_me()).id == ann.id
            await sim.wait_until(lambda: sim.online(ann))
        mid = sim.post(channel, "after reconnect")
        assert (await next_event(queue))[1].id == mid


# ----------------------------------------------------------------------------- bots


async def test_bot_logs_in_with_token_and_user_receives_its_message(sim: Simulator) -> None:
    ann = sim.add_user(username="ann", first_name="Ann")
    bot = sim.add_bot(username="watch_bot", token="123456:TESTTOKEN")
    async with connected(sim, ann) as user_client, connected(sim, None) as bot_client:
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        async def on_message(event: events.NewMessage.Event) -> None:
            await inbox.put(event.message)

        user_client.add_event_handler(on_message, events.NewMessage(incoming=True))
        async with asyncio.timeout(TIMEOUT):
            assert not await bot_client.is_user_authorized()
            with pytest.raises(errors.AccessTokenInvalidError):
                await bot_client.sign_in(bot_token="123456:WRONG")
            me = await bot_client.sign_in(bot_token="123456:TESTTOKEN")
            assert me.id == bot.id and me.bot
            sent = await bot_client.send_message(ann.id, "**Alert**: match", parse_mode="md")
        msg = await next_event(inbox)
    assert (msg.text, msg.sender_id, msg.chat_id) == ("**Alert**: match", bot.id, bot.id)
    assert msg.raw_text == "Alert: match" and isinstance(msg.entities[0], types.MessageEntityBold)
    assert [m.text for m in sim.messages_to(ann, from_=bot)] == ["Alert: match"]
    assert sent.id == bot.messages[sent.id].id and sent.out


async def test_user_commands_and_button_presses_reach_the_bot(sim: Simulator) -> None:
    from telethon import Button

    ann = sim.add_user(username="ann", first_name="Ann")
    bot = sim.add_bot(username="watch_bot")
    async with connected(sim, bot) as bot_client, connected(sim, ann) as user_client:
        commands: asyncio.Queue[Any] = asyncio.Queue()

        async def on_command(event: events.NewMessage.Event) -> None:
            await commands.put(event.message)
            await event.respond(
                f"page 1 for {event.sender_id}",
                buttons=[[Button.inline("next", b"page:2"), Button.inline("stop", b"stop")]],
            )

        async def on_press(event: events.CallbackQuery.Event) -> None:
            await event.answer(f"got {event.data.decode()}")
            await event.edit("page 2")

        bot_client.add_event_handler(on_command, events.NewMessage(pattern="/start"))
        bot_client.add_event_handler(on_press, events.CallbackQuery())
        async with asyncio.timeout(TIMEOUT):
            await bot_client(
                functions.bots.SetBotCommandsRequest(
                    scope=types.BotCommandScopeDefault(),
                    lang_code="",
                    commands=[types.BotCommand("start", "Start"), types.BotCommand("help", "Help")],
                )
            )
        # a scripted user (no client of their own) ...
        sent_id = await sim.user_sends(ann, bot, "/start")
        command = await next_event(commands)
        assert (command.text, command.sender_id) == ("/start", ann.id)
        assert isinstance(command.entities[0], types.MessageEntityBotCommand)
        [reply] = await sim.wait_for_messages(ann, from_=bot, count=1, timeout=TIMEOUT)
        assert reply.text == f"page 1 for {ann.id}"
        assert reply.buttons == [[("next", b"page:2"), ("stop", b"stop")]]
        answer = await sim.user_presses(ann, bot, reply.id, data=b"page:2", timeout=TIMEOUT)
        assert answer.message == "got page:2"
        await sim.wait_for_messages(ann, from_=bot, predicate=lambda ms: ms[0].edited)
        assert sim.messages_to(ann, from_=bot)[0].text == "page 2"
        # ... and a user with a real client: its message arrives at the bot as an event too
        async with asyncio.timeout(TIMEOUT):
            await user_client.send_message("watch_bot", "/start again")
        again = await next_event(commands)
        assert again.text == "/start again" and again.sender_id == ann.id
        await sim.wait_for_messages(ann, from_=bot, count=2, timeout=TIMEOUT)
        async with asyncio.timeout(TIMEOUT):
            [latest] = await user_client.get_messages("watch_bot", limit=1)
            assert latest.text == f"page 1 for {ann.id}" and latest.buttons
            pressed = await latest.click(data=b"page:2")
        assert pressed.message == "got page:2"
    assert bot.commands == [("start", "Start"), ("help", "Help")]
    assert sent_id in ann.messages


async def test_blocked_bot_gets_user_is_blocked(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    bot = sim.add_bot(username="watch_bot")
    sim.block(ann, bot)
    async with connected(sim, bot) as client:
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(errors.UserIsBlockedError):
                await client.send_message(ann.id, "hello?")
    sim.unblock(ann, bot)
    assert sim.messages_to(ann) == []


async def test_bot_send_limits_issue_flood_waits(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    bob = sim.add_user(username="bob")
    bot = sim.add_bot(username="watch_bot")
    sim.enforce_bot_limits = True
    async with connected(sim, bot, flood_sleep_threshold=0) as client:
        async with asyncio.timeout(TIMEOUT):
            for i in range(3):
                await client.send_message(ann.id, f"burst {i}")
            with pytest.raises(errors.FloodWaitError) as info:
                await client.send_message(ann.id, "one too many")
            await client.send_message(bob.id, "another chat is fine")
    assert info.value.seconds >= 1
    assert sim.flood_waits_issued == 1
    assert len(sim.messages_to(ann, from_=bot)) == 3


# ----------------------------------------------------------------------------- login


async def test_login_with_code(sim: Simulator) -> None:
    ann = sim.add_user(phone="+15550001", first_name="Ann")
    async with connected(sim, None) as client:
        async with asyncio.timeout(TIMEOUT):
            assert not await client.is_user_authorized()
            with pytest.raises(errors.PhoneNumberInvalidError):
                await client.send_code_request("+15559999")
            sent = await client.send_code_request("+15550001")
            assert sent.phone_code_hash
            with pytest.raises(errors.PhoneCodeInvalidError):
                await client.sign_in("+15550001", "00000")
            me = await client.sign_in("+15550001", sim.login_code)
            assert me.id == ann.id
            assert await client.is_user_authorized()
            assert (await client.get_me()).phone == "+15550001"


async def test_login_with_code_and_2fa_password(sim: Simulator) -> None:
    bob = sim.add_user(phone="+15550002", first_name="Bob", password="correct horse")
    async with connected(sim, None) as client:
        async with asyncio.timeout(TIMEOUT):
            await client.send_code_request("+15550002")
            with pytest.raises(errors.SessionPasswordNeededError):
                await client.sign_in("+15550002", sim.login_code)
            assert not await client.is_user_authorized()
            with pytest.raises(errors.PasswordHashInvalidError):
                await client.sign_in(password="battery staple")
            me = await client.sign_in(password="correct horse")
            assert me.id == bob.id
            assert (await client.get_me()).id == bob.id


async def test_real_auth_key_handshake(sim: Simulator, tmp_path: Path) -> None:
    from telethon.crypto import rsa
    from telethon.sessions import SQLiteSession

    ann = sim.add_user(phone="+15550001", first_name="Ann")
    rsa.add_key(sim.rsa_public_key_pem(), old=False)
    try:
        session = sim.session_for(None, with_key=False)
        assert session.auth_key is None
        async with connected(sim, None, session=session) as client:
            async with asyncio.timeout(TIMEOUT):
                assert client.session.auth_key is not None
                await client.send_code_request("+15550001")
                await client.sign_in("+15550001", sim.login_code)
                # kept in a session file, as the service keeps it (a StringSession pads
                # a key of 255 bytes, one handshake in 256, to 256 and so changes it)
                kept = SQLiteSession(str(tmp_path / "ann"))
                live = client.session
                kept.set_dc(live.dc_id, live.server_address, live.port)
                kept.auth_key = client.session.auth_key
                kept.save()
                kept.close()
        # the negotiated key is known to the server: the saved session is logged in
        async with connected(sim, None, session=SQLiteSession(str(tmp_path / "ann"))) as again:
            async with asyncio.timeout(TIMEOUT):
                assert (await again.get_me()).id == ann.id
    finally:
        rsa._server_keys.pop(sim.rsa_fingerprint, None)


# ----------------------------------------------------------------------------- protocol


async def test_containers_gzip_pings_dates_and_downloads(sim: Simulator) -> None:
    import datetime as dt

    ann = sim.add_user(username="ann")
    bot = sim.add_bot(username="watch_bot")
    channel = sim.add_channel(username="dated", title="Dated")
    start = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    ids = [sim.post(channel, f"day {d}", date=start + dt.timedelta(days=d)) for d in range(10)]
    pdf = sim.post(channel, "file", media=sim.document(file_name="r.pdf", size=70_000))
    long_text = "плен " * 800 + "!"  # > 512 bytes and compressible: Telethon gzips the request
    async with connected(sim, ann) as client, connected(sim, bot) as bot_client:
        async with asyncio.timeout(TIMEOUT):
            entity = await client.get_input_entity("dated")
            # concurrent requests travel in one container
            pages = await asyncio.gather(
                *(client.get_messages(entity, limit=1, offset_id=i + 1) for i in ids)
            )
            older = await client.get_messages(
                entity, limit=1, offset_date=start + dt.timedelta(days=3, hours=1)
            )
            pong = await client(functions.PingRequest(ping_id=42))
            sent = await bot_client.send_message(ann.id, long_text)
            data = await client.download_media(
                (await client.get_messages(entity, ids=pdf)), file=bytes
            )
    assert [p[0].id for p in pages] == ids
    assert [m.id for m in older] == [ids[3]] and older[0].date == start + dt.timedelta(days=3)
    assert pong.ping_id == 42
    assert sent.text == long_text and sim.messages_to(ann, from_=bot)[0].text == long_text
    assert len(data) == 70_000
    assert sim.protocol_stats["container"] >= 1
    assert sim.protocol_stats["gzip_packed"] >= 1
    assert sim.protocol_stats["ping"] >= 1


async def test_private_history_pages_like_channels(sim: Simulator) -> None:
    ann = sim.add_user(username="ann")
    bot = sim.add_bot(username="watch_bot")
    async with connected(sim, bot) as bot_client:
        async with asyncio.timeout(TIMEOUT):
            for i in range(130):
                await bot_client.send_message(ann.id, f"alert {i}")
    async with connected(sim, ann) as client:
        async with asyncio.timeout(TIMEOUT):
            newest = [m.text async for m in client.iter_messages("watch_bot", wait_time=0)]
            oldest = [
                m.text async for m in client.iter_messages("watch_bot", reverse=True, wait_time=0)
            ]
    assert newest == [f"alert {i}" for i in range(129, -1, -1)]
    assert oldest == newest[::-1]


def test_history_pages_match_a_plain_filter_as_posts_come_and_go() -> None:
    """getHistory's arguments (offsets, bounds, limit) give what a plain filter of the
    live messages gives, also right after posts are added or deleted."""
    import datetime as dt
    import random

    from bot.simulator.world import World

    def plain(messages: list[Any], **kw: Any) -> list[int]:
        live = sorted((m for m in messages if not m.deleted), key=lambda m: -m.id)
        min_id, max_id = kw["min_id"], kw["max_id"]
        found = [m for m in live if m.id > min_id and (max_id <= 0 or m.id < max_id)]
        start = 0
        if kw["offset_id"]:
            start = next((i for i, m in enumerate(found) if m.id < kw["offset_id"]), len(found))
        elif kw["offset_date"] is not None:
            start = next((i for i, m in enumerate(found) if m.date < kw["offset_date"]), len(found))
        start += kw["add_offset"]
        end = start + max(0, min(kw["limit"], 100))
        return [m.id for m in found[max(start, 0) : max(end, 0)]]

    rng = random.Random(7)
    world = World(lambda *_: None, seed=1)
    channel = world.add_channel("c", "C")
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(1, 301):
        world.post(
            channel, f"p{i}", push=False, date=base + dt.timedelta(minutes=rng.randint(0, 500))
        )
        if rng.random() < 0.2:
            world.delete(channel, [rng.randint(1, i)], push=False)
        if i % 10:
            continue
        for _ in range(20):
            kw: dict[str, Any] = {
                "offset_id": rng.choice([0, rng.randint(-5, 320)]),
                "offset_date": None,
                "add_offset": rng.randint(-120, 50),
                "limit": rng.randint(-3, 130),
                "max_id": rng.choice([0, rng.randint(-5, 320)]),
                "min_id": rng.choice([0, rng.randint(-5, 320)]),
            }
            if rng.random() < 0.3:
                kw["offset_id"] = 0
                kw["offset_date"] = base + dt.timedelta(minutes=rng.randint(1, 600))
            page, total = world.history(channel, **kw)
            assert [m.id for m in page] == plain(list(channel.messages.values()), **kw), kw
            assert total == sum(1 for m in channel.messages.values() if not m.deleted)
