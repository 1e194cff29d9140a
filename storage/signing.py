"""Ed25519 signatures on export manifests, with a key the operator holds.

A manifest proves integrity (the file is the one it describes); a signature adds
who vouches for it: only the holder of the private key can make one that verifies
with the public key. Keys are PEM files, e.g. made with
`openssl genpkey -algorithm ed25519 -out key.pem` and
`openssl pkey -in key.pem -pubout -out key.pub.pem`.
"""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from storage.models import canonical_json

ALGORITHM = "ed25519"


class SigningKeyError(ValueError):
    """A key file that cannot be used (missing, not Ed25519, readable by others)."""


def _payload(manifest: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"}).encode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    return "SHA256:" + hashlib.sha256(_raw_public(key)).hexdigest()[:32]


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(
            f"cannot read the signing key {path}: {exc.strerror or exc}"
        ) from None
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise SigningKeyError(f"the signing key {path} is readable by others; chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    """A public key PEM (a private key PEM works too: its public half is used)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the key {path}: {exc.strerror or exc}") from None
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"{path} is not a PEM Ed25519 key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def sign(manifest: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The manifest with a `signature` over everything else in it."""
    public = key.public_key()
    value = key.sign(_payload(manifest))
    return {
        **manifest,
        "signature": {
            "algorithm": ALGORITHM,
            "public_key": base64.b64encode(_raw_public(public)).decode(),
            "key_fingerprint": fingerprint(public),
            "value": base64.b64encode(value).decode(),
        },
    }


def check(manifest: dict[str, Any], key: Ed25519PublicKey) -> str | None:
    """None if the manifest carries a valid signature by `key`, else what is wrong."""
    signature = manifest.get("signature")
    if not isinstance(signature, dict):
        return "the manifest is not signed"
    if signature.get("algorithm") != ALGORITHM:
        return f"unknown signature algorithm {signature.get('algorithm')!r}"
    try:
        value = base64.b64decode(str(signature.get("value")), validate=True)
        key.verify(value, _payload(manifest))
    except (InvalidSignature, ValueError):
        return f"the signature does not verify with the key {fingerprint(key)}"
    return None
