"""Reading age files: armor detection, header verification, then the opened payload.

Streaming decryption hands out plaintext chunk by chunk as each chunk
authenticates; only the end of the file proves the plaintext is complete.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Iterator, Sequence

from .armor import _ARMOR_LINE_LIMIT, _ARMOR_MAX_WHITESPACE, _ArmorReader
from .errors import AgeError, HeaderError, NoIdentityMatchedError
from .format import _INTRO_FAMILY, _verify_header_mac, parse_header
from .interfaces import Identity
from .primitives import FILE_KEY_SIZE, PAYLOAD_NONCE_SIZE, _payload_key
from .source import _Source
from .stream import _StreamOpener


def _open_source(src: BinaryIO) -> _Source:
    """Wrap ``src``, transparently removing the armor if the file is armored.

    A file counts as armored when it starts (after optional whitespace) with a
    dash, or has a BEGIN line near the top: a damaged armored file is then
    reported as an armor problem, while a binary file with a damaged intro is
    still reported as a header problem.
    """
    source = _Source(src)
    head = source.peek(_ARMOR_MAX_WHITESPACE + _ARMOR_LINE_LIMIT)
    if head.startswith(_INTRO_FAMILY):
        return source
    if head.lstrip().startswith(b"-") or b"\n-----BEGIN" in head:
        return _Source(_ArmorReader(source))
    return source


class DecryptingReader:
    """Readable plaintext of an age file whose header has already been verified.

    ``read(n)`` returns n bytes unless the end is reached. If a chunk fails
    after some bytes of the same call were gathered, those bytes are returned
    and the error is raised by the next call, so callers see exactly the
    plaintext that authenticated before the failure.
    """

    def __init__(self, opener: _StreamOpener) -> None:
        self._opener = opener
        self._chunk = b""
        self._pos = 0
        self._end = False
        self._error: AgeError | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def readable(self) -> bool:
        return True

    def _load(self) -> bool:
        if self._error is not None:
            raise self._error
        if self._end:
            return False
        plain, last = self._opener.next_chunk()
        if last:
            self._end = True
            try:
                self._opener.ensure_end()
            except AgeError as exc:
                # The final chunk did authenticate; it is released and the
                # trailing-data error surfaces on the following read.
                self._error = exc
        self._chunk, self._pos = plain, 0
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._closed:
            raise ValueError("read from a closed age reader")
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        wanted = size
        while wanted:
            available = len(self._chunk) - self._pos
            if not available:
                try:
                    if not self._load():
                        break
                except AgeError as exc:
                    if not parts:
                        raise
                    self._error = exc
                    break
                continue
            if self._pos == 0 and wanted >= available:
                piece = self._chunk
                self._chunk = b""
            else:
                piece = self._chunk[self._pos : self._pos + wanted]
                self._pos += len(piece)
            parts.append(piece)
            wanted -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_chunk(self) -> bytes:
        """Return the next piece of plaintext (at most 64 KiB), b"" at the end."""
        if self._closed:
            raise ValueError("read from a closed age reader")
        while self._pos >= len(self._chunk):
            if not self._load():
                return b""
        piece = self._chunk[self._pos :] if self._pos else self._chunk
        self._chunk, self._pos = b"", 0
        return piece

    def readall(self) -> bytes:
        parts = []
        while piece := self.read_chunk():
            parts.append(piece)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._closed = True
        self._chunk = b""

    def __enter__(self) -> "DecryptingReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        while piece := self.read_chunk():
            yield piece


def decrypting_reader(src: BinaryIO, identities: Sequence[Identity]) -> DecryptingReader:
    """Parse and authenticate the header of ``src`` and return a plaintext reader.

    Raises :class:`HeaderError`, :class:`ArmorError` or
    :class:`NoIdentityMatchedError` before any plaintext exists; payload
    problems raise :class:`PayloadError` from ``read``. Armor is detected.
    """
    return DecryptingReader(_open_payload(src, identities))


def _open_payload(src: BinaryIO, identities: Sequence[Identity]) -> _StreamOpener:
    """Verify the header of ``src`` with ``identities``; return an opener positioned at the first chunk."""
    identities = list(identities)
    source = _open_source(src)
    header = parse_header(source)
    stanzas = header.stanzas
    if any(s.type == "scrypt" for s in stanzas) and len(stanzas) != 1:
        raise HeaderError("a passphrase (scrypt) stanza must be the only stanza in the header")
    file_key = None
    for identity in identities:
        file_key = identity.unwrap(stanzas)
        if file_key is not None:
            break
    if file_key is None:
        raise NoIdentityMatchedError(
            f"none of the {len(identities)} identities matched any of the {len(stanzas)} recipient stanzas"
        )
    if len(file_key) != FILE_KEY_SIZE:
        raise HeaderError("unwrapped file key has the wrong length")
    _verify_header_mac(header, file_key)
    nonce = source.read_exact(PAYLOAD_NONCE_SIZE)
    if len(nonce) != PAYLOAD_NONCE_SIZE:
        raise HeaderError("file is truncated: the payload nonce is missing")
    return _StreamOpener(_payload_key(file_key, nonce), source)


def decrypt(ciphertext: bytes, identities: Sequence[Identity]) -> bytes:
    return decrypting_reader(io.BytesIO(ciphertext), identities).readall()
