"""TCP framings of MTProto: full, intermediate (plain and padded) and abridged.

The server reads the first bytes a client sends to learn which framing it uses
(https://core.telegram.org/mtproto/mtproto-transports) and then keeps using it
for both directions of that connection.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
from zlib import crc32

ABRIDGED_TAG = 0xEF
INTERMEDIATE_TAG = b"\xee\xee\xee\xee"
PADDED_INTERMEDIATE_TAG = b"\xdd\xdd\xdd\xdd"

# A packet larger than this is a protocol error, not a request.
MAX_PACKET = 16 * 1024 * 1024


class TransportError(Exception):
    """The peer broke the framing (bad length, bad checksum)."""


class Framing:
    """Reads and writes whole packets of one connection."""

    name = "abstract"

    async def read_packet(self, reader: asyncio.StreamReader) -> bytes:
        raise NotImplementedError

    def encode(self, data: bytes) -> bytes:
        raise NotImplementedError


class FullFraming(Framing):
    """length:int32 seq:int32 payload crc32:uint32 (Telethon's ``ConnectionTcpFull``)."""

    name = "full"

    def __init__(self, first_length: bytes) -> None:
        self._pending_length: bytes | None = first_length
        self._recv_seq = 0
        self._send_seq = 0

    async def read_packet(self, reader: asyncio.StreamReader) -> bytes:
        if self._pending_length is not None:
            length_bytes, self._pending_length = self._pending_length, None
        else:
            length_bytes = await reader.readexactly(4)
        (length,) = struct.unpack("<i", length_bytes)
        if length < 12 or length > MAX_PACKET:
            raise TransportError(f"bad full-framing length {length}")
        rest = await reader.readexactly(length - 4)
        (seq,) = struct.unpack("<i", rest[:4])
        body = rest[4:-4]
        (checksum,) = struct.unpack("<I", rest[-4:])
        if crc32(length_bytes + rest[:-4]) != checksum:
            raise TransportError("bad crc32 in full framing")
        if seq != self._recv_seq:
            raise TransportError(f"full framing seq {seq}, expected {self._recv_seq}")
        self._recv_seq += 1
        return body

    def encode(self, data: bytes) -> bytes:
        head = struct.pack("<ii", len(data) + 12, self._send_seq) + data
        self._send_seq += 1
        return head + struct.pack("<I", crc32(head))


class IntermediateFraming(Framing):
    """length:int32 payload; the padded variant appends 0-3 random bytes."""

    def __init__(self, padded: bool) -> None:
        self.padded = padded
        self.name = "padded-intermediate" if padded else "intermediate"

    async def read_packet(self, reader: asyncio.StreamReader) -> bytes:
        (length,) = struct.unpack("<i", await reader.readexactly(4))
        if length < 4 or length > MAX_PACKET:
            raise TransportError(f"bad intermediate length {length}")
        data = await reader.readexactly(length)
        if self.padded and len(data) % 4:
            data = data[: len(data) - len(data) % 4]
        return data

    def encode(self, data: bytes) -> bytes:
        if self.padded:
            data += os.urandom(random.randint(0, 3))
        return struct.pack("<i", len(data)) + data


class AbridgedFraming(Framing):
    """One length byte (in 4-byte words), or 0x7f and three bytes."""

    name = "abridged"

    async def read_packet(self, reader: asyncio.StreamReader) -> bytes:
        (length,) = struct.unpack("<B", await reader.readexactly(1))
        if length >= 0x7F:
            length = int.from_bytes(await reader.readexactly(3), "little")
        if length * 4 > MAX_PACKET:
            raise TransportError(f"bad abridged length {length}")
        return await reader.readexactly(length * 4)

    def encode(self, data: bytes) -> bytes:
        words = len(data) // 4
        if words < 0x7F:
            return bytes([words]) + data
        return b"\x7f" + words.to_bytes(3, "little") + data


async def detect_framing(reader: asyncio.StreamReader) -> Framing:
    """Read the connection's opening bytes and return the framing they announce."""
    first = await reader.readexactly(1)
    if first[0] == ABRIDGED_TAG:
        return AbridgedFraming()
    head = first + await reader.readexactly(3)
    if head == INTERMEDIATE_TAG:
        return IntermediateFraming(padded=False)
    if head == PADDED_INTERMEDIATE_TAG:
        return IntermediateFraming(padded=True)
    # The full framing has no tag: its first word is already the packet length.
    return FullFraming(head)
