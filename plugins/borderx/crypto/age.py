"""age v1 file encryption (https://c2sp.org/age): X25519, hybrid post-quantum
(ML-KEM-768 + X25519) and scrypt recipients.

The module is split in layers that mirror the specification:

* key strings (bech32 ``age1…`` / ``AGE-SECRET-KEY-1…``, ``age1pq1…`` /
  ``AGE-SECRET-KEY-PQ-1…``) and identity files;
* recipient stanzas: wrapping and unwrapping the 16-byte file key;
* the header: stanza text encoding, canonical unpadded base64, the header MAC;
* the STREAM payload: ChaCha20-Poly1305 over 64 KiB chunks;
* the ASCII armor, a PEM-like base64 wrapper around a whole age file.

Decryption follows the specification strictly (non-canonical base64, an empty
final chunk after other chunks, data after the final chunk, ... are errors),
because a lenient decoder would accept ciphertexts that other implementations
reject, and malleable encodings are exactly what an attacker probes for.

Streaming decryption hands out plaintext chunk by chunk as each chunk
authenticates; only the end of the file proves the plaintext is complete.
Callers that need all-or-nothing semantics use :func:`decrypt_file`, which
writes to a temporary file and renames it only after the last chunk verified.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import hashlib
import io
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol, Sequence

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from . import bech32

__all__ = [
    "AgeError",
    "ArmorError",
    "HeaderError",
    "NoIdentityMatchedError",
    "PayloadError",
    "Stanza",
    "X25519Recipient",
    "X25519Identity",
    "HybridRecipient",
    "HybridIdentity",
    "ScryptRecipient",
    "ScryptIdentity",
    "generate_x25519_identity",
    "generate_hybrid_identity",
    "format_identity_file",
    "parse_identity",
    "parse_identities",
    "parse_recipient",
    "encrypting_writer",
    "decrypting_reader",
    "encrypt",
    "decrypt",
    "encrypt_file",
    "decrypt_file",
]

Rand = Callable[[int], bytes]


class AgeError(Exception):
    """Base class for every way an age file can fail to decrypt."""


class HeaderError(AgeError):
    """The header is malformed, uses an unsupported version, or its MAC is wrong."""


class NoIdentityMatchedError(AgeError):
    """The header is well formed but none of the identities unwraps the file key."""


class PayloadError(AgeError):
    """A payload chunk is corrupt, truncated, misplaced, or followed by extra data."""


class ArmorError(AgeError):
    """The ASCII armor around the file is malformed."""


FILE_KEY_SIZE = 16
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
PAYLOAD_NONCE_SIZE = 16

_INTRO = b"age-encryption.org/v1\n"
_INTRO_FAMILY = b"age-encryption.org/"
_MAC_PREFIX = b"---"
_STANZA_PREFIX = b"->"
_COLUMNS = 64
_BYTES_PER_LINE = _COLUMNS // 4 * 3
# Argument lines can legitimately be long (post-quantum shares are ~1.5 KiB of
# base64); the caps only stop a hostile file from making us buffer unboundedly.
_MAX_HEADER_LINE = 64 * 1024
_MAX_HEADER_SIZE = 16 * 1024 * 1024

_X25519_LABEL = b"age-encryption.org/v1/X25519"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_IDENTITY_HRP = "AGE-SECRET-KEY-"
_RECIPIENT_HRP = "age"
_PQ_LABEL = b"age-encryption.org/mlkem768x25519"
_PQ_STANZA_TYPE = "mlkem768x25519"
_PQ_IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"
_PQ_RECIPIENT_HRP = "age1pq"
_SCRYPT_MAX_WORK_FACTOR = 22
_SCRYPT_DEFAULT_WORK_FACTOR = 18

_ZERO_NONCE = bytes(12)


def _hkdf(ikm: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


# --------------------------------------------------------------------------
# Canonical unpadded base64, as the header requires
# --------------------------------------------------------------------------

_B64_RAW = re.compile(rb"[A-Za-z0-9+/]*")


def b64encode_raw(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).rstrip(b"=")


def b64decode_raw(text: bytes) -> bytes:
    """Decode unpadded base64, rejecting every non-canonical spelling.

    Padding, whitespace, and non-zero trailing bits would each give one
    ciphertext several valid encodings, so all of them are refused.
    """
    if len(text) % 4 == 1 or not _B64_RAW.fullmatch(text):
        raise ValueError("invalid base64")
    data = binascii.a2b_base64(text + b"=" * (-len(text) % 4), strict_mode=True)
    if b64encode_raw(data) != text:
        raise ValueError("non-canonical base64")
    return data


# --------------------------------------------------------------------------
# Recipient stanzas
# --------------------------------------------------------------------------

_VCHAR_STRING = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza of the header: a type, its arguments, a binary body."""

    type: str
    args: tuple[str, ...]
    body: bytes

    def __post_init__(self) -> None:
        for value in (self.type, *self.args):
            if not _VCHAR_STRING.fullmatch(value):
                raise ValueError("stanza type and arguments must be non-empty printable ASCII")


class Identity(Protocol):
    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key, None if nothing is addressed to us, or raise HeaderError."""


class Recipient(Protocol):
    def wrap(self, file_key: bytes, rand: Rand) -> Stanza: ...


def _seal_file_key(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def _open_file_key(key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _raw_public(public_key: X25519PublicKey) -> bytes:
    # The *_raw methods spare importing the serialization package (and its SSH
    # code), which would add measurably to the start-up of every short-lived CLI run.
    return public_key.public_bytes_raw()


def _x25519_shared(key: X25519PrivateKey, share: bytes) -> bytes | None:
    """The X25519 shared secret, or None when ``share`` is a low-order point.

    An all-zero secret means the sender's contribution carries no entropy;
    the spec makes that a hard error rather than a mere non-match.
    """
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        return None
    return None if shared == bytes(32) else shared


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


# --------------------------------------------------------------------------
# Key generation and identity files
# --------------------------------------------------------------------------


def generate_x25519_identity() -> tuple[str, str]:
    """Return a fresh ``(identity, recipient)`` pair as age strings."""
    identity = X25519Identity.generate()
    return identity.string, identity.recipient().string


def generate_hybrid_identity() -> tuple[str, str]:
    """Return a fresh post-quantum ``(AGE-SECRET-KEY-PQ-1…, age1pq1…)`` pair as age strings."""
    identity = HybridIdentity.generate()
    return identity.string, identity.recipient().string


def parse_identity(s: str) -> X25519Identity | HybridIdentity:
    """Parse one identity string of either native type."""
    if s.upper().startswith(_PQ_IDENTITY_HRP + "1"):
        return HybridIdentity.parse(s)
    return X25519Identity.parse(s)


def parse_recipient(s: str) -> X25519Recipient | HybridRecipient:
    """Parse one recipient string of either native type (``age1…`` or ``age1pq1…``)."""
    if s.lower().startswith(_PQ_RECIPIENT_HRP + "1"):
        return HybridRecipient.parse(s)
    return X25519Recipient.parse(s)


def format_identity_file(identity: str, recipient: str, created: datetime) -> str:
    """Render an identity file exactly as ``age-keygen`` writes it (naive ``created`` means UTC)."""
    if parse_identity(identity).recipient().string != recipient:
        raise ValueError("the recipient does not belong to the identity")
    if created.tzinfo is not None:
        created = created.astimezone(timezone.utc)
    return f"# created: {created:%Y-%m-%dT%H:%M:%S}Z\n# public key: {recipient}\n{identity}\n"


def parse_identities(text: str) -> list[X25519Identity | HybridIdentity]:
    """Read an identity file: one identity per line, ``#`` comments and blank lines ignored."""
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(parse_identity(line))
        except ValueError as exc:
            # The line itself may be (a mangled) secret key, so it is never echoed.
            raise ValueError(f"identity file line {number}: {exc}") from None
    if not identities:
        raise ValueError("the identity file contains no identities")
    return identities


# --------------------------------------------------------------------------
# Byte source with exact reads
# --------------------------------------------------------------------------


class _Source:
    """Buffered reader over a raw stream that may return short reads (pipes, sockets)."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._buf = bytearray()

    def _more(self, size: int) -> bool:
        data = self._raw.read(size)
        if not data:
            return False
        self._buf += data
        return True

    def read_exact(self, n: int) -> bytes:
        """Return n bytes, or fewer only at end of input."""
        buf = self._buf
        if not buf:
            data = self._raw.read(n)
            if not data or len(data) == n:
                return bytes(data or b"")
            buf += data
        while len(buf) < n and self._more(n - len(buf)):
            pass
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def readinto_exact(self, view: memoryview) -> int:
        """Fill ``view``; return how many bytes arrived, fewer only at end of input."""
        filled = min(len(self._buf), len(view))
        if filled:
            view[:filled] = self._buf[:filled]
            del self._buf[:filled]
        readinto = getattr(self._raw, "readinto", None)
        while filled < len(view):
            if readinto is not None:
                got = readinto(view[filled:])
            else:
                # Some sources (the armor decoder) may hand back more than asked.
                data = self._raw.read(len(view) - filled)
                got = min(len(data), len(view) - filled) if data else 0
                view[filled : filled + got] = data[:got] if got else b""
                if data and len(data) > got:
                    self._buf += data[got:]
            if not got:
                break
            filled += got
        return filled

    def peek(self, n: int) -> bytes:
        while len(self._buf) < n and self._more(n - len(self._buf)):
            pass
        return bytes(self._buf[:n])

    def readline(self, limit: int) -> bytes:
        """Return one line with its LF, or at most ``limit`` bytes, or the rest at EOF."""
        searched = 0
        while True:
            idx = self._buf.find(b"\n", searched, limit)
            if idx >= 0:
                return self._take(idx + 1)
            if len(self._buf) >= limit:
                return self._take(limit)
            searched = len(self._buf)
            if not self._more(4096):
                return self._take(len(self._buf))

    def unread(self, data: bytes) -> None:
        self._buf[:0] = data

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


# --------------------------------------------------------------------------
# Header: encoding, parsing, MAC
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes  # header bytes as received, up to and including "---"


def _wrap_lines(text: bytes) -> list[bytes]:
    lines = [text[i : i + _COLUMNS] for i in range(0, len(text), _COLUMNS)]
    if not lines or len(lines[-1]) == _COLUMNS:
        # A stanza body always ends with a short line, even an empty one.
        lines.append(b"")
    return lines


def _encode_stanza(stanza: Stanza) -> bytes:
    line = b" ".join([_STANZA_PREFIX, stanza.type.encode("ascii"), *(a.encode("ascii") for a in stanza.args)])
    return line + b"\n" + b"".join(part + b"\n" for part in _wrap_lines(b64encode_raw(stanza.body)))


def _header_mac(file_key: bytes, mac_input: bytes) -> crypto_hmac.HMAC:
    mac = crypto_hmac.HMAC(_hkdf(file_key, None, b"header"), hashes.SHA256())
    mac.update(mac_input)
    return mac


def encode_header(stanzas: Sequence[Stanza], file_key: bytes) -> bytes:
    mac_input = _INTRO + b"".join(_encode_stanza(s) for s in stanzas) + _MAC_PREFIX
    mac = _header_mac(file_key, mac_input).finalize()
    return mac_input + b" " + b64encode_raw(mac) + b"\n"


def parse_header(source: _Source) -> Header:
    raw = bytearray()

    def line(limit: int = _MAX_HEADER_LINE) -> bytes:
        text = source.readline(limit)
        if not text.endswith(b"\n"):
            if len(text) == limit:
                raise HeaderError("header line is too long")
            raise HeaderError("header is truncated")
        if len(raw) + len(text) > _MAX_HEADER_SIZE:
            raise HeaderError("header is too large")
        return text

    intro = source.readline(len(_INTRO))
    if intro != _INTRO:
        if intro.startswith(_INTRO_FAMILY):
            raise HeaderError("unsupported age format version or malformed intro line")
        raise HeaderError("not an age file: the first line is not the age v1 intro")
    raw += intro

    stanzas: list[Stanza] = []
    while True:
        text = line()
        if text.startswith(_MAC_PREFIX):
            parts = text[:-1].split(b" ")
            if parts[0] != _MAC_PREFIX or len(parts) != 2:
                raise HeaderError("malformed header MAC line")
            try:
                mac = b64decode_raw(parts[1])
            except ValueError:
                raise HeaderError("header MAC is not canonical base64") from None
            if len(mac) != 32:
                raise HeaderError("header MAC has the wrong length")
            raw += _MAC_PREFIX
            return Header(tuple(stanzas), mac, bytes(raw))

        raw += text
        parts = text[:-1].split(b" ")
        if parts[0] != _STANZA_PREFIX or len(parts) < 2:
            raise HeaderError("malformed stanza line")
        try:
            words = [p.decode("ascii") for p in parts[1:]]
        except UnicodeDecodeError:
            raise HeaderError("stanza arguments must be printable ASCII") from None
        if not all(_VCHAR_STRING.fullmatch(w) for w in words):
            raise HeaderError("stanza arguments must be non-empty printable ASCII")

        body = bytearray()
        while True:
            # Reading at most 65 bytes lets a 64-column line plus its LF through;
            # a longer line is cut short and rejected for lacking its LF.
            text = source.readline(_COLUMNS + 1)
            if not text.endswith(b"\n"):
                if len(text) > _COLUMNS:
                    raise HeaderError("stanza body line is longer than 64 columns")
                raise HeaderError("header is truncated")
            if text.startswith((_STANZA_PREFIX, _MAC_PREFIX)):
                raise HeaderError("stanza body does not end with a short line")
            if len(raw) + len(text) > _MAX_HEADER_SIZE:
                raise HeaderError("header is too large")
            raw += text
            try:
                piece = b64decode_raw(text[:-1])
            except ValueError:
                raise HeaderError("stanza body is not canonical base64") from None
            body += piece
            if len(piece) < _BYTES_PER_LINE:
                break
        stanzas.append(Stanza(words[0], tuple(words[1:]), bytes(body)))


def _verify_header_mac(header: Header, file_key: bytes) -> None:
    try:
        _header_mac(file_key, header.mac_input).verify(header.mac)
    except InvalidSignature:
        raise HeaderError("header MAC does not verify: the header was altered") from None


# --------------------------------------------------------------------------
# STREAM payload
# --------------------------------------------------------------------------

# Bulk file I/O moves this many chunks per system call; the buffers involved
# are reused, so memory stays at a few MiB whatever the file size.
_BATCH_CHUNKS = 16
_BATCH_SIZE = _BATCH_CHUNKS * CHUNK_SIZE

# 11-byte big-endian counter + 1-byte final flag; the top three counter bytes
# stay zero because no file reaches 2**64 chunks.
_NONCE = struct.Struct(">3xQB")


def _payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return _hkdf(file_key, nonce, b"payload")


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


# --------------------------------------------------------------------------
# ASCII armor
# --------------------------------------------------------------------------

_ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
_ARMOR_END = b"-----END AGE ENCRYPTED FILE-----"
_ARMOR_MAX_WHITESPACE = 1024
_ARMOR_LINE_LIMIT = 2048
_ARMOR_FAST_LINES = 1024


@functools.lru_cache(maxsize=8)
def _line_splitter(lines: int) -> struct.Struct:
    return struct.Struct(f"{_COLUMNS}s" * lines)


def _wrap64(encoded: bytes) -> bytes:
    """Insert a LF after every 64 columns of ``encoded`` (a multiple of 64 long)."""
    # Splitting with one struct call keeps the per-line work in C; a Python
    # loop over lines would cost more than the base64 encoding itself.
    return b"\n".join(_line_splitter(len(encoded) // _COLUMNS).unpack(encoded)) + b"\n"


class _ArmorWriter:
    def __init__(self, dst: BinaryIO) -> None:
        self._dst = dst
        self._pending = bytearray()
        dst.write(_ARMOR_BEGIN + b"\n")

    def write(self, data: bytes) -> None:
        pending = self._pending
        pending += data
        whole = len(pending) - len(pending) % _BYTES_PER_LINE
        if whole:
            self._dst.write(_wrap64(binascii.b2a_base64(pending[:whole], newline=False)))
            del pending[:whole]

    def close(self) -> None:
        if self._pending:
            self._dst.write(binascii.b2a_base64(self._pending, newline=True))
            self._pending.clear()
        self._dst.write(_ARMOR_END + b"\n")


class _ArmorReader:
    """Decodes armor lazily, with the same strictness as the reference implementation.

    Bulk data goes through a fast path that validates and decodes a thousand
    uniform 64-column lines with a handful of C-level operations; anything
    irregular (the last line, CRLF mixes, errors) goes line by line.
    """

    def __init__(self, source: _Source) -> None:
        self._source = source
        self._started = False
        self._done = False
        self._error: ArmorError | None = None
        self._eol: bytes | None = None
        self._slow_lines = 0

    def read(self, n: int) -> bytes:
        if self._error is not None:
            raise self._error
        if self._done:
            return b""
        try:
            if not self._started:
                self._begin()
            return self._decode_some()
        except ArmorError as exc:
            # Sticky, so a later read cannot mistake a broken armor for a clean end.
            self._error = exc
            raise

    def _line(self) -> tuple[bytes, bytes]:
        text = self._source.readline(_ARMOR_LINE_LIMIT)
        if not text:
            raise ArmorError("armor is truncated: the END line is missing")
        eol = b""
        if text.endswith(b"\n"):
            text, eol = text[:-1], b"\n"
            if text.endswith(b"\r"):
                text, eol = text[:-1], b"\r\n"
        return text, eol

    def _begin(self) -> None:
        skipped = 0
        while True:
            text, eol = self._line()
            if text.strip():
                break
            skipped += len(text) + len(eol)
            if skipped > _ARMOR_MAX_WHITESPACE:
                raise ArmorError("too much whitespace before the armor")
        if text != _ARMOR_BEGIN:
            raise ArmorError("invalid armor: the first line is not the age BEGIN line")
        self._started = True

    def _decode_some(self) -> bytes:
        if self._eol in (b"\n", b"\r\n") and self._slow_lines == 0:
            data = self._fast_path(self._eol)
            if data:
                return data
        if self._slow_lines:
            self._slow_lines -= 1

        text, eol = self._line()
        if text == _ARMOR_END:
            self._finish()
            return b""
        if len(text) > _COLUMNS:
            raise ArmorError("armor line is longer than 64 columns")
        if not text:
            raise ArmorError("empty line inside the armor")
        try:
            data = binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error:
            raise ArmorError("armor line is not valid base64") from None
        if binascii.b2a_base64(data, newline=False) != text:
            raise ArmorError("armor line is not canonical base64")
        if self._eol is None:
            self._eol = eol
        if len(data) < _BYTES_PER_LINE:
            closing, _ = self._line()
            if closing != _ARMOR_END:
                raise ArmorError("a short armor line must be the last one before the END line")
            try:
                self._finish()
            except ArmorError as exc:
                # Hand out the last line first, like the reference reader does.
                self._error = exc
        return data

    def _fast_path(self, eol: bytes) -> bytes:
        stride = _COLUMNS + len(eol)
        block = self._source.read_exact(stride * _ARMOR_FAST_LINES)
        # Neither the END line ('-') nor a padded last line ('=') can be bulk
        # decoded, so only whole lines before the first of those are candidates.
        cut = len(block)
        for stop in (b"-", b"="):
            found = block.find(stop, 0, cut)
            if found >= 0:
                cut = found
        lines = cut // stride
        used = lines * stride
        view = block[:used]
        ok = lines > 0
        if ok:
            if eol == b"\n":
                ok = view[_COLUMNS::stride] == b"\n" * lines and view.count(b"\n") == lines and b"\r" not in view
            else:
                ok = (
                    view[_COLUMNS::stride] == b"\r" * lines
                    and view[_COLUMNS + 1 :: stride] == b"\n" * lines
                    and view.count(b"\n") == lines
                    and view.count(b"\r") == lines
                )
        if ok:
            try:
                data = binascii.a2b_base64(view.replace(eol, b""), strict_mode=True)
            except binascii.Error:
                ok = False
        if not ok:
            self._source.unread(block)
            # Let the line-by-line path find (and name) the irregular line.
            self._slow_lines = max(lines, 1)
            return b""
        self._source.unread(block[used:])
        return data

    def _finish(self) -> None:
        self._done = True
        trailing = self._source.read_exact(_ARMOR_MAX_WHITESPACE)
        if trailing.strip():
            raise ArmorError("unexpected data after the armor END line")
        if len(trailing) == _ARMOR_MAX_WHITESPACE:
            raise ArmorError("too much whitespace after the armor")


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


# --------------------------------------------------------------------------
# Public streaming API
# --------------------------------------------------------------------------


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


def encrypt(
    plaintext: bytes, recipients: Sequence[Recipient], *, armor: bool = False, rand: Rand = os.urandom
) -> bytes:
    out = io.BytesIO()
    with encrypting_writer(out, recipients, armor=armor, rand=rand) as writer:
        writer.write(plaintext)
    return out.getvalue()


def decrypt(ciphertext: bytes, identities: Sequence[Identity]) -> bytes:
    return decrypting_reader(io.BytesIO(ciphertext), identities).readall()


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _replace_on_success(dst_path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a private temporary file beside ``dst_path``; rename it there only on success."""
    dst = Path(dst_path)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as tmp:
            yield tmp
        os.replace(tmp_name, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _advise_sequential(fd: int) -> None:
    # A larger readahead window helps big sequential reads; not every file
    # (pipes, some filesystems) supports the hint, and it is only a hint.
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


def encrypt_file(
    src_path: str | os.PathLike,
    dst_path: str | os.PathLike,
    recipients: Sequence[Recipient],
    armor: bool = False,
) -> None:
    """Encrypt a file with bounded memory; ``dst_path`` appears only when complete."""
    with open(src_path, "rb", buffering=0) as src, _replace_on_success(dst_path) as out:
        _advise_sequential(src.fileno())
        buffer = memoryview(bytearray(_BATCH_SIZE))
        with encrypting_writer(out, recipients, armor=armor) as writer:
            while read := src.readinto(buffer):
                writer.write(buffer[:read])


def decrypt_file(
    src_path: str | os.PathLike,
    dst_path: str | os.PathLike,
    identities: Sequence[Identity],
) -> None:
    """Decrypt a file with bounded memory; ``dst_path`` is written only if the whole file verifies."""
    with open(src_path, "rb", buffering=0) as src, _replace_on_success(dst_path) as out:
        _advise_sequential(src.fileno())
        # The temporary file is deleted on any error, so the bulk path may
        # write blocks before a later chunk fails.
        _open_payload(src, identities).open_all(out.write, _BATCH_CHUNKS)
