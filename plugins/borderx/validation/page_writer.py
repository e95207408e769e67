"""Data Docs pages of passing small files rendered by a forked process while this one delivers.

Rendering a page costs more than the rest of a small file's validation, and holds the GIL while it runs: in a
process of its own it takes another CPU, not the deliveries' time. The pages are named in the files' outcomes
at once and are on disk when the block that handed them over ends; a page wanted sooner (its file goes to
quarantine, `batched.write_page`) is waited for. Where no child process can be started (a daemonic Celery
worker), or the child fails, the pages are written here, as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from borderx.validation.session import GxSession, process_session

log = logging.getLogger(__name__)


# A writer process pays for its start and for compiling the page templates anew (a quarter of a second or
# more): fewer pages than this at the first hand-over are written here, as are all later ones then.
MIN_PAGES = 32


class PageWriter:
    """A context manager: pages handed over in the block are all written when it ends."""

    def __init__(self, session: GxSession | None = None, *, min_pages: int = MIN_PAGES):
        self.session = session or process_session()
        self.min_pages = min_pages
        self._pool: ProcessPoolExecutor | None = None
        self._first = True

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            for path in list(self.session.pages_apart):
                wait_for_page(self.session, path)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def hand_over(self) -> None:
        """Sends the pages the session holds to the writer process. The process is forked at the first hand-over
        or never: the caller makes that one before it starts threads of its own, none of which may then hold a
        lock the fork would copy."""
        first, self._first = self._first, False
        pending = self.session.pending_pages
        if not pending or not self._started(may_fork=first):
            return
        while pending:
            path, page = pending.popitem()
            try:
                future = self._pool.submit(_write_apart, page)
            except Exception as exc:  # the process could not start: this one writes the pages
                pending[path] = page
                self._give_up(exc)
                return
            self.session.pages_apart[path] = (page, future)

    def _started(self, *, may_fork: bool) -> bool:
        if (self._pool is None and may_fork and not self.session.workers_unavailable
                and len(self.session.pending_pages) >= self.min_pages):
            try:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                                                 initializer=_writer_init)
            except Exception as exc:
                self._give_up(exc)
        return self._pool is not None

    def _give_up(self, exc: Exception) -> None:
        self.session.workers_unavailable = True
        log.info("no page writer process (%s); pages are written in this one", type(exc).__name__)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def wait_for_page(session: GxSession, path: str) -> bool:
    """Waits until the page at `path`, if handed over, is written; writes it here if the writer failed. True if
    it was handed over."""
    from borderx.validation.batched import _write

    held = session.pages_apart.pop(path, None)
    if held is None:
        return False
    page, future = held
    try:
        future.result()
    except Exception as exc:
        log.info("%s: page writer failed (%s); writing the page here", page.path.name, type(exc).__name__)
        _write(session, page)
    return True


def _writer_init() -> None:
    # Ctrl-C is the parent's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_apart(page: Any) -> None:
    # The parent's session (its lock, its renderers) stays the parent's: process_session() is this process's own.
    page.write(process_session())

