"""Hybrid post-quantum recipients (``age1pq1…``) and identities (``AGE-SECRET-KEY-PQ-1…``)."""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .. import bech32
from .errors import HeaderError
from .format import Stanza, b64decode_raw, b64encode_raw
from .interfaces import Rand
from .primitives import FILE_KEY_SIZE, TAG_SIZE, _raw_public, _x25519_shared

_PQ_LABEL = b"age-encryption.org/mlkem768x25519"
_PQ_STANZA_TYPE = "mlkem768x25519"
_PQ_IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"
_PQ_RECIPIENT_HRP = "age1pq"

# The hybrid KEM of draft-ietf-hpke-pq ("MLKEM768-X25519", a.k.a. X-Wing): the
# public key is the ML-KEM encapsulation key followed by the X25519 point, and
# the encapsulation is the ML-KEM ciphertext followed by the X25519 share.
_MLKEM768_PUBLIC_SIZE = 1184
_MLKEM768_CIPHERTEXT_SIZE = 1088
_PQ_PUBLIC_SIZE = _MLKEM768_PUBLIC_SIZE + 32
_PQ_ENC_SIZE = _MLKEM768_CIPHERTEXT_SIZE + 32
_PQ_SEED_SIZE = 32
_PQ_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _abbreviated(key_string: str) -> str:
    # Hybrid recipients are almost 2000 characters; a repr needs only enough to tell them apart.
    return f"{key_string[:16]}…{key_string[-8:]}"


class HybridRecipient:
    """A post-quantum ``age1pq1…`` recipient: ML-KEM-768 + X25519 through HPKE.

    Files for hybrid recipients are only as strong as their weakest recipient,
    so :func:`encrypting_writer` refuses to mix them with classic ones.
    """

    __slots__ = ("_public", "_key")

    def __init__(self, public: bytes):
        if len(public) != _PQ_PUBLIC_SIZE:
            raise ValueError(f"a hybrid ML-KEM-768 + X25519 public key is {_PQ_PUBLIC_SIZE} bytes")
        try:
            mlkem_key = MLKEM768PublicKey.from_public_bytes(public[:_MLKEM768_PUBLIC_SIZE])
            x25519_key = X25519PublicKey.from_public_bytes(public[_MLKEM768_PUBLIC_SIZE:])
        except ValueError:
            raise ValueError("the ML-KEM-768 encapsulation key is malformed") from None
        self._public = bytes(public)
        self._key = hpke.MLKEM768X25519PublicKey(mlkem_key, x25519_key)

    @classmethod
    def parse(cls, s: str) -> "HybridRecipient":
        try:
            hrp, data = bech32.decode(s)
        except ValueError as exc:
            raise ValueError(f"not a valid age recipient: {exc}") from None
        if hrp != _PQ_RECIPIENT_HRP:
            if hrp.lower() == _PQ_RECIPIENT_HRP:
                raise ValueError("not a valid age recipient: a hybrid recipient must be lowercase")
            raise ValueError("not an age hybrid recipient: expected a lowercase string starting with 'age1pq1'")
        if len(data) != _PQ_PUBLIC_SIZE:
            raise ValueError("not a valid age recipient: wrong hybrid key length")
        try:
            return cls(data)
        except ValueError as exc:
            raise ValueError(f"not a valid age recipient: {exc}") from None

    @property
    def string(self) -> str:
        return bech32.encode(_PQ_RECIPIENT_HRP, self._public)

    @property
    def public_bytes(self) -> bytes:
        return self._public

    def wrap(self, file_key: bytes, rand: Rand = os.urandom) -> Stanza:
        """Wrap ``file_key``; ``rand`` is not used because HPKE draws its own ephemeral keys."""
        sealed = _PQ_SUITE.encrypt(file_key, self._key, info=_PQ_LABEL)
        enc, body = sealed[:_PQ_ENC_SIZE], sealed[_PQ_ENC_SIZE:]
        return Stanza(_PQ_STANZA_TYPE, (b64encode_raw(enc).decode("ascii"),), body)

    def __str__(self) -> str:
        return self.string

    def __repr__(self) -> str:
        return f"HybridRecipient({_abbreviated(self.string)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridRecipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)


class HybridIdentity:
    """A secret ``AGE-SECRET-KEY-PQ-1…`` identity, stored as its 32-byte seed.

    The ML-KEM-768 and X25519 keys are both expanded from the seed with
    SHAKE256, as draft-ietf-hpke-pq specifies. Its repr shows only an
    abbreviation of the public side.
    """

    __slots__ = ("_seed", "_x25519", "_key", "_public")

    def __init__(self, seed: bytes):
        if len(seed) != _PQ_SEED_SIZE:
            raise ValueError(f"a hybrid identity seed is {_PQ_SEED_SIZE} bytes")
        expanded = hashlib.shake_256(seed).digest(64 + 32)
        mlkem_key = MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        self._x25519 = X25519PrivateKey.from_private_bytes(expanded[64:])
        self._seed = bytes(seed)
        self._key = hpke.MLKEM768X25519PrivateKey(mlkem_key, self._x25519)
        self._public = mlkem_key.public_key().public_bytes_raw() + _raw_public(self._x25519.public_key())

    @classmethod
    def generate(cls) -> "HybridIdentity":
        return cls(os.urandom(_PQ_SEED_SIZE))

    @classmethod
    def parse(cls, s: str) -> "HybridIdentity":
        try:
            hrp, data = bech32.decode(s)
        except ValueError as exc:
            raise ValueError(f"not a valid age identity: {exc}") from None
        if hrp != _PQ_IDENTITY_HRP:
            if hrp.upper() == _PQ_IDENTITY_HRP:
                raise ValueError("not a valid age identity: it must be upper case")
            raise ValueError(
                "not an age hybrid identity: expected a string starting with 'AGE-SECRET-KEY-PQ-1'"
            )
        if len(data) != _PQ_SEED_SIZE:
            raise ValueError("not a valid age identity: wrong hybrid seed length")
        return cls(data)

    @property
    def string(self) -> str:
        return bech32.encode(_PQ_IDENTITY_HRP, self._seed)

    def recipient(self) -> HybridRecipient:
        return HybridRecipient(self._public)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != _PQ_STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise HeaderError("malformed mlkem768x25519 stanza: expected exactly one argument")
            try:
                enc = b64decode_raw(stanza.args[0].encode("ascii"))
            except ValueError:
                raise HeaderError("malformed mlkem768x25519 stanza: enc is not canonical base64") from None
            if len(enc) != _PQ_ENC_SIZE:
                raise HeaderError(f"malformed mlkem768x25519 stanza: enc is not {_PQ_ENC_SIZE} bytes")
            if len(stanza.body) != FILE_KEY_SIZE + TAG_SIZE:
                raise HeaderError("malformed mlkem768x25519 stanza: wrapped file key has the wrong length")
            # The HPKE layer reports every failure as a bad tag, but a low-order
            # X25519 share is a malformed header, not a stanza for someone else.
            if _x25519_shared(self._x25519, enc[_MLKEM768_CIPHERTEXT_SIZE:]) is None:
                raise HeaderError("malformed mlkem768x25519 stanza: X25519 share is a low-order point")
            try:
                # ML-KEM rejects implicitly: a stanza for another key decapsulates
                # to a random secret and only the AEAD tag tells it apart.
                return _PQ_SUITE.decrypt(enc + stanza.body, self._key, info=_PQ_LABEL)
            except InvalidTag:
                continue
        return None

    def __repr__(self) -> str:
        return f"HybridIdentity(recipient={_abbreviated(self.recipient().string)!r})"
