"""Native X25519 recipients (``age1…``) and identities (``AGE-SECRET-KEY-1…``)."""

from __future__ import annotations

import os
from typing import Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .. import bech32
from .errors import HeaderError
from .format import Stanza, b64decode_raw, b64encode_raw
from .interfaces import Rand
from .pq import _PQ_IDENTITY_HRP, _PQ_RECIPIENT_HRP
from .primitives import FILE_KEY_SIZE, TAG_SIZE, _hkdf, _open_file_key, _raw_public, _seal_file_key, _x25519_shared

_X25519_LABEL = b"age-encryption.org/v1/X25519"
_IDENTITY_HRP = "AGE-SECRET-KEY-"
_RECIPIENT_HRP = "age"


class X25519Recipient:
    """A public ``age1…`` recipient."""

    __slots__ = ("_public",)

    def __init__(self, public: bytes):
        if len(public) != 32:
            raise ValueError("an X25519 public key is 32 bytes")
        self._public = bytes(public)

    @classmethod
    def parse(cls, s: str) -> "X25519Recipient":
        try:
            hrp, data = bech32.decode(s)
        except ValueError as exc:
            raise ValueError(f"not a valid age recipient: {exc}") from None
        if hrp.lower() == _PQ_RECIPIENT_HRP:
            raise ValueError("this is a post-quantum age1pq1… recipient: use HybridRecipient or parse_recipient")
        if hrp.lower().startswith("age1"):
            raise ValueError("only X25519 (age1…) and hybrid (age1pq1…) age recipients are supported, not plugins")
        if hrp != _RECIPIENT_HRP:
            raise ValueError("not an age X25519 recipient: expected a lowercase string starting with 'age1'")
        if len(data) != 32:
            raise ValueError("not a valid age recipient: wrong key length")
        return cls(data)

    @property
    def string(self) -> str:
        return bech32.encode(_RECIPIENT_HRP, self._public)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def wrap(self, file_key: bytes, rand: Rand = os.urandom) -> Stanza:
        ephemeral = X25519PrivateKey.from_private_bytes(rand(32))
        share = _raw_public(ephemeral.public_key())
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self._public))
        key = _hkdf(shared, share + self._public, _X25519_LABEL)
        return Stanza("X25519", (b64encode_raw(share).decode("ascii"),), _seal_file_key(key, file_key))

    def __str__(self) -> str:
        return self.string

    def __repr__(self) -> str:
        return f"X25519Recipient({self.string!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)


class X25519Identity:
    """A secret ``AGE-SECRET-KEY-1…`` identity. Its repr shows only the public side."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: X25519PrivateKey):
        self._key = key
        self._public = _raw_public(key.public_key())

    @classmethod
    def generate(cls) -> "X25519Identity":
        return cls(X25519PrivateKey.generate())

    @classmethod
    def parse(cls, s: str) -> "X25519Identity":
        try:
            hrp, data = bech32.decode(s)
        except ValueError as exc:
            raise ValueError(f"not a valid age identity: {exc}") from None
        if hrp.upper().startswith("AGE-SECRET-KEY-") and hrp != _IDENTITY_HRP:
            if hrp.upper() == _IDENTITY_HRP:
                raise ValueError("not a valid age identity: it must be upper case")
            if hrp.upper() == _PQ_IDENTITY_HRP:
                raise ValueError(
                    "this is a post-quantum AGE-SECRET-KEY-PQ-1… identity: use HybridIdentity or parse_identity"
                )
            raise ValueError("only X25519 and hybrid post-quantum age identities are supported")
        if hrp != _IDENTITY_HRP:
            raise ValueError("not an age X25519 identity: expected a string starting with 'AGE-SECRET-KEY-1'")
        if len(data) != 32:
            raise ValueError("not a valid age identity: wrong key length")
        return cls(X25519PrivateKey.from_private_bytes(data))

    @property
    def string(self) -> str:
        return bech32.encode(_IDENTITY_HRP, self._key.private_bytes_raw())

    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self._public)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != "X25519":
                continue
            if len(stanza.args) != 1:
                raise HeaderError("malformed X25519 stanza: expected exactly one argument")
            try:
                share = b64decode_raw(stanza.args[0].encode("ascii"))
            except ValueError:
                raise HeaderError("malformed X25519 stanza: share is not canonical base64") from None
            if len(share) != 32:
                raise HeaderError("malformed X25519 stanza: share is not 32 bytes")
            if len(stanza.body) != FILE_KEY_SIZE + TAG_SIZE:
                raise HeaderError("malformed X25519 stanza: wrapped file key has the wrong length")
            shared = _x25519_shared(self._key, share)
            if shared is None:
                raise HeaderError("malformed X25519 stanza: share is a low-order point")
            key = _hkdf(shared, share + self._public, _X25519_LABEL)
            file_key = _open_file_key(key, stanza.body)
            if file_key is not None:
                return file_key
        return None

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={self.recipient().string!r})"
