"""Many small files of one suite validated together: their rows in one GX batch, each file's result
made from its own counts, exactly as validate_extract makes it for the file alone.

GX's cost per batch is mostly fixed (tens of milliseconds for a suite of thirty expectations), so a
thousand files of a few kilobytes spend nearly all their validation time on it. Only a verdict is
asked of the shared batch: the suite's row-level expectations that may stand on a passing verdict
(mostly 1.0, no row condition) pass on the files together exactly when they pass on each file, and a
passing file's counts (rows, empty cells) are its own, known without GX. When the shared batch
fails, it is split in halves until the failing files stand alone, and each of those is validated by
validate_extract, so one bad file is quarantined alone with the report it would get alone.
"""

from __future__ import annotations

import copy
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borderx.validation import gx_run, reading
from borderx.validation.blocks import ChunkResult, Tally
from borderx.validation.combine import Combined, FileRun, map_result, not_evaluated, suite_result
from borderx.validation.extract import _facts_results, data_docs_of, outcome_of, validate_extract
from borderx.validation.gx_setup import new_suite
from borderx.validation.outcome import ValidationOutcome
from borderx.validation.session import GxSession, process_session
from borderx.validation.suite import Plan, columns_named_in
from borderx.validation.uniqueness import bucket_bits, bucketed, key_hashes

log = logging.getLogger(__name__)

# A file this small is one block of validate_extract, and one row group of a shared batch.
SMALL_FILE_BYTES = 1 << 20
# Rows of CSV one shared batch holds at most: GX's frame of it stays a few tens of MiB.
BATCH_BYTES = reading.CHUNK_BYTES


@dataclass
class _Read:
    """One small file read as validate_extract reads it: its header and its only block."""

    index: int
    path: Path
    size: int
    layout: reading.Layout
    block: Any  # a pyarrow RecordBatch with at least one row


def validate_files(
    paths: list[Path],
    suite_path: Path,
    *,
    data_docs_dirs: list[Path | None] | None = None,
    session: GxSession | None = None,
) -> list[ValidationOutcome | None]:
    """The outcome validate_extract gives each file, in order; None where validating it alone
    raised (the caller validates that file again alone, and meets the error there). Data Docs
    pages are given as validate_extract gives them."""
    session = session or process_session()
    docs = data_docs_dirs or [None] * len(paths)
    suite = session.suite_file(suite_path)
    plan = session.plan(suite)
    outcomes: list[ValidationOutcome | None] = [None] * len(paths)
    alone: list[int] = []
    groups: dict[tuple, list[_Read]] = {}
    if _shareable(session, plan):
        for index, path in enumerate(paths):
            read = _read_small(index, Path(path))
            if read is None:
                alone.append(index)
            else:
                groups.setdefault((tuple(read.layout.raw_names), read.block.schema), []).append(read)
    else:
        alone = list(range(len(paths)))
    for group in groups.values():
        for part in _by_size(group):
            alone += _validate_shared(session, suite, plan, part, docs, outcomes)
    for index in sorted(alone):
        outcomes[index] = _alone(paths[index], suite_path, docs[index], session)
    return outcomes


def _alone(path, suite_path, docs_dir, session) -> ValidationOutcome | None:
    try:
        return validate_extract(Path(path), suite_path, data_docs_dir=docs_dir, session=session)
    except Exception:
        return None


def _shareable(session: GxSession, plan: Plan) -> bool:
    """Whether every row-level expectation of the suite may stand on a verdict."""
    if plan.whole:
        return False
    tallied = plan.tallied()
    if any(quick is None for quick in tallied.values()):
        return False
    if plan.chunk_suite is None:
        configs = [e.config for e in plan.distinct.values() if e.kind == "map"]
        plan.chunk_suite = new_suite(plan.name, configs)
    return True


def _read_small(index: int, path: Path) -> _Read | None:
    """The file's header and its one block, read the way validate_extract reads it; None for a
    file that is not small, not one block, empty or unreadable (validated alone)."""
    try:
        size = path.stat().st_size
        if size > SMALL_FILE_BYTES:
            return None
        layout = reading.probe(path)
        units = list(reading.units(path, layout, reading.CHUNK_BYTES))
        if len(units) != 1:
            return None
        kind, *unit = units[0]
        block = reading.joined(unit[0]) if kind == "pieces" else reading.parse_range(
            str(path), unit[0], unit[1], layout.raw_names)
    except (OSError, reading.Unreadable, reading.ReadFailed):
        return None
    if block.num_rows == 0:
        return None
    return _Read(index, path, size, layout, block)


def _by_size(group: list[_Read]) -> list[list[_Read]]:
    parts, part, held = [], [], 0
    for read in group:
        if part and held + read.size > BATCH_BYTES:
            parts.append(part)
            part, held = [], 0
        part.append(read)
        held += read.size
    return parts + ([part] if part else [])


def _validate_shared(session, suite, plan: Plan, group: list[_Read], docs, outcomes) -> list[int]:
    """Fills the outcomes of the files that pass together; returns the indices left to validate alone."""
    if len(group) == 1:
        return [group[0].index]
    if not _all_pass(session, plan, group):
        half = len(group) // 2
        return (_validate_shared(session, suite, plan, group[:half], docs, outcomes)
                + _validate_shared(session, suite, plan, group[half:], docs, outcomes))
    known_columns = columns_named_in(suite)
    for read in group:
        run = _passing_run(session, plan, read)
        outcomes[read.index] = _outcome(session, suite, run, read.path, docs[read.index], known_columns)
    return []


def _all_pass(session, plan: Plan, group: list[_Read]) -> bool:
    import pyarrow as pa

    first = group[0]
    block = pa.concat_batches([read.block for read in group])
    frame = reading.frame(block, first.layout.names, 0)
    del block
    try:
        return gx_run.all_pass(session, frame, plan.chunk_suite)
    except Exception as exc:
        # Each file alone meets the error, or not, as it would have without sharing.
        log.info("a shared validation batch failed (%s); its files are validated apart", type(exc).__name__)
        return False


def _passing_run(session, plan: Plan, read: _Read) -> FileRun:
    """The file's run as validate_extract makes it when every row-level expectation passes."""
    layout, block, rows = read.layout, read.block, read.block.num_rows
    nulls = {n: block.column(i).null_count for i, n in enumerate(layout.names)}
    tallies = {}
    for key, (column, counts_missing) in plan.tallied().items():
        tallies[key] = Tally(elements=rows, missing=nulls.get(column, 0) if counts_missing else None)
    position = {n: i for i, n in enumerate(layout.names)}
    unique = [(e.key, tuple(position[c] for c in e.columns), e.ignore_row_if)
              for e in plan.unique if all(c in position for c in e.columns)]
    bits = bucket_bits(read.size)
    keys = (secrets.token_urlsafe(12), secrets.token_urlsafe(12))
    hashes = {key: bucketed(*key_hashes(block, positions, ignore, keys), bits) for key, positions, ignore in unique}
    combined = Combined([key for key, _, _ in unique], bits)
    try:
        combined.absorb(ChunkResult(rows, tallies, hashes))
        results = _facts(session, plan, layout, combined.rows)
        for entry in plan.unique:
            results[entry.key] = (combined.unique_result(entry) if entry.key in combined.finders
                                  else not_evaluated(entry))
        for key, tally in combined.tallies.items():
            results[key] = map_result(plan.distinct[key], tally)
    finally:
        combined.close()
    return FileRun(suite_result(plan, results), combined.rows, layout.names)


def _facts(session: GxSession, plan: Plan, layout: reading.Layout, rows: int) -> dict[str, Any]:
    """The table expectations' results, which depend on the columns and the row count alone (GX sees a frame
    of the file's shape that holds no data): once per shape, a copy for each file."""
    shape = (plan.chunk_token, tuple(layout.names), rows)
    known = session.facts.get(shape)
    if known is None:
        known = session.remember_facts(shape, _facts_results(session, plan, layout, rows))
    return copy.deepcopy(known)


def _outcome(session, suite, run: FileRun, path: Path, docs_dir: Path | None,
             known_columns: set[str]) -> ValidationOutcome:
    data_docs = data_docs_of(session, run, path, docs_dir, known_columns) if docs_dir is not None else None
    return outcome_of(run, suite, known_columns, data_docs)
