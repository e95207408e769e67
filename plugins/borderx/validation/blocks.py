"""One block of a file as one GX batch: the suite's map expectations counted, and the keys of its
uniqueness checks hashed. Runs in this process or in a worker; its result holds no cell value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from borderx.validation import gx_run, reading
from borderx.validation.findings import as_int, raised_exception
from borderx.validation.outcome import MAX_ROWS_REPORTED
from borderx.validation.suite import config_key
from borderx.validation.uniqueness import bucketed, key_hashes

if TYPE_CHECKING:
    from borderx.validation.session import GxSession


@dataclass
class ChunkTask:
    # One GX batch: pyarrow RecordBatches read by the caller, or the byte range of the file to
    # read here (see reading.units). Row numbers in the result count from the batch's first row.
    pieces: list
    path: str
    start: int
    length: int
    raw_names: list[str]
    names: list[str]
    suite_name: str
    chunk_token: str
    chunk_spec: list[dict]
    # Map expectations summed over blocks: key -> (column, whether its nulls count as missing)
    # when a verdict alone may stand for a pass, else None. Results of other keys are kept as
    # GX gave them (whole-file mode only).
    tallied: dict[str, tuple[str | None, bool] | None]
    # (key, column positions, ignore_row_if)
    unique: list[tuple[str, tuple[int, ...], str]]
    hash_keys: tuple[str, str]
    bucket_bits: int = 4


@dataclass
class Tally:
    """One map expectation's result over the blocks read so far."""

    raised: bool = False
    elements: int = 0
    missing: int | None = 0
    unexpected: int = 0
    rows: list[int] = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        self.raised = self.raised or other.raised
        self.elements += other.elements
        if self.missing is None or other.missing is None:
            self.missing = None
        else:
            self.missing += other.missing
        self.unexpected += other.unexpected
        if len(self.rows) < MAX_ROWS_REPORTED:
            self.rows.extend(other.rows[: MAX_ROWS_REPORTED - len(self.rows)])


@dataclass
class ChunkResult:
    rows: int
    tallies: dict[str, Tally]
    # key -> the block's hashed keys, by bucket (see uniqueness.bucketed)
    hashes: dict[str, tuple[Any, Any, Any, Any]]
    # GX results of everything but map expectations; only in whole-file mode, never pickled.
    raw: dict[str, Any] = field(default_factory=dict)
    # The block could not be read: (io_error, too_long), for diagnosis.
    read_error: tuple[str | None, bool] | None = None


def validate_chunk(session: "GxSession", task: ChunkTask, suite=None) -> ChunkResult:
    """Validate one block with the suite given, or else with the one rebuilt from the task."""
    try:
        batch = _read(task)
    except reading.ReadFailed as exc:
        return ChunkResult(0, {}, {}, read_error=(exc.io_error, exc.too_long))
    task.pieces = []
    if batch is not None and batch.num_rows == 0:
        batch = None
    rows = batch.num_rows if batch is not None else 0
    if batch is not None:
        frame = reading.frame(batch, task.names, 0)
        nulls = {n: batch.column(i).null_count for i, n in enumerate(task.names)}
    else:
        frame, nulls = reading.empty_frame(task.names), {}
    if suite is None:
        suite = session.rebuilt_suite(task.chunk_token, task.suite_name, task.chunk_spec)
    result = gx_run.run_gx(session, frame, suite)
    del frame
    tallies: dict[str, Tally] = {}
    raw: dict[str, Any] = {}
    for evr in result.results:
        key = config_key(evr.expectation_config)
        if key in task.tallied:
            tallies[key] = _tally_of(evr, rows, nulls, task.tallied[key])
        else:
            raw[key] = evr
    hashes = {}
    if batch is not None:
        for key, positions, ignore in task.unique:
            h1, h2, where = key_hashes(batch, positions, ignore, task.hash_keys)
            hashes[key] = bucketed(h1, h2, where, task.bucket_bits)
    return ChunkResult(rows, tallies, hashes, raw)


def _read(task: ChunkTask):
    if task.pieces:
        return reading.joined(task.pieces)
    if task.length:
        return reading.parse_range(task.path, task.start, task.length, task.raw_names)
    return None


def _tally_of(
    evr, rows: int, nulls: dict[str, int], quick: tuple[str | None, bool] | None
) -> Tally:
    if raised_exception(evr.exception_info):
        return Tally(raised=True, missing=None)
    result = evr.result or {}
    if quick is not None and evr.success and "element_count" not in result:
        column, counts_missing = quick
        missing = nulls.get(column, 0) if counts_missing else None
        return Tally(elements=rows, missing=missing)
    indices = result.get("partial_unexpected_index_list")
    return Tally(
        elements=as_int(result.get("element_count")) or 0,
        missing=as_int(result.get("missing_count")) if "missing_count" in result else None,
        unexpected=as_int(result.get("unexpected_count")) or 0,
        # Ints only: with a named index GX reports dicts that carry cell values.
        rows=[int(i) for i in indices or [] if isinstance(i, int) and not isinstance(i, bool)][
            :MAX_ROWS_REPORTED
        ],
    )
