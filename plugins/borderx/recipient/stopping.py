"""Stopping a watching fetch on Ctrl-C or SIGTERM without leaving anything half-written.

A stop request interrupts at once what can be dropped (waiting, listing, a download into the private temporary
folder) by raising KeyboardInterrupt; the few steps that must finish once begun (removing that folder, rewriting
the record of what was fetched) run inside `shielded()` and the stop takes effect when they are done. Code that
may run under a watch takes `shielded` as a parameter; `contextlib.nullcontext` stands in for it elsewhere.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, ContextManager, Iterator

Shield = Callable[[], ContextManager]


class StopOnSignal:
    """While active (main thread only), SIGINT and SIGTERM ask for a stop: `requested` is set and the main thread
    is interrupted, at once or as soon as it leaves the shielded block it is in."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: dict[int, object] = {}
        self._shield_depth = 0
        self._deferred = False

    def __enter__(self) -> StopOnSignal:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Runs the block to its end even if a stop is asked meanwhile; the stop follows right after."""
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1
            if self._shield_depth == 0 and self._deferred:
                self._deferred = False
                raise KeyboardInterrupt

    def _handle(self, signum, frame) -> None:
        if self.requested.is_set():
            return  # already stopping; a second signal must not break into the stop itself
        self.requested.set()
        if self._shield_depth:
            self._deferred = True
            return
        raise KeyboardInterrupt

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; True when a stop was asked."""
        return self.requested.wait(seconds)
