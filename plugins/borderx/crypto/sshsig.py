"""OpenSSH file signatures (PROTOCOL.sshsig) with Ed25519 keys.

Signatures made here are byte-for-byte what ``ssh-keygen -Y sign`` produces
(Ed25519 is deterministic), so partners can check them with stock OpenSSH
and an ``allowed_signers`` file, and we can check theirs without shelling out.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from borderx.errors import SignatureError

__all__ = [
    "SignatureError",
    "generate_ed25519_keypair",
    "load_private_key",
    "public_key_line",
    "fingerprint",
    "sign",
    "sign_stream",
    "verify",
    "verify_stream",
    "allowed_signers_line",
    "signer_fingerprint",
]


_MAGIC = b"SSHSIG"
_VERSION = 1
_KEY_TYPE = "ssh-ed25519"
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_COLUMNS = 70  # ssh-keygen wraps signature armor at 70 columns
_HASHES = {"sha256": hashes.SHA256, "sha512": hashes.SHA512}
_DEFAULT_HASH = "sha512"
_PIECE = 64 * 1024


# --------------------------------------------------------------------------
# SSH wire encoding
# --------------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _WireReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def raw(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise SignatureError("signature is malformed: it is truncated")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def uint32(self) -> int:
        return struct.unpack(">I", self.raw(4))[0]

    def string(self) -> bytes:
        return self.raw(self.uint32())

    def end(self) -> None:
        if self._pos != len(self._data):
            raise SignatureError("signature is malformed: unexpected trailing bytes")


def _ed25519_blob(public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _string(_KEY_TYPE.encode()) + _string(raw)


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def _check_comment(comment: str) -> None:
    if "\n" in comment or "\r" in comment:
        raise ValueError("a key comment must be a single line")


def generate_ed25519_keypair(comment: str = "") -> tuple[bytes, str]:
    """Return ``(private key in OpenSSH PEM form, "ssh-ed25519 AAAA… comment")``."""
    _check_comment(comment)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return pem, public_key_line(key, comment)


def load_private_key(pem: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load an Ed25519 key from OpenSSH (``ssh-keygen``) or PKCS#8 PEM text."""
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in pem:
            key = serialization.load_ssh_private_key(pem, password)
        else:
            key = serialization.load_pem_private_key(pem, password)
    except TypeError:
        if password is None:
            raise ValueError("the private key is encrypted; a password is needed") from None
        raise ValueError("the private key is not encrypted, but a password was given") from None
    except UnsupportedAlgorithm as exc:
        if "bcrypt" in str(exc):
            raise ValueError("passphrase-protected OpenSSH keys need the 'bcrypt' package") from None
        raise ValueError("unsupported private key type or key encryption") from None
    except ValueError:
        # The library's own message can quote parts of the input; ours cannot.
        raise ValueError(
            "not a readable OpenSSH or PEM private key (or the password is wrong)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the private key is not an Ed25519 key")
    return key


def public_key_line(private_key: Ed25519PrivateKey, comment: str = "") -> str:
    _check_comment(comment)
    line = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )
    return f"{line} {comment}" if comment else line


def _split_public_line(line: str) -> tuple[str, bytes]:
    fields = line.strip().split(None, 2)
    if len(fields) < 2:
        raise ValueError("not an OpenSSH public key line ('<type> <base64> [comment]')")
    key_type, encoded = fields[0], fields[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("the public key is not valid base64") from None
    try:
        reader = _WireReader(blob)
        embedded = reader.string()
    except SignatureError:
        raise ValueError("the public key blob is malformed") from None
    if embedded != key_type.encode():
        raise ValueError("the public key blob does not match its declared type")
    return key_type, blob


def _parse_ed25519_public(line: str) -> tuple[Ed25519PublicKey, bytes]:
    key_type, blob = _split_public_line(line)
    if key_type != _KEY_TYPE:
        raise ValueError(f"only {_KEY_TYPE} keys are supported")
    reader = _WireReader(blob)
    try:
        reader.string()
        raw = reader.string()
        reader.end()
    except SignatureError:
        raise ValueError("the public key blob is malformed") from None
    if len(raw) != 32:
        raise ValueError("the public key blob is malformed")
    return Ed25519PublicKey.from_public_bytes(raw), blob


def fingerprint(public_key_line: str) -> str:
    """``SHA256:…`` fingerprint, as printed by ``ssh-keygen -lf``."""
    _, blob = _split_public_line(public_key_line)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(blob)
    return "SHA256:" + base64.b64encode(digest.finalize()).decode("ascii").rstrip("=")


_PRINCIPAL = re.compile(r"[^\s\"#][^\s\"]*")
_NAMESPACES = re.compile(r"[^\s\"]+")


def allowed_signers_line(principal: str, public_key_line: str, namespaces: str = "borderx-manifest") -> str:
    """One ``allowed_signers`` line restricting the key to ``namespaces``."""
    if not _PRINCIPAL.fullmatch(principal):
        raise ValueError("a principal must be non-empty, without spaces or quotes, and not start with '#'")
    if not _NAMESPACES.fullmatch(namespaces):
        raise ValueError("namespaces must be non-empty, without spaces or quotes")
    key_type, blob = _split_public_line(public_key_line)
    encoded = base64.b64encode(blob).decode("ascii")
    return f'{principal} namespaces="{namespaces}" {key_type} {encoded}'


# --------------------------------------------------------------------------
# Signing and verification
# --------------------------------------------------------------------------


def _digest_bytes(hash_alg: str, message: bytes) -> bytes:
    digest = hashes.Hash(_HASHES[hash_alg]())
    digest.update(message)
    return digest.finalize()


def _digest_stream(hash_alg: str, stream: BinaryIO) -> bytes:
    digest = hashes.Hash(_HASHES[hash_alg]())
    while piece := stream.read(_PIECE):
        digest.update(piece)
    return digest.finalize()


def _signed_data(namespace: bytes, reserved: bytes, hash_alg: bytes, message_hash: bytes) -> bytes:
    return _MAGIC + _string(namespace) + _string(reserved) + _string(hash_alg) + _string(message_hash)


def _check_namespace(namespace: str) -> bytes:
    if not namespace:
        raise ValueError("the signature namespace must not be empty")
    return namespace.encode("utf-8")


def _sign_digest(private_key: Ed25519PrivateKey, message_hash: bytes, namespace: str, hash_alg: str) -> str:
    ns = _check_namespace(namespace)
    alg = hash_alg.encode("ascii")
    signature = private_key.sign(_signed_data(ns, b"", alg, message_hash))
    blob = (
        _MAGIC
        + struct.pack(">I", _VERSION)
        + _string(_ed25519_blob(private_key.public_key()))
        + _string(ns)
        + _string(b"")
        + _string(alg)
        + _string(_string(_KEY_TYPE.encode()) + _string(signature))
    )
    encoded = base64.b64encode(blob).decode("ascii")
    lines = [encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS)]
    return "\n".join([_BEGIN, *lines, _END]) + "\n"


def _check_hash_alg(hash_alg: str) -> None:
    if hash_alg not in _HASHES:
        raise ValueError(f"hash algorithm must be one of {sorted(_HASHES)}")


def sign(private_key: Ed25519PrivateKey, message: bytes, namespace: str, *, hash_alg: str = _DEFAULT_HASH) -> str:
    """Armored signature of ``message``, identical to ``ssh-keygen -Y sign -n namespace``."""
    _check_hash_alg(hash_alg)
    return _sign_digest(private_key, _digest_bytes(hash_alg, message), namespace, hash_alg)


def sign_stream(
    private_key: Ed25519PrivateKey, stream: BinaryIO, namespace: str, *, hash_alg: str = _DEFAULT_HASH
) -> str:
    """Like :func:`sign`, reading the message from ``stream`` in 64 KiB pieces."""
    _check_hash_alg(hash_alg)
    return _sign_digest(private_key, _digest_stream(hash_alg, stream), namespace, hash_alg)


def _dearmor(signature: str | bytes) -> bytes:
    if isinstance(signature, bytes):
        try:
            signature = signature.decode("ascii")
        except UnicodeDecodeError:
            raise SignatureError("signature armor contains non-ASCII bytes") from None
    lines = [line.strip() for line in signature.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _BEGIN or lines[-1] != _END:
        raise SignatureError("not an SSH signature: the BEGIN/END SSH SIGNATURE lines are missing")
    body = "".join(lines[1:-1])
    try:
        blob = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise SignatureError("signature armor is not valid base64") from None
    # Refusing non-canonical base64 means every changed character is detected,
    # even one that only touches the unused trailing bits.
    if base64.b64encode(blob).decode("ascii") != body:
        raise SignatureError("signature armor is not canonical base64")
    return blob


def _verify(public_key_line: str, signature: str | bytes, namespace: str, digest) -> None:
    public_key, expected_blob = _parse_ed25519_public(public_key_line)
    reader = _WireReader(_dearmor(signature))
    if reader.raw(len(_MAGIC)) != _MAGIC:
        raise SignatureError("not an SSH signature: bad magic preamble")
    if reader.uint32() != _VERSION:
        raise SignatureError("unsupported SSH signature version")
    signer_blob = reader.string()
    ns = reader.string()
    reserved = reader.string()
    hash_alg = reader.string()
    wrapped = reader.string()
    reader.end()

    if ns != namespace.encode("utf-8"):
        raise SignatureError(f"signature was made for a different namespace (expected {namespace!r})")
    if signer_blob != expected_blob:
        raise SignatureError("signature was made by a different key")
    alg = hash_alg.decode("ascii", "replace")
    if alg not in _HASHES:
        raise SignatureError("signature uses an unsupported hash algorithm")

    inner = _WireReader(wrapped)
    if inner.string() != _KEY_TYPE.encode():
        raise SignatureError("signature algorithm does not match the Ed25519 key")
    raw_signature = inner.string()
    inner.end()
    if len(raw_signature) != 64:
        raise SignatureError("signature is malformed: an Ed25519 signature is 64 bytes")

    try:
        public_key.verify(raw_signature, _signed_data(ns, reserved, hash_alg, digest(alg)))
    except InvalidSignature:
        raise SignatureError("signature does not match the message") from None


def verify(public_key_line: str, message: bytes, signature: str | bytes, namespace: str) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is the key's signature of ``message``.

    sha256 and sha512 signatures are accepted. A malformed ``public_key_line``
    is a configuration problem and raises ``ValueError`` instead.
    """
    _verify(public_key_line, signature, namespace, lambda alg: _digest_bytes(alg, message))


def verify_stream(public_key_line: str, stream: BinaryIO, signature: str | bytes, namespace: str) -> None:
    """Like :func:`verify`, reading the message from ``stream`` in 64 KiB pieces."""
    _verify(public_key_line, signature, namespace, lambda alg: _digest_stream(alg, stream))


def signer_fingerprint(signature: str | bytes) -> str:
    """The ``SHA256:…`` fingerprint of the key a signature says made it, read before anything is verified, so
    a refusal can name the key it claims. Raises :class:`SignatureError` for anything but an SSH signature."""
    reader = _WireReader(_dearmor(signature))
    if reader.raw(len(_MAGIC)) != _MAGIC:
        raise SignatureError("not an SSH signature: bad magic preamble")
    if reader.uint32() != _VERSION:
        raise SignatureError("unsupported SSH signature version")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(reader.string())
    return "SHA256:" + base64.b64encode(digest.finalize()).decode("ascii").rstrip("=")
