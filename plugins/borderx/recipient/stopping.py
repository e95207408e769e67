"""Stopping a watching fetch on Ctrl-C or SIGTERM without leaving anything half-written.

A stop request interrupts at once what can be dropped (waiting, listing, a download into the private temporary
folder) by raising KeyboardInterrupt; the few steps that must finish once begun (removing that folder, rewriting
the record of what was fetched) run shielded and the stop takes effect when they are done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_shield_depth = 0
_pending = False


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Runs the block to its end even if a stop is asked meanwhile; the stop follows right after."""
    global _shield_depth, _pending
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        if _shield_depth == 0 and _pending:
            _pending = False
            raise KeyboardInterrupt


class StopOnSignal:
    """While active (main thread only), SIGINT and SIGTERM ask for a stop: `requested` is set and the main thread
    is interrupted unless it is in a shielded block."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnSignal:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        global _pending
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        _pending = False

    def _handle(self, signum, frame) -> None:
        global _pending
        if self.requested.is_set():
            return  # already stopping; a second signal must not break into the stop itself
        self.requested.set()
        if _shield_depth:
            _pending = True
            return
        raise KeyboardInterrupt

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; True when a stop was asked."""
        return self.requested.wait(seconds)
