"""Validating one extract file: read in blocks, each block one GX batch (in worker processes for
large files), the blocks' results combined into the file's, and the outcome made value-free.
"""

from __future__ import annotations

import collections
import copy
import logging
import secrets
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from borderx.validation import gx_run, reading, workers
from borderx.validation.blocks import ChunkTask, validate_chunk
from borderx.validation.combine import Combined, FileRun, map_result, not_evaluated, suite_result
from borderx.validation.datadocs import render_data_docs, write_page_source
from borderx.validation.findings import failures_of, outcome_statistics
from borderx.validation.gx_setup import new_suite
from borderx.errors import SuiteError, ValidationRunError
from borderx.validation.outcome import ValidationOutcome
from borderx.validation.session import GxSession, process_session
from borderx.validation.suite import Plan, columns_named_in, config_key
from borderx.validation.uniqueness import bucket_bits
from borderx.validation.workers import start_workers

log = logging.getLogger(__name__)


def validate_extract(
    csv_path: Path,
    suite_path: Path,
    *,
    data_docs_dir: Path | None = None,
    session: GxSession | None = None,
) -> ValidationOutcome:
    """Validate one extract; with data_docs_dir, also give the run a Data Docs page there: a failing
    file's is rendered now, a passing file's is left as its source, rendered on first need
    (datadocs.ensure_page). The outcome names the page either way.

    A file that cannot be read as CSV gets no page: GX never ran on it. session defaults to
    this process's own.
    """
    session = session or process_session()
    suite = session.suite_file(suite_path)
    plan = session.plan(suite)
    csv_path = Path(csv_path)
    try:
        run = _validate_file(session, csv_path, suite, plan)
    except reading.Unreadable as exc:
        return _unreadable(suite.name, str(exc))
    except (SuiteError, ValidationRunError):
        raise
    except Exception as exc:
        # The original exception may quote the data; only its type is kept.
        raise ValidationRunError(
            f"{csv_path}: Great Expectations failed while validating ({type(exc).__name__})"
        ) from None

    known_columns = columns_named_in(suite)
    data_docs = None
    if data_docs_dir is not None:
        data_docs = data_docs_of(session, run, csv_path, data_docs_dir, known_columns)
    return outcome_of(run, suite, known_columns, data_docs)


def outcome_of(run: FileRun, suite, known_columns: set[str], data_docs) -> ValidationOutcome:
    """What one file's run found, value-free, whether it was validated alone or with others."""
    return ValidationOutcome(
        suite=suite.name,
        success=bool(run.result.success),
        statistics=outcome_statistics(run.result.statistics),
        failures=failures_of(run.result, suite, set(run.columns), known_columns),
        rows=run.rows,
        data_docs=data_docs,
    )


def _unreadable(suite_name: str, error: str) -> ValidationOutcome:
    return ValidationOutcome(
        suite=suite_name,
        success=False,
        statistics=outcome_statistics(
            {"evaluated_expectations": 0, "successful_expectations": 0,
             "unsuccessful_expectations": 0}
        ),
        failures=[],
        rows=0,
        error=error,
    )


def data_docs_of(
    session: GxSession, run: FileRun, csv_path: Path, out_dir: Path, known_columns: set[str]
) -> str | None:
    """The path of the run's Data Docs page in out_dir. A failing file's page is rendered now: its
    quarantine report sends the officer to it. A passing file's page costs more to render than the
    rest of a small file's validation and is seldom opened: only its source is written."""
    write = write_page_source if run.result.success else render_data_docs
    try:
        page = write(run.result, out_dir, name=csv_path.name, known_columns=known_columns, session=session)
    except Exception as exc:
        # The page is a convenience beside the verdict; failing to write it must not turn into
        # a failed validation, and the exception text may quote data.
        log.warning("%s: Data Docs page not written (%s)", csv_path.name, type(exc).__name__)
        return None
    return str(page)


def _validate_file(session: GxSession, csv_path: Path, suite, plan: Plan) -> FileRun:
    layout = reading.probe(csv_path)
    try:
        size = csv_path.stat().st_size
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise reading.Unreadable(f"{csv_path}: cannot be read ({reason})") from None
    if plan.whole:
        return _validate_whole(session, csv_path, suite, plan, layout)
    pool = start_workers(session, size)
    try:
        return _validate_blocks(session, csv_path, plan, layout, size, pool)
    except BrokenProcessPool:
        # A worker died (killed for memory, say): the file is validated again, here.
        log.warning("%s: a validation worker stopped; validating in this process", csv_path.name)
        pool.shutdown(wait=False, cancel_futures=True)
        pool = None
        return _validate_blocks(session, csv_path, plan, layout, size, None)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _validate_blocks(
    session: GxSession, csv_path: Path, plan: Plan, layout: reading.Layout, size: int, pool
) -> FileRun:
    if plan.chunk_suite is None:
        configs = [e.config for e in plan.distinct.values() if e.kind == "map"]
        plan.chunk_suite = new_suite(plan.name, configs)
    position = {n: i for i, n in enumerate(layout.names)}
    unique = [
        (e.key, tuple(position[c] for c in e.columns), e.ignore_row_if)
        for e in plan.unique
        if all(c in position for c in e.columns)
    ]
    bits = bucket_bits(size)
    hash_keys = (secrets.token_urlsafe(12), secrets.token_urlsafe(12))
    template = _task(csv_path, plan, layout, unique, hash_keys, bits)
    combined = Combined([key for key, _, _ in unique], bits)
    try:
        blocks = _run_blocks(session, csv_path, layout, plan, template, pool, combined)
        if blocks == 0:
            combined.absorb(validate_chunk(session, copy.copy(template), plan.chunk_suite))
        results = _facts_results(session, plan, layout, combined.rows)
        for entry in plan.unique:
            if entry.key in combined.finders:
                results[entry.key] = combined.unique_result(entry)
            else:
                # A key column is missing from the file.
                results[entry.key] = not_evaluated(entry)
        for key, tally in combined.tallies.items():
            results[key] = map_result(plan.distinct[key], tally)
    finally:
        combined.close()
    return FileRun(suite_result(plan, results), combined.rows, layout.names)


def _run_blocks(
    session: GxSession,
    csv_path: Path,
    layout: reading.Layout,
    plan: Plan,
    template: ChunkTask,
    pool,
    combined: Combined,
) -> int:
    """Validate every block of the file, here or in the pool; returns how many there were."""
    pending: collections.deque[Future] = collections.deque()
    blocks = 0
    try:
        for unit in reading.units(csv_path, layout, reading.CHUNK_BYTES):
            task = copy.copy(template)
            if unit[0] == "range":
                task.start, task.length = unit[1], unit[2]
            else:
                task.pieces = unit[1]
            blocks += 1
            if pool is None:
                combined.absorb(validate_chunk(session, task, plan.chunk_suite))
            else:
                pending.append(pool.submit(workers.validate_in_worker, task))
                # One block queued per worker keeps them busy while this process reads.
                while len(pending) > workers.worker_count():
                    combined.absorb(pending.popleft().result())
            del task, unit
        while pending:
            combined.absorb(pending.popleft().result())
    except reading.ReadFailed as exc:
        raise exc.unreadable(csv_path, reading.CHUNK_BYTES) from None
    finally:
        for future in pending:
            future.cancel()
    return blocks


def _facts_results(
    session: GxSession, plan: Plan, layout: reading.Layout, rows: int
) -> dict[str, Any]:
    """GX's results of the expectations that need only the header and the row count."""
    if not plan.facts:
        return {}
    if plan.facts_suite is None:
        plan.facts_suite = new_suite(plan.name, [e.config for e in plan.facts])
    facts = gx_run.run_gx(session, reading.facts_frame(layout.names, rows), plan.facts_suite)
    return {config_key(evr.expectation_config): evr for evr in facts.results}


def _task(
    csv_path: Path,
    plan: Plan,
    layout: reading.Layout,
    unique: list[tuple[str, tuple[int, ...], str]],
    hash_keys: tuple[str, str],
    bits: int = 4,
) -> ChunkTask:
    return ChunkTask(
        pieces=[],
        path=str(csv_path),
        start=0,
        length=0,
        raw_names=layout.raw_names,
        names=layout.names,
        suite_name=plan.name,
        chunk_token=plan.chunk_token,
        chunk_spec=plan.chunk_spec,
        tallied=plan.tallied(),
        unique=unique,
        hash_keys=hash_keys,
        bucket_bits=bits,
    )


def _validate_whole(
    session: GxSession, csv_path: Path, suite, plan: Plan, layout: reading.Layout
) -> FileRun:
    """GX on the whole file as one batch: for suites whose expectations do not combine."""
    import pyarrow as pa

    try:
        chunks = list(reading.batches(csv_path, layout, reading.CHUNK_BYTES))
    except reading.ReadFailed as exc:
        raise exc.unreadable(csv_path, reading.CHUNK_BYTES) from None
    pieces = [piece for chunk in chunks for piece in chunk]
    del chunks
    rows = sum(p.num_rows for p in pieces)
    task = _task(csv_path, plan, layout, [], ("", ""))
    task.pieces = [pa.concat_batches(pieces)] if pieces else []
    part = validate_chunk(session, task, suite)
    results = dict(part.raw)
    for key, tally in part.tallies.items():
        results[key] = map_result(plan.distinct[key], tally)
    del pieces
    return FileRun(suite_result(plan, results), rows, layout.names)
