"""ASCII armor: the PEM-like base64 wrapper around a whole age file."""

from __future__ import annotations

import binascii
import functools
import struct
from typing import BinaryIO

from .errors import ArmorError
from .format import _BYTES_PER_LINE, _COLUMNS
from .source import _Source

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
