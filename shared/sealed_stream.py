"""Authenticated chunked encryption for large objects (exports), streamed both ways.

Layout: MAGIC, then frames `length (4 bytes, big endian) || nonce || ciphertext+tag`, each
sealed with AES-256-GCM under the object's data key. The associated data of frame i is
`object id || i || final flag`, so frames cannot be reordered, dropped, swapped between
objects, or cut off after any frame but the final one without the reader noticing.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

from shared.crypto import CryptoError, open_sealed, seal

MAGIC = b"LETHEX1\n"
CHUNK = 1 << 20  # plaintext bytes per frame
_LEN = struct.Struct(">I")


def _aad(object_id: bytes, index: int, final: bool) -> bytes:
    return object_id + struct.pack(">QB", index, 1 if final else 0)


class SealWriter:
    """Feed plaintext in any sizes; get sealed bytes back. `close()` seals the final frame."""

    def __init__(self, key: bytes, object_id: bytes, chunk: int = CHUNK) -> None:
        self._key, self._id, self._chunk = key, object_id, chunk
        self._buf = bytearray()
        self._index = 0
        self._started = False

    def _frame(self, plain: bytes, final: bool) -> bytes:
        blob = seal(self._key, plain, _aad(self._id, self._index, final))
        self._index += 1
        return _LEN.pack(len(blob)) + blob

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        if not self._started:
            out += MAGIC
            self._started = True
        self._buf += data
        # Keep at least one byte back: the final frame is only known at close().
        while len(self._buf) > self._chunk:
            out += self._frame(bytes(self._buf[: self._chunk]), final=False)
            del self._buf[: self._chunk]
        return bytes(out)

    def close(self) -> bytes:
        head = b"" if self._started else MAGIC
        self._started = True
        tail = self._frame(bytes(self._buf), final=True)
        self._buf.clear()
        return head + tail


async def open_stream(
    key: bytes, object_id: bytes, source: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """Decrypt a sealed stream frame by frame; raises CryptoError on any tampering."""
    buf = bytearray()
    index = 0
    header_seen = False
    finished = False
    async for piece in source:
        buf += piece
        if not header_seen:
            if len(buf) < len(MAGIC):
                continue
            if bytes(buf[: len(MAGIC)]) != MAGIC:
                raise CryptoError("not a Lethe sealed stream")
            del buf[: len(MAGIC)]
            header_seen = True
        while len(buf) >= _LEN.size:
            (n,) = _LEN.unpack(buf[: _LEN.size])
            if len(buf) < _LEN.size + n:
                break
            blob = bytes(buf[_LEN.size : _LEN.size + n])
            del buf[: _LEN.size + n]
            if finished:
                raise CryptoError("data after the final frame")
            try:
                plain = open_sealed(key, blob, _aad(object_id, index, final=False))
            except CryptoError:
                plain = open_sealed(key, blob, _aad(object_id, index, final=True))
                finished = True
            index += 1
            yield plain
    if not header_seen or buf or not finished:
        raise CryptoError("sealed stream is truncated")
