"""How far a download, check or decryption has come, shown on standard error."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from borderx.text import printable


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    """Bytes done of bytes total on one line redrawn in place on a terminal; one line per delivery elsewhere."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float = 0.2):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._label = ""
        self._last = 0.0
        self._drawn = False
        self._lock = threading.Lock()

    def start(self, n: int, total: int, label: str) -> None:
        self._label = f"[{n}/{total}] {label}"
        if not self.tty:
            print(printable(self._label), file=self.stream, flush=True)

    def update(self, phase: str, done: int, total: int) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval and done < total:
                return
            self._last = now
            pct = f" {100 * done // total:3d}%" if total else ""
            self.stream.write(f"\r\x1b[K{self._label} {phase} {_size(done)} / {_size(total)}{pct}")
            self.stream.flush()
            self._drawn = True

    def end(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


class _Quiet(Progress):
    def __init__(self) -> None:
        super().__init__(sys.stderr, tty=False)

    def start(self, n: int, total: int, label: str) -> None:
        pass
