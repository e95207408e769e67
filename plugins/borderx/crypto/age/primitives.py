"""Key derivation and file-key wrapping shared by the recipient types and the payload."""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FILE_KEY_SIZE = 16
TAG_SIZE = 16
PAYLOAD_NONCE_SIZE = 16

_ZERO_NONCE = bytes(12)


def _hkdf(ikm: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return _hkdf(file_key, nonce, b"payload")


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
