"""age v1 file encryption (https://c2sp.org/age): X25519, hybrid post-quantum
(ML-KEM-768 + X25519) and scrypt recipients.

The package is split in modules that mirror the specification:

* :mod:`.keys`: key strings (bech32 ``age1…`` / ``AGE-SECRET-KEY-1…``,
  ``age1pq1…`` / ``AGE-SECRET-KEY-PQ-1…``) and identity files;
* :mod:`.x25519`, :mod:`.pq`, :mod:`.scrypt`: recipient stanzas, wrapping and
  unwrapping the 16-byte file key;
* :mod:`.format`: the header, with its stanza text encoding, canonical
  unpadded base64 and MAC;
* :mod:`.stream`: the STREAM payload, ChaCha20-Poly1305 over 64 KiB chunks;
* :mod:`.armor`: the ASCII armor, a PEM-like base64 wrapper around a whole age file;
* :mod:`.encrypt`, :mod:`.decrypt`, :mod:`.files`: the streaming and whole-file API.

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

from .decrypt import DecryptingReader, decrypt, decrypting_reader
from .encrypt import EncryptingWriter, encrypt, encrypting_writer
from .errors import AgeError, ArmorError, HeaderError, HeaderLimitError, NoIdentityMatchedError, PayloadError
from .files import decrypt_file, encrypt_file
from .format import Header, Stanza, b64decode_raw, b64encode_raw, encode_header, parse_header
from .interfaces import Identity, Rand, Recipient
from .keys import (
    format_identity_file,
    generate_hybrid_identity,
    generate_x25519_identity,
    parse_identities,
    parse_identity,
    parse_recipient,
)
from .pq import HybridIdentity, HybridRecipient
from .primitives import FILE_KEY_SIZE, PAYLOAD_NONCE_SIZE, TAG_SIZE
from .scrypt import ScryptIdentity, ScryptRecipient
from .stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE
from .x25519 import X25519Identity, X25519Recipient

__all__ = [
    "AgeError",
    "ArmorError",
    "HeaderError",
    "HeaderLimitError",
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
