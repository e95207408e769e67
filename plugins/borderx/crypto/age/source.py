"""Exact reads over a raw stream, as the header parser, armor and payload need them."""

from __future__ import annotations


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
