"""A loopback Telegram for tests, ``chanwatch demo`` and benchmarks.

The real, unmodified Telethon client talks MTProto 2.0 over TCP (full, intermediate or
abridged framing) to a server on 127.0.0.1, which answers from a scriptable world of
users, bots and channels. Production code never imports this package except the demo.

Modules: ``transport`` (framing), ``mtproto`` (crypto, msg ids, handshake), ``world``
(state and Telegram's rules), ``handlers`` (one function per TL request), ``server``
(connections and the ``Simulator`` facade).

Scripting API::

    from bot.simulator import Simulator

    sim = Simulator(seed=None, login_code="12345")  # nothing bound yet
    await sim.start()               # binds 127.0.0.1 port 0 -> sim.port, sim.dc_id (2)
    await sim.stop()                # disconnects clients made by client_for, closes sockets
    async with Simulator() as sim: ...

    user = sim.add_user(phone="+15550001", first_name="Ann", username="ann", password=None)
    bot = sim.add_bot(username="watch_bot", token="123456:TESTTOKEN")   # .is_bot, .token
    ch = sim.add_channel(username="rdk_channel", title="...", about="")  # .id .access_hash .pts

    # channel posts (push=False advances pts without sending: a gap the client must fill)
    mid = sim.post(ch, "text", push=True, media=None, fwd_from=None, reply_to=None,
                   entities=None, date=None, views=0, forwards=0)
    ids = sim.post_album(ch, [sim.photo(), sim.video(duration=12)], caption="...", push=True)
    # any TL media goes through media=: types.MessageMediaUnsupported(), MessageMediaDice(
    #   value=3, emoticon="🎲"), MessageMediaGeo(types.GeoPoint(...)), MessageMediaPoll(...)
    sim.post_service(ch, types.MessageActionPinMessage())  # a service message (default: title)
    sim.photo(w=1280, h=720, size=None)          # -> types.MessageMediaPhoto
    sim.video(duration=10, w=1280, h=720, size=None, file_name="video.mp4", mime="video/mp4")
    sim.document(mime="application/pdf", file_name="x.pdf", size=100_000)
    new_id = sim.forward(src_ch, src_msg_id, to=dst_ch, push=True)  # fwd_from -> src
    sim.edit(ch, mid, "new text", push=True, entities=None, media=None)
    sim.delete(ch, [mid], push=True)
    sim.set_views(ch, mid, views=None, forwards=None, reactions={"👍": 3}, replies=None)
    sim.message(ch, mid) -> SimMessage        # current state of a post
    sim.join(user, ch); sim.leave(user, ch)  # scripted membership (also via joinChannel)

    # clients
    sim.session_for(user_or_bot)          # StringSession, logged in, dc -> 127.0.0.1:port
    sim.session_for(None)                 # key known, logged out (login tests)
    sim.session_for(None, with_key=False) # empty: client does the real DH handshake,
                                          # after telethon.crypto.rsa.add_key(
                                          #     sim.rsa_public_key_pem(), old=False)
    sim.client_for(user_or_bot, **telegram_client_kwargs)  # not connected; test defaults
    sim.online(user) -> bool              # has a live connection receiving updates

    # bots
    msg_id = await sim.user_sends(user, bot, "/start")           # id in the user's box
    answer = await sim.user_presses(user, bot, msg_id, data=b"page:2", timeout=5)
    sim.messages_to(user, from_=bot) -> list[SimMessage]  # .id .text .entities .buttons
                                     # .reply_markup .reply_to .edited .edit_date .date
    await sim.wait_for_messages(user, from_=bot, count=1, timeout=5)  # TimeoutError
    await sim.wait_until(lambda: ..., timeout=5)   # any condition; re-checked after every
                            # world change, connection change and answered request
    sim.block(user, bot); sim.unblock(user, bot)   # bot sends -> 400 USER_IS_BLOCKED
    sim.enforce_bot_limits = True   # per chat 3 burst @1/s, global 30 @30/s -> FLOOD_WAIT_n
    sim.dedup_random_ids = True     # a bot resending a random id -> 500 RANDOM_ID_DUPLICATE
    sim.flood_waits_issued          # how many FloodWaits the limits produced

    # faults and observation
    sim.fail(request="GetHistoryRequest", error="FLOOD_WAIT_1", times=1, code=None,
             channel=None)          # channel=ch: only requests about that channel fail
    await sim.drop_connections()   # close every socket; Telethon reconnects by itself
    sim.requests_seen("ResolveUsernameRequest") -> int   # or "contacts.ResolveUsername"
    sim.request_log -> list[RequestRecord]   # every request: .name ("messages.GetHistory
                                    # Request"), .sent_at (client clock, from its msg id),
                                    # .received_at, .error ("FLOOD_WAIT_3" or None)
    sim.protocol_stats["container" | "gzip_packed" | "ping" | "MsgsAck"] -> int
    sim.channel_difference_too_long = None  # or N: getChannelDifference answers TooLong
                                            # when more than N messages are pending
    sim.login_code                  # the code auth.signIn accepts ("12345")
    sim.rsa_fingerprint             # of the handshake key, to unregister it afterwards

Telethon learns a channel's pts only from ``get_dialogs()`` (messages.getDialogs carries
it) or from the first pushed update; a gap before that first update goes unnoticed, as
with the real Telegram. ``get_entity("name")`` always asks contacts.resolveUsername again;
``get_input_entity`` answers from the session cache.

Unknown requests answer ``400 SIM_UNHANDLED_<ClassName>`` and log at ERROR; the test
suite fails any test during which the simulator logged an ERROR.
"""

from .server import CallbackAnswer, RequestRecord, Simulator
from .world import RpcFail, SimChannel, SimMessage, SimUser

__all__ = [
    "CallbackAnswer",
    "RequestRecord",
    "RpcFail",
    "SimChannel",
    "SimMessage",
    "SimUser",
    "Simulator",
]
