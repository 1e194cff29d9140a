"""The TCP server, its connections, and the ``Simulator`` facade tests drive."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from telethon import TelegramClient
from telethon.errors import TypeNotFoundError
from telethon.sessions import StringSession
from telethon.tl import TLObject, functions, types
from telethon.tl.core import GzipPacked, MessageContainer

from . import handlers as _handlers
from .context import AuthKeyRecord, CallbackAnswer
from .mtproto import (
    BOOL_FALSE,
    BOOL_TRUE,
    Handshake,
    MsgIdClock,
    ProtocolError,
    SeqNo,
    ServerRsaKey,
    decrypt_client_packet,
    encrypt_server_packet,
    new_auth_key,
    plain_packet,
    read_object,
    rpc_result,
    tl_vector,
    tl_vector_int,
)
from .transport import Framing, TransportError, detect_framing
from .world import RpcFail, SimChannel, SimMessage, SimUser, World

_WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
    functions.InvokeAfterMsgsRequest,
    functions.InvokeWithTakeoutRequest,
    functions.InvokeWithMessagesRangeRequest,
)
_PINGS = (functions.PingRequest, functions.PingDelayDisconnectRequest)
_IGNORED_SERVICE = (types.MsgsAck, types.MsgsStateReq, types.MsgResendReq, types.MsgsAllInfo)


def _norm(name: str) -> str:
    name = name.strip().lower()
    return name[: -len("request")] if name.endswith("request") else name


def _request_names(request: TLObject) -> tuple[str, str]:
    """("gethistory", "messages.gethistory") for messages.GetHistoryRequest."""
    cls = type(request)
    short = _norm(cls.__name__)
    namespace = cls.__module__.rsplit(".", 1)[-1]
    return short, short if namespace == "functions" else f"{namespace}.{short}"


def _default_code(error: str) -> int:
    upper = error.upper()
    if "FLOOD_WAIT" in upper or upper.startswith("SLOWMODE_WAIT"):
        return 420
    if upper.startswith(("AUTH_KEY", "SESSION_")) or upper.endswith("_REVOKED"):
        return 401
    if upper in ("INTERNAL", "RPC_CALL_FAIL") or upper.startswith("INTERNAL"):
        return 500
    return 400


@dataclass
@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server saw it: ``sent_at`` is the client's clock when it made
    the message (MTProto message ids carry it, to the nanosecond), ``received_at`` the
    server's, both ``time.time()``; ``error`` the RPC error it was answered with."""

    name: str  # qualified: "messages.GetHistoryRequest"
    sent_at: float
    received_at: float
    error: str | None


def _sent_at(msg_id: int) -> float:
    return (msg_id >> 32) + ((msg_id & 0xFFFFFFFF) >> 2) / 1e9


@dataclass
class _Failure:
    error: str
    code: int
    remaining: int
    channel: SimChannel | None = None  # only requests about this channel


def _about(request: Any, channel: SimChannel) -> bool:
    """Whether a request names `channel` (by peer, input channel or username)."""
    for attr in ("peer", "channel"):
        if getattr(getattr(request, attr, None), "channel_id", None) == channel.id:
            return True
    username = getattr(request, "username", None)
    return bool(username and channel.username and username.lower() == channel.username.lower())


@dataclass(eq=False)
class _PendingQuery:
    user_id: int
    bot_id: int
    future: asyncio.Future[CallbackAnswer] = field(repr=False)


class Connection:
    """One client TCP connection: framing, MTProto session, request dispatch."""

    def __init__(
        self, sim: Simulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.framing: Framing | None = None
        self.record: AuthKeyRecord | None = None
        self.session_id: int | None = None
        self.salt = struct.unpack("<q", os.urandom(8))[0]
        self.clock = MsgIdClock()
        self.seq = SeqNo()
        self.wants_updates = True
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    @property
    def user_id(self) -> int | None:
        return self.record.user_id if self.record else None

    # ------------------------------------------------------------------ reading

    async def serve(self) -> None:
        try:
            self.framing = await detect_framing(self.reader)
            logger.debug("Simulator connection {} uses {} framing", self.peer, self.framing.name)
            handshake: Handshake | None = None
            while not self.closed:
                packet = await self.framing.read_packet(self.reader)
                if len(packet) < 8:
                    continue
                (key_id,) = struct.unpack("<q", packet[:8])
                if key_id == 0:
                    if handshake is None:
                        handshake = Handshake(self.sim._rsa_key)
                    self._handle_plain(handshake, packet)
                else:
                    self._handle_encrypted(packet)
                await self.writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except TransportError as exc:
            logger.warning("Simulator closes {}: transport error {}", self.peer, exc)
        except ProtocolError as exc:
            logger.error("Simulator closes {}: protocol error {}", self.peer, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Simulator connection {} crashed", self.peer)
        finally:
            await self.close()

    def _handle_plain(self, handshake: Handshake, packet: bytes) -> None:
        (length,) = struct.unpack("<i", packet[16:20])
        request = read_object(packet[20 : 20 + length])
        answer, auth_key = handshake.handle(request)
        self._write(plain_packet(self.clock.next(response=True), bytes(answer)))
        if auth_key is not None:
            self.sim._keys[auth_key.key_id] = AuthKeyRecord(auth_key)
            logger.info("Simulator created auth key {} by DH handshake", auth_key.key_id)

    def _handle_encrypted(self, packet: bytes) -> None:
        (key_id,) = struct.unpack("<Q", packet[:8])
        record = self.sim._keys.get(key_id)
        if record is None:
            logger.warning("Simulator: unknown auth key {} from {}", key_id, self.peer)
            self._write(struct.pack("<i", -404))
            return
        message = decrypt_client_packet(record.key, packet)
        if self.record is not record:
            self.record = record
        if self.session_id != message.session_id:
            self.session_id = message.session_id
            self.clock = MsgIdClock()
            self.seq = SeqNo()
            self.send(
                bytes(
                    types.NewSessionCreated(
                        first_msg_id=message.msg_id,
                        unique_id=struct.unpack("<q", os.urandom(8))[0],
                        server_salt=self.salt,
                    )
                ),
                content_related=False,
            )
            self.sim._on_change()
        try:
            obj = read_object(message.body)
        except TypeNotFoundError as exc:
            logger.error(
                "Simulator cannot parse constructor {:08x} from {}",
                exc.invalid_constructor_id,
                self.peer,
            )
            self.send_rpc_error(message.msg_id, 400, "SIM_UNKNOWN_CONSTRUCTOR")
            return
        self._dispatch(message.msg_id, obj)

    def _dispatch(self, msg_id: int, obj: Any) -> None:
        if isinstance(obj, MessageContainer):
            self.sim.protocol_stats["container"] += 1
            for inner in obj.messages:
                self._dispatch(inner.msg_id, inner.obj)
        elif isinstance(obj, GzipPacked):
            self.sim.protocol_stats["gzip_packed"] += 1
            self._dispatch(msg_id, read_object(obj.data))
        elif isinstance(obj, _IGNORED_SERVICE):
            self.sim.protocol_stats[type(obj).__name__] += 1
        elif isinstance(obj, _PINGS):
            self.sim.protocol_stats["ping"] += 1
            self.send(bytes(types.Pong(msg_id=msg_id, ping_id=obj.ping_id)), response=True)
        elif isinstance(obj, functions.DestroySessionRequest):
            self.send(bytes(types.DestroySessionOk(obj.session_id)), response=True)
        else:
            task = asyncio.get_running_loop().create_task(self._run_rpc(msg_id, obj))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run_rpc(self, msg_id: int, request: Any) -> None:
        assert self.record is not None
        while isinstance(request, _WRAPPERS):
            if isinstance(request, functions.InvokeWithLayerRequest):
                self.record.layer = request.layer
            elif isinstance(request, functions.InvokeWithoutUpdatesRequest):
                self.wants_updates = False
            request = request.query
        short, qualified = _request_names(request)
        self.sim._seen[short] += 1
        if qualified != short:
            self.sim._seen[qualified] += 1
        name = type(request).__name__
        kind = f"{type(request).__module__.rsplit('.', 1)[-1]}.{name}"
        received = time.time()
        try:
            failure = self.sim._take_failure(short, qualified, request)
            if failure is not None:
                self.sim.request_log.append(
                    RequestRecord(kind, _sent_at(msg_id), received, failure.message)
                )
                raise failure
            self.sim.request_log.append(RequestRecord(kind, _sent_at(msg_id), received, None))
            route = _handlers.HANDLERS.get(type(request))
            if route is None:
                raise _handlers.unhandled(name)
            ctx = _handlers.Context(self.sim, self, self.record)
            if route.needs_auth and ctx.maybe_user is None:
                raise RpcFail(401, "AUTH_KEY_UNREGISTERED")
            result = _serialize(await _handlers.run_handler(route, ctx, request))
        except RpcFail as exc:
            logger.debug("Simulator {} -> rpc_error {} {}", name, exc.code, exc.message)
            self.send_rpc_error(msg_id, exc.code, exc.message)
            self.sim._on_change()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Simulator handler for {} crashed", name)
            self.send_rpc_error(msg_id, 500, "SIM_INTERNAL_ERROR")
            return
        self.send(rpc_result(msg_id, result), response=True)
        self.sim._on_change()

    # ------------------------------------------------------------------ writing

    def _write(self, packet: bytes) -> None:
        if self.closed or self.framing is None:
            return
        self.writer.write(self.framing.encode(packet))

    def send(self, body: bytes, *, content_related: bool = True, response: bool = False) -> None:
        if self.closed or self.record is None or self.session_id is None:
            return
        self._write(
            encrypt_server_packet(
                self.record.key,
                self.salt,
                self.session_id,
                self.clock.next(response),
                self.seq.next(content_related),
                body,
            )
        )

    def send_rpc_error(self, msg_id: int, code: int, message: str) -> None:
        self.send(
            rpc_result(msg_id, bytes(types.RpcError(error_code=code, error_message=message))),
            response=True,
        )

    def push(self, updates: TLObject) -> None:
        self.send(bytes(updates))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.sim._connections.discard(self)
        self.sim._on_change()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def _serialize(result: Any) -> bytes:
    if isinstance(result, bool):
        return BOOL_TRUE if result else BOOL_FALSE
    if isinstance(result, bytes):
        return result
    if isinstance(result, list):
        if result and isinstance(result[0], int):
            return tl_vector_int(result)
        return tl_vector(result)
    return bytes(result)


class Simulator:
    """A loopback Telegram server plus a scriptable world; see the package docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        dc_id: int = 2,
        seed: int | None = None,
        login_code: str = "12345",
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.dc_id = dc_id
        self.login_code = login_code
        self.world = World(self._push, seed=seed, dc_id=dc_id)
        self.world.listeners.append(self._on_change)
        self.channel_difference_too_long: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._keys: dict[int, AuthKeyRecord] = {}
        self._seen: Counter[str] = Counter()
        self.request_log: list[RequestRecord] = []  # every request, in arrival order
        # MTProto-level traffic seen: "container", "gzip_packed", "ping", "MsgsAck", ...
        self.protocol_stats: Counter[str] = Counter()
        self._failures: dict[str, list[_Failure]] = {}
        self._rsa_key: ServerRsaKey | None = None
        self._clients: list[TelegramClient] = []
        self._serve_tasks: set[asyncio.Task[None]] = set()
        self._changed: asyncio.Event | None = None
        self._queries: dict[int, _PendingQuery] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, self.host, self._requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._requested_port = self.port  # a restart after stop() comes back on the same port
        logger.info("Simulator listening on {}:{} as DC {}", self.host, self.port, self.dc_id)
        return self

    async def stop(self) -> None:
        for client in self._clients:
            if client.is_connected():
                with contextlib.suppress(Exception):
                    await client.disconnect()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            await conn.close()
        for task in list(self._serve_tasks):
            task.cancel()
        for task in list(self._serve_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for query in self._queries.values():
            if not query.future.done():
                query.future.cancel()
        self._queries.clear()
        logger.info("Simulator stopped")

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        self._connections.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._serve_tasks.add(task)
        try:
            await conn.serve()
        finally:
            if task is not None:
                self._serve_tasks.discard(task)

    async def drop_connections(self) -> int:
        """Close every client socket (clients reconnect by themselves); returns how many."""
        conns = list(self._connections)
        for conn in conns:
            await conn.close()
        logger.info("Simulator dropped {} connections", len(conns))
        return len(conns)

    # ------------------------------------------------------------------ accounts and sessions

    def add_user(
        self,
        phone: str | None = None,
        first_name: str = "User",
        username: str | None = None,
        password: str | None = None,
        last_name: str | None = None,
    ) -> SimUser:
        return self.world.add_user(phone, first_name, username, password, last_name)

    def add_bot(
        self, username: str, token: str | None = None, first_name: str | None = None
    ) -> SimUser:
        return self.world.add_bot(username, token, first_name)

    def add_channel(self, username: str | None, title: str, about: str = "") -> SimChannel:
        return self.world.add_channel(username, title, about)

    def session_for(self, who: SimUser | None = None, *, with_key: bool = True) -> StringSession:
        """A ``StringSession`` pointing at this simulator.

        With ``who`` the session is already logged in as that user or bot. With ``who=None``
        the auth key is known but logged out (for login tests). With ``with_key=False`` the
        session is empty and the client performs the real DH handshake (register
        ``rsa_public_key_pem()`` with ``telethon.crypto.rsa.add_key`` first).
        """
        if not self.port:
            raise RuntimeError("start the simulator before asking for sessions")
        session = StringSession()
        session.set_dc(self.dc_id, self.host, self.port)
        if with_key:
            key = new_auth_key()
            self._keys[key.key_id] = AuthKeyRecord(key, user_id=who.id if who else None)
            session.auth_key = key
        elif who is not None:
            raise ValueError("a session without a key cannot be logged in")
        return session

    def client_for(self, who: SimUser | None = None, **kwargs: Any) -> TelegramClient:
        """A (not yet connected) Telethon client for ``who``, with test-friendly defaults."""
        with_key = kwargs.pop("with_key", True)
        session = kwargs.pop("session", None) or self.session_for(who, with_key=with_key)
        options: dict[str, Any] = {
            "api_id": 1,
            "api_hash": "0123456789abcdef0123456789abcdef",
            "timeout": 5,
            "request_retries": 3,
            "connection_retries": 5,
            "retry_delay": 0.05,
            "auto_reconnect": True,
            "device_model": "chanwatch-sim",
            "system_version": "sim",
            "app_version": "sim",
            "lang_code": "en",
            "system_lang_code": "en",
        }
        options.update(kwargs)
        client = TelegramClient(session, **options)
        self._clients.append(client)
        return client

    def rsa_public_key_pem(self) -> str:
        """Make (once) the throwaway RSA key for the DH handshake; returns its public PEM."""
        if self._rsa_key is None:
            self._rsa_key = ServerRsaKey.generate()
        return self._rsa_key.public_pem()

    @property
    def rsa_fingerprint(self) -> int | None:
        """Fingerprint of the handshake RSA key, once made (to unregister it from Telethon)."""
        return self._rsa_key.fingerprint if self._rsa_key else None

    def bind(self, record: AuthKeyRecord, user: SimUser) -> None:
        record.user_id = user.id
        logger.info("Simulator: auth key {} logged in as {}", record.key.key_id, user)

    def unbind(self, record: AuthKeyRecord) -> None:
        record.user_id = None

    def online(self, who: SimUser) -> bool:
        """Whether ``who`` has a live connection that receives updates."""
        return any(self._receives(conn, who.id) for conn in self._connections)

    # ------------------------------------------------------------------ channels

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
    ) -> int:
        return self.world.post(
            channel,
            text,
            push=push,
            media=media,
            fwd_from=fwd_from,
            reply_to=reply_to,
            entities=entities,
            date=date,
            views=views,
            forwards=forwards,
        )

    def post_service(self, channel: SimChannel, action: Any = None, *, push: bool = True) -> int:
        """A service message; the default action is a title change to the current title."""
        if action is None:
            action = types.MessageActionChatEditTitle(title=channel.title)
        return self.world.post_service(channel, action, push=push)

    def post_album(
        self,
        channel: SimChannel,
        media: list[Any],
        caption: str = "",
        *,
        push: bool = True,
        entities: list[Any] | None = None,
        date: dt.datetime | None = None,
    ) -> list[int]:
        return self.world.post_album(
            channel, media, caption, push=push, entities=entities, date=date
        )

    def photo(
        self, w: int = 1280, h: int = 720, size: int | None = None
    ) -> types.MessageMediaPhoto:
        return self.world.photo(w, h, size)

    def video(
        self,
        duration: float = 10,
        w: int = 1280,
        h: int = 720,
        size: int | None = None,
        file_name: str | None = "video.mp4",
        mime: str = "video/mp4",
    ) -> types.MessageMediaDocument:
        return self.world.video(duration, w, h, size, file_name, mime)

    def document(
        self,
        mime: str = "application/pdf",
        file_name: str | None = "document.pdf",
        size: int = 100_000,
    ) -> types.MessageMediaDocument:
        return self.world.document(mime, file_name, size)

    def forward(self, source: SimChannel, msg_id: int, to: SimChannel, *, push: bool = True) -> int:
        return self.world.forward(source, msg_id, to, push=push)

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
        self.world.edit(channel, msg_id, text, push=push, entities=entities, media=media)

    def delete(self, channel: SimChannel, msg_ids: list[int], *, push: bool = True) -> None:
        self.world.delete(channel, list(msg_ids), push=push)

    def set_views(
        self,
        channel: SimChannel,
        msg_id: int,
        views: int | None = None,
        forwards: int | None = None,
        reactions: dict[str, int] | None = None,
        replies: int | None = None,
    ) -> None:
        self.world.set_views(channel, msg_id, views, forwards, reactions, replies)

    def message(self, channel: SimChannel, msg_id: int) -> SimMessage:
        """The current state of a channel post (raises KeyError if missing or deleted)."""
        return self.world.channel_message(channel, msg_id)

    def join(self, user: SimUser, channel: SimChannel) -> None:
        self.world.join(user, channel)

    def leave(self, user: SimUser, channel: SimChannel) -> None:
        self.world.leave(user, channel)

    # ------------------------------------------------------------------ bots and users

    async def user_sends(
        self,
        user: SimUser,
        bot: SimUser,
        text: str,
        *,
        entities: list[Any] | None = None,
        reply_to: int | None = None,
    ) -> int:
        """``user`` sends ``text`` to ``bot`` from the app; returns the id in the user's box."""
        if entities is None and text.startswith("/"):
            command = text.split()[0]
            entities = [types.MessageEntityBotCommand(offset=0, length=len(command))]
        msg, _ = self.world.send_private(user, bot, text, entities=entities, reply_to=reply_to)
        await asyncio.sleep(0)
        return msg.id

    async def user_presses(
        self,
        user: SimUser,
        bot: SimUser,
        msg_id: int,
        data: bytes,
        *,
        timeout: float = 5,  # noqa: ASYNC109 - part of the scripting API
    ) -> CallbackAnswer:
        """``user`` presses the inline button carrying ``data`` under message ``msg_id``
        (an id in the user's box); waits for the bot's ``setBotCallbackAnswer``.

        Raises ``TimeoutError`` when the bot does not answer in time.
        """
        return await self.press(user, bot, msg_id, data, timeout=timeout)

    async def press(
        self,
        user: SimUser,
        bot: SimUser,
        msg_id: int,
        data: bytes | None,
        *,
        timeout: float,  # noqa: ASYNC109 - part of the scripting API
    ) -> CallbackAnswer:
        msg = user.messages.get(msg_id)
        if msg is None or msg.deleted or msg.peer_user_id != bot.id:
            raise RpcFail(400, "MESSAGE_ID_INVALID")
        if not bot.is_bot:
            raise RpcFail(400, "BOT_INVALID")
        query_id = struct.unpack("<q", os.urandom(8))[0]
        future: asyncio.Future[CallbackAnswer] = asyncio.get_running_loop().create_future()
        self._queries[query_id] = _PendingQuery(user.id, bot.id, future)
        update = types.UpdateBotCallbackQuery(
            query_id=query_id,
            user_id=user.id,
            peer=types.PeerUser(user.id),
            msg_id=msg.pair_id or 0,
            chat_instance=user.id ^ bot.id,
            data=data,
        )
        self._push(bot.id, self.world.updates([update], [], bot, extra_users=[user]), None)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._queries.pop(query_id, None)

    def answer_callback(
        self, bot: SimUser, query_id: int, message: str | None, alert: bool, url: str | None
    ) -> None:
        query = self._queries.get(query_id)
        if query is None or query.bot_id != bot.id:
            raise RpcFail(400, "QUERY_ID_INVALID")
        if not query.future.done():
            query.future.set_result(CallbackAnswer(message=message, alert=alert, url=url))

    def messages_to(self, user: SimUser, from_: SimUser | None = None) -> list[SimMessage]:
        """Messages in ``user``'s private box received from ``from_`` (or from anyone)."""
        msgs = [
            m
            for m in user.messages.values()
            if not m.out and not m.deleted and (from_ is None or m.from_id == from_.id)
        ]
        return sorted(msgs, key=lambda m: m.id)

    async def wait_for_messages(
        self,
        user: SimUser,
        from_: SimUser | None = None,
        count: int = 1,
        timeout: float = 5,  # noqa: ASYNC109 - part of the scripting API
        predicate: Callable[[list[SimMessage]], bool] | None = None,
    ) -> list[SimMessage]:
        """Wait until ``user`` has received at least ``count`` messages from ``from_``
        (or until ``predicate(messages)`` holds); returns all of them. Raises TimeoutError."""
        check = predicate or (lambda msgs: len(msgs) >= count)
        found: list[SimMessage] = []

        def ready() -> bool:
            found[:] = self.messages_to(user, from_)
            return check(found)

        await self.wait_until(ready, timeout)
        return found

    async def wait_until(
        self,
        condition: Callable[[], Any],
        timeout: float = 5,  # noqa: ASYNC109 - part of the scripting API
    ) -> Any:
        """Wait until ``condition()`` is truthy, re-checking after every change of the
        world or of the connections; returns its value. Raises TimeoutError."""
        assert self._changed is not None, "start the simulator first"
        async with asyncio.timeout(timeout):
            while True:
                result = condition()
                if result:
                    return result
                self._changed.clear()
                await self._changed.wait()

    def block(self, user: SimUser, bot: SimUser) -> None:
        """``user`` blocks ``bot``: the bot's sends to the user fail with USER_IS_BLOCKED."""
        self.world.block(user, bot)

    def unblock(self, user: SimUser, bot: SimUser) -> None:
        self.world.unblock(user, bot)

    # ------------------------------------------------------------------ faults and counters

    def fail(
        self,
        request: str,
        error: str = "FLOOD_WAIT_1",
        times: int = 1,
        code: int | None = None,
        channel: SimChannel | None = None,
    ) -> None:
        """Make the next ``times`` requests of TL class ``request`` fail with ``error``.

        ``request`` is a class name like ``"GetHistoryRequest"`` or, to be precise,
        ``"messages.GetHistoryRequest"``; the code defaults from the error (420 for
        FLOOD_WAIT_*, 401 for AUTH_KEY_*, 500 for INTERNAL*, else 400). With ``channel``,
        only requests about that channel fail (its peer, input channel or username).
        """
        code = code if code is not None else _default_code(error)
        failure = _Failure(error, code, times, channel)
        self._failures.setdefault(_norm(request), []).append(failure)

    def _take_failure(self, short: str, qualified: str, request: Any) -> RpcFail | None:
        for key in (qualified, short):
            queue = self._failures.get(key) or []
            queue[:] = [f for f in queue if f.remaining > 0]
            for failure in queue:
                if failure.channel is not None and not _about(request, failure.channel):
                    continue
                failure.remaining -= 1
                logger.info("Simulator injects {} {} on {}", failure.code, failure.error, qualified)
                return RpcFail(failure.code, failure.error)
        return None

    def requests_seen(self, name: str) -> int:
        """How many requests of that TL class arrived (``"ResolveUsernameRequest"`` or
        ``"contacts.ResolveUsernameRequest"``)."""
        return self._seen[_norm(name)]

    @property
    def enforce_bot_limits(self) -> bool:
        return self.world.enforce_bot_limits

    @enforce_bot_limits.setter
    def enforce_bot_limits(self, value: bool) -> None:
        self.world.enforce_bot_limits = value

    @property
    def flood_waits_issued(self) -> int:
        return self.world.flood_waits_issued

    @property
    def dedup_random_ids(self) -> bool:
        return self.world.dedup_random_ids

    @dedup_random_ids.setter
    def dedup_random_ids(self, value: bool) -> None:
        self.world.dedup_random_ids = value

    # ------------------------------------------------------------------ delivery

    @staticmethod
    def _receives(conn: Connection, user_id: int) -> bool:
        return (
            not conn.closed
            and conn.wants_updates
            and conn.session_id is not None
            and conn.user_id == user_id
        )

    def _push(self, user_id: int, updates: TLObject, origin: object | None) -> None:
        for conn in list(self._connections):
            if conn is not origin and self._receives(conn, user_id):
                conn.push(updates)

    def _on_change(self) -> None:
        if self._changed is not None:
            self._changed.set()


__all__ = ["AuthKeyRecord", "CallbackAnswer", "Connection", "RequestRecord", "Simulator"]
