"""Writing age files: recipient policy, the header, then the sealed payload."""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Sequence

from .armor import _ArmorWriter
from .format import _MAX_STANZAS, encode_header
from .interfaces import Rand, Recipient
from .pq import HybridRecipient
from .primitives import FILE_KEY_SIZE, PAYLOAD_NONCE_SIZE, _payload_key
from .scrypt import ScryptRecipient
from .stream import _BATCH_SIZE, CHUNK_SIZE, _StreamSealer


class EncryptingWriter:
    """Writable age file. Closing writes the final chunk; aborting does not.

    Used as a context manager, an exception inside the block aborts instead of
    closing, so an interrupted write never produces a file that decrypts to a
    silently truncated plaintext.
    """

    def __init__(
        self,
        dst: BinaryIO,
        recipients: Sequence[Recipient],
        *,
        armor: bool = False,
        rand: Rand = os.urandom,
    ) -> None:
        recipients = list(recipients)
        if not recipients:
            raise ValueError("at least one recipient is required")
        if len(recipients) > _MAX_STANZAS:
            # Nobody reading with this implementation could open the file.
            raise ValueError(f"at most {_MAX_STANZAS} recipients can be given")
        if any(isinstance(r, ScryptRecipient) for r in recipients) and len(recipients) != 1:
            raise ValueError("a passphrase recipient must be the only recipient")
        hybrid = sum(isinstance(r, HybridRecipient) for r in recipients)
        if hybrid and hybrid != len(recipients):
            # One classic stanza would let a future quantum attacker recover
            # the file key, so the post-quantum ones would protect nothing.
            raise ValueError("post-quantum (age1pq1…) recipients cannot be mixed with classic recipients")
        file_key = rand(FILE_KEY_SIZE)
        header = encode_header([r.wrap(file_key, rand) for r in recipients], file_key)
        nonce = rand(PAYLOAD_NONCE_SIZE)
        self._dst = dst
        self._armor = _ArmorWriter(dst) if armor else None
        self._write_out = self._armor.write if self._armor else dst.write
        self._sealer = _StreamSealer(_payload_key(file_key, nonce))
        self._pending: bytes | bytearray = b""
        self._closed = False
        self._write_out(header + nonce)

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._closed:
            raise ValueError("write to a closed age writer")
        view = memoryview(data).cast("B")
        size = len(view)
        if not size:
            return 0
        pending = self._pending
        if pending:
            room = CHUNK_SIZE - len(pending)
            if size <= room:
                if isinstance(pending, bytes):
                    pending = bytearray(pending)
                pending += view
                self._pending = pending
                return size
            # More data follows the buffered chunk, so it cannot be the final one.
            if room:
                if isinstance(pending, bytes):
                    pending = bytearray(pending)
                pending += view[:room]
            self._write_out(self._sealer.seal(pending, False))
            view = view[room:]
        # Everything but the last chunk is sealed now, in batches so that the
        # output buffer stays small however large the write; the last chunk
        # waits, since only close() can tell whether it is the final one.
        sealable = (len(view) - 1) // CHUNK_SIZE * CHUNK_SIZE
        for start in range(0, sealable, _BATCH_SIZE):
            self._write_out(self._sealer.seal_full_chunks(view[start : min(start + _BATCH_SIZE, sealable)]))
        # Keeping a reference to an immutable input spares a 64 KiB copy per write.
        self._pending = data if type(data) is bytes and not sealable and len(view) == size else bytes(view[sealable:])
        return size

    def flush(self) -> None:
        if hasattr(self._dst, "flush"):
            self._dst.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._write_out(self._sealer.seal(self._pending, True))
        self._pending = b""
        if self._armor:
            self._armor.close()
        self._closed = True
        self.flush()

    def abort(self) -> None:
        """Stop without the final chunk; what was written will fail to decrypt."""
        self._closed = True
        self._pending = b""

    def __enter__(self) -> "EncryptingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def encrypting_writer(
    dst: BinaryIO,
    recipients: Sequence[Recipient],
    *,
    armor: bool = False,
    rand: Rand = os.urandom,
) -> EncryptingWriter:
    """Start an age file on ``dst``; use as ``with encrypting_writer(...) as w: w.write(...)``.

    ``rand`` supplies the file key, X25519 ephemeral keys and payload nonce;
    tests pass a deterministic one to reproduce known vectors (hybrid stanzas
    take their ephemeral randomness from HPKE itself). ``dst`` is not closed.

    As with any ``io`` stream, ``dst.write`` gets bytes-like objects and must
    not keep them after returning: large writes hand it views of a buffer
    that is reused for the next batch of chunks.
    """
    return EncryptingWriter(dst, recipients, armor=armor, rand=rand)


def encrypt(
    plaintext: bytes, recipients: Sequence[Recipient], *, armor: bool = False, rand: Rand = os.urandom
) -> bytes:
    out = io.BytesIO()
    with encrypting_writer(out, recipients, armor=armor, rand=rand) as writer:
        writer.write(plaintext)
    return out.getvalue()
