"""The age header's byte layout: intro, stanzas, canonical unpadded base64, the MAC.

Parsing is strict: every non-canonical spelling is rejected, because a
lenient decoder would accept headers that other implementations refuse.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from .errors import HeaderError, HeaderLimitError
from .primitives import _hkdf
from .source import _Source

_INTRO = b"age-encryption.org/v1\n"
_INTRO_FAMILY = b"age-encryption.org/"
_MAC_PREFIX = b"---"
_STANZA_PREFIX = b"->"
_COLUMNS = 64
_BYTES_PER_LINE = _COLUMNS // 4 * 3
# Argument lines can legitimately be long (post-quantum shares are ~1.5 KiB of
# base64); the caps only stop a hostile file from making us buffer unboundedly.
_MAX_HEADER_LINE = 64 * 1024
# Every stanza costs each identity one key agreement before "no identity matched"
# can be said, so a header of 21,399 X25519 stanzas once took a second to refuse.
# The reference implementations set no limit today: Go age refused more than 20
# recipients until v1.0.0 dropped that cap as too low for teams (FiloSottile/age
# commit 85763d3, issue #139), and rage never had one. 256 is far above any real
# recipient list (a delivery goes to one agency's few keys) while a header at the
# cap costs at most 256 X25519 operations per identity, about 12 ms; a longer one
# is refused while it is read, before any key agreement.
_MAX_STANZAS = 256
# 256 of the largest stanza known here (mlkem768x25519, ~1.7 KiB) fit in about
# 450 KiB; beyond 1 MiB a header is refused (it was 16 MiB: two seconds to read).
_MAX_HEADER_SIZE = 1024 * 1024


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
                raise HeaderLimitError(f"header line is longer than {limit} bytes")
            raise HeaderError("header is truncated")
        if len(raw) + len(text) > _MAX_HEADER_SIZE:
            raise HeaderLimitError(f"header is larger than {_MAX_HEADER_SIZE} bytes")
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

        if len(stanzas) == _MAX_STANZAS:
            raise HeaderLimitError(f"header has more than {_MAX_STANZAS} recipient stanzas")
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
                raise HeaderLimitError(f"header is larger than {_MAX_HEADER_SIZE} bytes")
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
