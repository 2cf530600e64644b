"""Envelope encryption: AES-256-GCM data keys, each wrapped by a master key from settings.

A job (erasure, export) gets its own random data key. Data is sealed with that key; the key is
stored only wrapped by the master key (`LETHE_MASTER_KEY`). Destroying the wrapped key
(crypto-shredding) makes every copy of the data unreadable, backups included.

Sealed blobs are `nonce (12 bytes) || ciphertext+tag`; the associated data binds a blob to its
place (e.g. job id and chunk), so a blob moved elsewhere does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12


class CryptoError(ValueError):
    pass


def parse_master_key(text: str) -> bytes:
    """A master key is 32 random bytes, base64 encoded (`openssl rand -base64 32`)."""
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("the master key must be base64 (e.g. `openssl rand -base64 32`)") from exc
    if len(key) != KEY_BYTES:
        raise CryptoError(f"the master key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise CryptoError("cannot decrypt: wrong key, or data altered or moved") from exc


def wrap_key(master: bytes, data_key: bytes, context: bytes) -> bytes:
    """The data key sealed by the master key, bound to `context` (e.g. b"erase-job:<id>")."""
    return seal(master, data_key, b"wrap:" + context)


def unwrap_key(master: bytes, wrapped: bytes, context: bytes) -> bytes:
    return open_sealed(master, wrapped, b"wrap:" + context)
