"""Minimal BIP-173 bech32 codec, as used by age for key strings.

age uses classic bech32 (not bech32m) without BIP-173's 90-character cap, so
a general-purpose Bitcoin library would either reject age strings or accept
segwit-specific forms we do not want.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        # Leftover bits must be zero padding shorter than one input group,
        # otherwise two strings would decode to the same bytes.
        raise ValueError("invalid bech32 padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under ``hrp``; the result has the case of ``hrp``."""
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("invalid bech32 human-readable part")
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise ValueError("mixed-case bech32 human-readable part")
    lower = hrp.lower()
    values = _convert_bits(data, 8, 5, pad=True)
    polymod = _polymod(_hrp_expand(lower) + values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    text = lower + "1" + "".join(CHARSET[v] for v in values + checksum)
    return text if hrp == lower else text.upper()


def decode(text: str) -> tuple[str, bytes]:
    """Decode a bech32 string; returns the human-readable part as written."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed-case bech32 string")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("malformed bech32 string: separator misplaced")
    hrp = text[:pos]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("invalid character in bech32 human-readable part")
    try:
        values = [_CHARSET_REV[c] for c in text[pos + 1 :].lower()]
    except KeyError:
        raise ValueError("invalid character in bech32 data part") from None
    if _polymod(_hrp_expand(hrp.lower()) + values) != 1:
        raise ValueError("invalid bech32 checksum")
    return hrp, bytes(_convert_bits(values[:-6], 5, 8, pad=False))
