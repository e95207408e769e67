"""Passphrase recipients and identities, with the key derived by scrypt."""

from __future__ import annotations

import os
import re
from typing import Sequence

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import HeaderError
from .format import Stanza, b64decode_raw, b64encode_raw
from .interfaces import Rand
from .primitives import FILE_KEY_SIZE, TAG_SIZE, _open_file_key, _seal_file_key

_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_SCRYPT_MAX_WORK_FACTOR = 22
_SCRYPT_DEFAULT_WORK_FACTOR = 18

_DECIMAL = re.compile(r"[1-9][0-9]*")


class ScryptRecipient:
    """Passphrase encryption; the spec requires it to be the file's only recipient."""

    def __init__(self, passphrase: bytes, work_factor: int = _SCRYPT_DEFAULT_WORK_FACTOR):
        if not passphrase:
            raise ValueError("the passphrase must not be empty")
        if not 1 <= work_factor <= _SCRYPT_MAX_WORK_FACTOR:
            raise ValueError(f"scrypt work factor must be between 1 and {_SCRYPT_MAX_WORK_FACTOR}")
        self._passphrase = bytes(passphrase)
        self._work_factor = work_factor

    def wrap(self, file_key: bytes, rand: Rand = os.urandom) -> Stanza:
        salt = rand(16)
        kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << self._work_factor, r=8, p=1)
        body = _seal_file_key(kdf.derive(self._passphrase), file_key)
        return Stanza("scrypt", (b64encode_raw(salt).decode("ascii"), str(self._work_factor)), body)

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self._work_factor})"


class ScryptIdentity:
    """Decrypts passphrase-encrypted files.

    ``max_work_factor`` bounds the work an attacker-supplied header can make us
    do: log2(N)=22 already costs 4 GiB of memory and seconds of CPU.
    """

    def __init__(self, passphrase: bytes, max_work_factor: int = _SCRYPT_MAX_WORK_FACTOR):
        self._passphrase = bytes(passphrase)
        self._max_work_factor = max_work_factor

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != "scrypt":
                continue
            if len(stanza.args) != 2:
                raise HeaderError("malformed scrypt stanza: expected a salt and a work factor")
            try:
                salt = b64decode_raw(stanza.args[0].encode("ascii"))
            except ValueError:
                raise HeaderError("malformed scrypt stanza: salt is not canonical base64") from None
            if len(salt) != 16:
                raise HeaderError("malformed scrypt stanza: salt is not 16 bytes")
            factor = stanza.args[1]
            if not _DECIMAL.fullmatch(factor) or len(factor) > 2:
                raise HeaderError("malformed scrypt stanza: work factor is not a plain decimal number")
            log_n = int(factor)
            if log_n > self._max_work_factor:
                raise HeaderError(
                    f"scrypt work factor {log_n} exceeds the limit of {self._max_work_factor}"
                )
            if len(stanza.body) != FILE_KEY_SIZE + TAG_SIZE:
                raise HeaderError("malformed scrypt stanza: wrapped file key has the wrong length")
            kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << log_n, r=8, p=1)
            file_key = _open_file_key(kdf.derive(self._passphrase), stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __repr__(self) -> str:
        return "ScryptIdentity(<passphrase>)"
