"""MTProto 2.0 on the server side: encryption, message ids, service messages, handshake.

Everything cryptographic reuses Telethon's own building blocks (``MTProtoState._calc_key``,
``AES`` IGE, ``AuthKey``), so the client's checks run for real against what we send.
"""

from __future__ import annotations

import os
import random
import secrets
import struct
import time
from dataclasses import dataclass, field
from hashlib import sha1, sha256

from telethon.crypto import AES, AuthKey
from telethon.extensions import BinaryReader
from telethon.helpers import generate_key_data_from_nonce
from telethon.network.mtprotostate import MTProtoState
from telethon.tl import TLObject
from telethon.tl.functions import (
    ReqDHParamsRequest,
    ReqPqMultiRequest,
    ReqPqRequest,
    SetClientDHParamsRequest,
)
from telethon.tl.types import (
    ClientDHInnerData,
    DhGenOk,
    PQInnerData,
    PQInnerDataDc,
    PQInnerDataTemp,
    PQInnerDataTempDc,
    ResPQ,
    ServerDHInnerData,
    ServerDHParamsOk,
)

RPC_RESULT_ID = 0xF35C6D01
VECTOR_ID = 0x1CB5C415
BOOL_TRUE = struct.pack("<I", 0x997275B5)
BOOL_FALSE = struct.pack("<I", 0xBC799737)

# The 2048-bit safe prime Telegram publishes for DH and SRP (also hard-coded in
# telethon/password.py); g = 3 is a valid generator for it.
DH_PRIME = int.from_bytes(
    bytes.fromhex(
        "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f"
        "48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c37"
        "20fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f64"
        "2477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4"
        "a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754"
        "fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4"
        "e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f"
        "0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b"
    ),
    "big",
)
DH_G = 3


class ProtocolError(Exception):
    """A client message that cannot be accepted (bad key, bad msg_key, ...)."""


def new_auth_key() -> AuthKey:
    """A random 256-byte authorization key."""
    return AuthKey(os.urandom(256))


# ----------------------------------------------------------------------------- encryption


@dataclass(frozen=True)
class ClientMessage:
    """The plaintext envelope of one encrypted client packet."""

    salt: int
    session_id: int
    msg_id: int
    seq_no: int
    body: bytes


def decrypt_client_packet(auth_key: AuthKey, packet: bytes) -> ClientMessage:
    """Decrypt and authenticate a client->server packet (MTProto 2.0, x = 0)."""
    if len(packet) < 24 + 32:
        raise ProtocolError("encrypted packet too short")
    msg_key = packet[8:24]
    aes_key, aes_iv = MTProtoState._calc_key(auth_key.key, msg_key, True)
    plain = AES.decrypt_ige(packet[24:], aes_key, aes_iv)
    if sha256(auth_key.key[88:120] + plain).digest()[8:24] != msg_key:
        raise ProtocolError("msg_key does not match the decrypted payload")
    salt, session_id, msg_id, seq_no, length = struct.unpack("<qqqii", plain[:32])
    if length < 0 or 32 + length > len(plain):
        raise ProtocolError("inner message length out of range")
    padding = len(plain) - 32 - length
    if padding < 12 or padding > 1024:
        raise ProtocolError(f"bad padding length {padding}")
    return ClientMessage(salt, session_id, msg_id, seq_no, plain[32 : 32 + length])


def encrypt_server_packet(
    auth_key: AuthKey, salt: int, session_id: int, msg_id: int, seq_no: int, body: bytes
) -> bytes:
    """Encrypt one server->client message (MTProto 2.0, x = 8)."""
    plain = struct.pack("<qqqii", salt, session_id, msg_id, seq_no, len(body)) + body
    padding = os.urandom(-(len(plain) + 12) % 16 + 12)
    msg_key = sha256(auth_key.key[96:128] + plain + padding).digest()[8:24]
    aes_key, aes_iv = MTProtoState._calc_key(auth_key.key, msg_key, False)
    return (
        struct.pack("<Q", auth_key.key_id)
        + msg_key
        + AES.encrypt_ige(plain + padding, aes_key, aes_iv)
    )


class MsgIdClock:
    """Server message ids: time-based, strictly increasing, odd (1 mod 4 or 3 mod 4)."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, response: bool) -> int:
        now = time.time()
        msg_id = (int(now) << 32) | (int((now % 1) * 2**32) & 0xFFFFFFFC)
        if msg_id <= self._last:
            msg_id = (self._last & ~3) + 4
        msg_id |= 1 if response else 3
        self._last = msg_id
        return msg_id


class SeqNo:
    """Per-session sequence numbers: content-related messages get odd numbers."""

    def __init__(self) -> None:
        self._count = 0

    def next(self, content_related: bool) -> int:
        if content_related:
            self._count += 1
            return self._count * 2 - 1
        return self._count * 2


# ----------------------------------------------------------------------------- TL helpers


def rpc_result(req_msg_id: int, result: bytes) -> bytes:
    return struct.pack("<Iq", RPC_RESULT_ID, req_msg_id) + result


def tl_vector(items: list[TLObject]) -> bytes:
    return struct.pack("<Ii", VECTOR_ID, len(items)) + b"".join(bytes(x) for x in items)


def tl_vector_int(items: list[int]) -> bytes:
    return struct.pack(f"<Ii{len(items)}i", VECTOR_ID, len(items), *items)


def tl_vector_long(items: list[int]) -> bytes:
    return struct.pack(f"<Ii{len(items)}q", VECTOR_ID, len(items), *items)


def read_object(data: bytes) -> TLObject:
    with BinaryReader(data) as reader:
        return reader.tgread_object()


# ----------------------------------------------------------------------------- RSA key

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _is_probable_prime(n: int, rounds: int = 24) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    rng = random.SystemRandom()
    for _ in range(rounds):
        a = rng.randrange(2, n - 2)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if _is_probable_prime(candidate):
            return candidate


@dataclass
class ServerRsaKey:
    """A throwaway 2048-bit RSA key made at run time (four 512-bit primes, so it is quick).

    Telethon only needs the public half, registered with ``telethon.crypto.rsa.add_key``;
    the server decrypts with plain integer arithmetic.
    """

    n: int
    e: int
    d: int
    fingerprint: int = field(init=False)

    def __post_init__(self) -> None:
        from telethon.crypto import rsa as tl_rsa

        self.fingerprint = tl_rsa._compute_fingerprint(self)

    @classmethod
    def generate(cls) -> ServerRsaKey:
        e = 65537
        while True:
            primes = [_random_prime(512) for _ in range(4)]
            n = primes[0] * primes[1] * primes[2] * primes[3]
            if n.bit_length() != 2048 or len(set(primes)) != 4:
                continue
            phi = 1
            for p in primes:
                phi *= p - 1
            try:
                d = pow(e, -1, phi)
            except ValueError:
                continue
            return cls(n=n, e=e, d=d)

    def public_pem(self) -> str:
        """PKCS#1 PEM of the public key, for ``telethon.crypto.rsa.add_key(pem, old=False)``."""
        import rsa

        return rsa.PublicKey(self.n, self.e).save_pkcs1().decode("ascii")

    def decrypt_block(self, block: bytes) -> bytes:
        return pow(int.from_bytes(block, "big"), self.d, self.n).to_bytes(256, "big")


# ----------------------------------------------------------------------------- handshake


class HandshakeError(ProtocolError):
    pass


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


class Handshake:
    """Server half of the DH auth-key exchange for one plain-text connection."""

    def __init__(self, rsa_key: ServerRsaKey | None) -> None:
        self._rsa = rsa_key
        self._nonce = 0
        self._server_nonce = 0
        self._new_nonce = 0
        self._a = 0
        self._tmp_key = b""
        self._tmp_iv = b""

    def handle(self, request: TLObject) -> tuple[TLObject, AuthKey | None]:
        """Answer one handshake request; returns (answer, the new auth key when done)."""
        if isinstance(request, ReqPqMultiRequest | ReqPqRequest):
            return self._res_pq(request), None
        if isinstance(request, ReqDHParamsRequest):
            return self._dh_params(request), None
        if isinstance(request, SetClientDHParamsRequest):
            return self._dh_gen(request)
        raise HandshakeError(f"unexpected plain message {type(request).__name__}")

    def _res_pq(self, request: ReqPqMultiRequest | ReqPqRequest) -> ResPQ:
        if self._rsa is None:
            raise HandshakeError("no RSA key: call Simulator.rsa_public_key_pem() first")
        self._nonce = request.nonce
        self._server_nonce = int.from_bytes(os.urandom(16), "little", signed=True)
        # Telethon reads pq as a signed big-endian integer: keep it below 2**63.
        p, q = sorted((_random_prime(31), _random_prime(31)))
        return ResPQ(
            nonce=request.nonce,
            server_nonce=self._server_nonce,
            pq=_int_bytes(p * q),
            server_public_key_fingerprints=[self._rsa.fingerprint],
        )

    def _dh_params(self, request: ReqDHParamsRequest) -> ServerDHParamsOk:
        assert self._rsa is not None
        if request.nonce != self._nonce or request.server_nonce != self._server_nonce:
            raise HandshakeError("nonce mismatch in req_DH_params")
        if request.public_key_fingerprint != self._rsa.fingerprint:
            raise HandshakeError("unknown RSA fingerprint")
        plain = self._rsa.decrypt_block(request.encrypted_data)
        # Telethon encrypts sha1(data) + data + random padding as one 255-byte block.
        plain = plain[1:]
        inner = read_object(plain[20:])
        if not isinstance(inner, PQInnerData | PQInnerDataDc | PQInnerDataTemp | PQInnerDataTempDc):
            raise HandshakeError(f"unexpected inner data {type(inner).__name__}")
        if sha1(bytes(inner)).digest() != plain[:20]:
            raise HandshakeError("sha1 of p_q_inner_data does not match")
        if inner.nonce != self._nonce or inner.server_nonce != self._server_nonce:
            raise HandshakeError("nonce mismatch in p_q_inner_data")
        self._new_nonce = inner.new_nonce
        safety = 2 ** (2048 - 64)
        while True:
            self._a = int.from_bytes(os.urandom(256), "big")
            g_a = pow(DH_G, self._a, DH_PRIME)
            if safety <= g_a <= DH_PRIME - safety:
                break
        answer = bytes(
            ServerDHInnerData(
                nonce=self._nonce,
                server_nonce=self._server_nonce,
                g=DH_G,
                dh_prime=_int_bytes(DH_PRIME),
                g_a=_int_bytes(g_a),
                server_time=int(time.time()),
            )
        )
        with_hash = sha1(answer).digest() + answer
        with_hash += os.urandom(-len(with_hash) % 16)
        self._tmp_key, self._tmp_iv = generate_key_data_from_nonce(
            self._server_nonce, self._new_nonce
        )
        return ServerDHParamsOk(
            nonce=self._nonce,
            server_nonce=self._server_nonce,
            encrypted_answer=AES.encrypt_ige(with_hash, self._tmp_key, self._tmp_iv),
        )

    def _dh_gen(self, request: SetClientDHParamsRequest) -> tuple[DhGenOk, AuthKey]:
        if request.nonce != self._nonce or request.server_nonce != self._server_nonce:
            raise HandshakeError("nonce mismatch in set_client_DH_params")
        plain = AES.decrypt_ige(request.encrypted_data, self._tmp_key, self._tmp_iv)
        inner = read_object(plain[20:])
        if not isinstance(inner, ClientDHInnerData):
            raise HandshakeError(f"unexpected client DH data {type(inner).__name__}")
        if sha1(bytes(inner)).digest() != plain[:20]:
            raise HandshakeError("sha1 of client_DH_inner_data does not match")
        g_b = int.from_bytes(inner.g_b, "big")
        if not 1 < g_b < DH_PRIME - 1:
            raise HandshakeError("g_b out of range")
        auth_key = AuthKey(_int_bytes(pow(g_b, self._a, DH_PRIME)))
        return (
            DhGenOk(
                nonce=self._nonce,
                server_nonce=self._server_nonce,
                new_nonce_hash1=auth_key.calc_new_nonce_hash(self._new_nonce, 1),
            ),
            auth_key,
        )


def plain_packet(msg_id: int, body: bytes) -> bytes:
    """An unencrypted server message (auth_key_id = 0), used only during the handshake."""
    return struct.pack("<qqi", 0, msg_id, len(body)) + body
