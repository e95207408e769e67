"""The STREAM payload: ChaCha20-Poly1305 over 64 KiB chunks, sealed and opened.

A chunk's nonce carries its index and a final flag, so chunks cannot be
reordered, dropped or appended without a tag failing; the last-chunk rules
(an empty final chunk only for an empty file, nothing after the final chunk)
are enforced while opening.
"""

from __future__ import annotations

import struct
from typing import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import PayloadError
from .primitives import TAG_SIZE
from .source import _Source

CHUNK_SIZE = 64 * 1024
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE

# Bulk file I/O moves this many chunks per system call; the buffers involved
# are reused, so memory stays at a few MiB whatever the file size.
_BATCH_CHUNKS = 16
_BATCH_SIZE = _BATCH_CHUNKS * CHUNK_SIZE

# 11-byte big-endian counter + 1-byte final flag; the top three counter bytes
# stay zero because no file reaches 2**64 chunks.
_NONCE = struct.Struct(">3xQB")


class _StreamSealer:
    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0
        self._finished = False
        self._out: memoryview | None = None

    def seal(self, chunk, last: bool) -> bytes:
        if self._finished:
            raise ValueError("the final chunk has already been written")
        out = self._aead.encrypt(_NONCE.pack(self._counter, last), chunk, None)
        self._counter += 1
        self._finished = last
        return out

    def seal_full_chunks(self, view: memoryview) -> memoryview:
        """Seal ``view`` (whole chunks, none of them final) into a buffer reused across calls.

        The result is only valid until the next call; writers consume it at once.
        """
        if self._finished:
            raise ValueError("the final chunk has already been written")
        count = len(view) // CHUNK_SIZE
        size = count * ENCRYPTED_CHUNK_SIZE
        if self._out is None or len(self._out) < size:
            self._out = memoryview(bytearray(size))
        out = self._out
        encrypt_into = self._aead.encrypt_into
        pack = _NONCE.pack
        counter = self._counter
        src = dst = 0
        for index in range(counter, counter + count):
            encrypt_into(pack(index, 0), view[src : src + CHUNK_SIZE], None, out[dst : dst + ENCRYPTED_CHUNK_SIZE])
            src += CHUNK_SIZE
            dst += ENCRYPTED_CHUNK_SIZE
        self._counter = counter + count
        return out[:size]


class _StreamOpener:
    def __init__(self, key: bytes, source: _Source) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._source = source
        self._counter = 0

    def _open(self, data, final: int, out: memoryview | None):
        nonce = _NONCE.pack(self._counter, final)
        if out is None:
            return self._aead.decrypt(nonce, data, None)
        # On a bad tag decrypt_into leaves unauthenticated bytes in ``out``;
        # callers only ever release the part this method reported as opened.
        plain = out[: len(data) - TAG_SIZE]
        self._aead.decrypt_into(nonce, data, None, plain)
        return plain

    def _open_chunk(self, data, out: memoryview | None = None):
        """Authenticate the chunk at the current index; return its plaintext and whether it was final.

        With ``out`` the plaintext is written there and a view of it returned;
        otherwise it comes back as new bytes.
        """
        index = self._counter
        size = len(data)
        if size == ENCRYPTED_CHUNK_SIZE:
            # A full chunk is usually followed by more, but the final chunk may be
            # full too; trying the final flag second keeps the common case cheap.
            try:
                plain, last = self._open(data, 0, out), False
            except InvalidTag:
                plain, last = self._open_final(data, index, out), True
        else:
            if not size:
                raise PayloadError("payload is truncated: the final chunk is missing")
            if size < TAG_SIZE:
                raise PayloadError(f"payload chunk {index} is truncated")
            if size == TAG_SIZE and index > 0:
                raise PayloadError("final payload chunk is empty, which is only allowed for an empty file")
            plain, last = self._open_final(data, index, out), True
        self._counter += 1
        return plain, last

    def _open_final(self, data, index: int, out: memoryview | None):
        try:
            return self._open(data, 1, out)
        except InvalidTag:
            raise PayloadError(f"payload chunk {index} failed authentication") from None

    def next_chunk(self) -> tuple[bytes, bool]:
        """Return the next plaintext chunk and whether it carried the final flag."""
        return self._open_chunk(self._source.read_exact(ENCRYPTED_CHUNK_SIZE))

    def ensure_end(self) -> None:
        if self._source.read_exact(1):
            raise PayloadError("unexpected data after the final payload chunk")

    def open_all(self, write: Callable[[memoryview], object], chunks_per_block: int) -> None:
        """Authenticate the whole rest of the payload, handing plaintext to ``write`` block by block.

        Reads many chunks per system call into buffers reused for the whole
        file. Raises at the first bad chunk, after earlier blocks were written,
        so it is only for destinations that are discarded on error.
        """
        inbuf = memoryview(bytearray(chunks_per_block * ENCRYPTED_CHUNK_SIZE))
        outbuf = memoryview(bytearray(chunks_per_block * CHUNK_SIZE))
        source = self._source
        while True:
            got = source.readinto_exact(inbuf)
            pos = produced = 0
            while True:
                data = inbuf[pos : min(pos + ENCRYPTED_CHUNK_SIZE, got)]
                plain, last = self._open_chunk(data, outbuf[produced:])
                pos += len(data)
                produced += len(plain)
                if last:
                    if pos < got:
                        raise PayloadError("unexpected data after the final payload chunk")
                    write(outbuf[:produced])
                    self.ensure_end()
                    return
                if pos == len(inbuf):
                    break
            write(outbuf[:produced])
