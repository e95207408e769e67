"""Worker processes that validate the blocks of one large file in parallel, each with its own
GX session."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

from borderx.validation.blocks import ChunkResult, ChunkTask, validate_chunk
from borderx.validation.session import GxSession, process_session

log = logging.getLogger(__name__)

# Smaller files are validated in this process: on a block or two, workers have nothing to share.
PARALLEL_MIN_BYTES = 32 << 20

# Worker processes for large files; None: the CPUs this process may use, at most
# MAX_AUTO_WORKERS, or BORDERX_VALIDATION_WORKERS when set. 1 validates everything in-process.
WORKERS: int | None = None
MAX_AUTO_WORKERS = 4
WORKERS_ENV = "BORDERX_VALIDATION_WORKERS"


def worker_count() -> int:
    if WORKERS is not None:
        return max(1, int(WORKERS))
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            log.warning("%s is not a number; validating in one process", WORKERS_ENV)
            return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cpus))


def start_workers(session: GxSession, file_size: int) -> ProcessPoolExecutor | None:
    """Worker processes for one file, or None to validate it here.

    A pool lives for one file: idle workers would keep about 150 MiB each through the rest of
    the exchange, and starting two costs about 50 ms (they are forked with GX imported).
    """
    workers = worker_count()
    if workers < 2 or file_size < PARALLEL_MIN_BYTES or session.workers_unavailable:
        return None
    pool = None
    try:
        # All are started here, before any pyarrow reader thread exists, never while one may
        # hold a lock the fork would copy.
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init,
        )
        for waiting in [pool.submit(_worker_ready) for _ in range(workers)]:
            waiting.result()
    except Exception as exc:
        session.workers_unavailable = True
        log.warning("validation workers unavailable (%s); validating in this process",
                    type(exc).__name__)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        return None
    return pool


def validate_in_worker(task: ChunkTask) -> ChunkResult:
    """validate_chunk in a worker, with the worker's own session."""
    return validate_chunk(process_session(), task)


def _worker_init() -> None:
    # Ctrl-C is the parent's to handle; a worker's traceback would only add noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A fork copies the parent's session, its context and its lock (perhaps held by another
    # thread); process_session() builds this process's own.
    process_session()


def _worker_ready() -> int:
    session = process_session()
    with session.lock:
        session.context()
    return os.getpid()
