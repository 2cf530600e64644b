from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.crypto import CryptoError, new_data_key
from shared.sealed_stream import SealWriter, open_stream
from shared.tokens import DownloadToken, TokenError, sign, verify

pytestmark = pytest.mark.unit


def _seal(key: bytes, oid: bytes, data: bytes, chunk: int = 1000) -> bytes:
    w = SealWriter(key, oid, chunk=chunk)
    out = b"".join(w.feed(data[i : i + 333]) for i in range(0, len(data), 333))
    return out + w.close()


async def _open(key: bytes, oid: bytes, blob: bytes, piece: int = 777) -> bytes:
    async def src() -> AsyncIterator[bytes]:
        for i in range(0, len(blob), piece):
            yield blob[i : i + piece]

    return b"".join([p async for p in open_stream(key, oid, src())])


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 12_345])
async def test_round_trip(size: int) -> None:
    key, oid, data = new_data_key(), b"export-1", os.urandom(size)
    assert await _open(key, oid, _seal(key, oid, data)) == data


async def test_truncation_tampering_and_moving_are_detected() -> None:
    key, oid, data = new_data_key(), b"export-1", os.urandom(5000)
    blob = _seal(key, oid, data)
    frame = 4 + 12 + 1000 + 16
    with pytest.raises(CryptoError, match="truncated"):
        await _open(key, oid, blob[: 8 + 2 * frame])  # whole frames, final one missing
    bad = bytearray(blob)
    bad[100] ^= 1
    with pytest.raises(CryptoError):
        await _open(key, oid, bytes(bad))
    with pytest.raises(CryptoError):
        await _open(key, b"export-2", blob)
    with pytest.raises(CryptoError):
        await _open(new_data_key(), oid, blob)


def test_tokens_expire_and_cannot_be_forged() -> None:
    key, now = b"k" * 32, datetime.now(UTC)
    tok = DownloadToken(uuid.uuid4(), uuid.uuid4(), "r", now + timedelta(hours=1))
    text = sign(key, tok)
    assert verify(key, text, now) == DownloadToken(
        tok.token_id, tok.job_id, "r", tok.expires_at.replace(microsecond=0)
    )
    with pytest.raises(TokenError, match="expired"):
        verify(key, text, now + timedelta(hours=2))
    with pytest.raises(TokenError, match="signature"):
        verify(b"x" * 32, text, now)
    body, mac = text.split(".")
    with pytest.raises(TokenError):
        verify(key, body[:-2] + "AA." + mac, now)
