"""Validate a CSV extract against a Great Expectations suite, in memory that does not grow with it.

Everything this module returns, raises or writes is built from the suite, the file name, counts
and row numbers. Cell values never leave it: they would end up in quarantine reports, logs,
tracebacks and Data Docs pages, and extract data must never appear in any of those.

Suites may use the anonymisation gate's expectations (borderx.validation.gate); GX registers those when
the module is imported, which happens before any suite is loaded.

How a file of any size is validated:

- The file is read in blocks of about CHUNK_BYTES (pyarrow, every column as text, empty cells
  as nulls). Each block becomes one GX batch, validated with the suite's row-level expectations
  (the column, column-pair and multicolumn map expectations); their counts are summed over the
  blocks, row numbers are those of the whole file, percentages are over the whole file.
- Table expectations that need only the header and the row count are validated once by GX, on a
  frame of the file's columns and row count that holds no data.
- Uniqueness (of a column, or of a compound key) spans blocks, which a batch cannot see: every
  row's key is reduced to two keyed 64-bit hashes, kept in memory for small files and spilled to
  disk in hash buckets for large ones, and duplicates are found bucket by bucket.
- Files of PARALLEL_MIN_BYTES and more are validated by worker processes, each with its own GX
  context. This process only finds where blocks end (a line break with no quote character
  before it in the block); each worker reads and parses its block itself, and this process
  combines what they return, in file order. From a block holding a quote character on, this
  process parses the rest with pyarrow and hands the workers parsed rows.
- A suite with expectations that cannot be combined across blocks (column aggregates such as a
  mean or a distinct-value set, ordered checks such as increasing values) is validated by GX on
  the whole file as one batch, in memory, as every suite was before.
"""

from __future__ import annotations

import collections
import copy
import csv
import datetime as dt
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import great_expectations
    import numpy
    import pandas
    import pyarrow

# The installed GX (1.24.1) carries no analytics client, but GX releases that do read this
# variable when first imported, so it is set before that import; setdefault leaves an operator's
# explicit choice alone. The context config below also sets analytics_enabled=False.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

# Below WARNING, GX logs per-metric chatter and some exception reprs; an exception raised by
# pandas can quote cell values.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

log = logging.getLogger(__name__)

MAX_ROWS_REPORTED = 20

# SUMMARY yields partial_unexpected_index_list (row positions, capped at partial_unexpected_count)
# without the full unexpected_list that COMPLETE carries. exclude_unexpected_values keeps the
# value lists out of the result; include_unexpected_rows and the index query stay off because both
# would carry whole rows.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_ROWS_REPORTED,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}

# A column map expectation that passes has no unexpected rows, and its other counts (rows, empty
# cells) are known without GX; so GX is first asked only for verdicts, which spares it the index
# lists: about 40% of GX's time on a small file, 3-7% on a large block. What fails runs again at
# RESULT_FORMAT on the same batch.
VERDICT_FORMAT: dict[str, Any] = {"result_format": "BOOLEAN_ONLY"}

# Bytes of CSV per GX batch. GX costs about 0.1 s per batch whatever its size, and a worker's
# memory grows with its block: on 1 GiB with two workers, 8 MiB blocks took 14% longer than
# 16 MiB, and 32 or 64 MiB saved 5% but the processes peaked at 1.1 and 1.4 GiB instead of
# 0.85 GiB (bench/README.md).
CHUNK_BYTES = 16 << 20

# pyarrow's block size. Its streaming reader reads up to 32 blocks ahead of the consumer, which
# nothing in its Python API limits: at 32 MiB blocks that is a whole gigabyte held for nothing.
# GX batches are made of several such blocks instead.
READ_BLOCK_BYTES = 2 << 20

# Smaller files are validated in this process: on a block or two, workers have nothing to share.
PARALLEL_MIN_BYTES = 32 << 20

# Worker processes for large files; None: the CPUs this process may use, at most
# MAX_AUTO_WORKERS, or BORDERX_VALIDATION_WORKERS when set. 1 validates everything in-process.
WORKERS: int | None = None
MAX_AUTO_WORKERS = 4
WORKERS_ENV = "BORDERX_VALIDATION_WORKERS"

# Key hashes held in memory before they spill to disk (24 bytes each).
SPILL_RECORDS = 2_000_000

# The meta marker the suites put on the anonymisation gate's expectations.
GATE_META_KEY = "gate"
GATE_META_VALUE = "anonymisation"

_STATISTICS_KEYS = (
    "evaluated_expectations",
    "successful_expectations",
    "unsuccessful_expectations",
    "success_percent",
)


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str
    column: str | None
    rule: str
    unexpected_count: int | None
    unexpected_percent: float | None
    rows: list[int]
    observed: str | None = None
    # Set for expectations the suite marks meta {"gate": "anonymisation"}; last and defaulted so
    # that positional construction keeps working.
    gate: bool = False


@dataclass(frozen=True)
class ValidationOutcome:
    suite: str
    success: bool
    statistics: dict
    failures: list[FailedExpectation]
    rows: int
    error: str | None = None
    # Path of the Data Docs page written for this validation, when one was asked for.
    data_docs: str | None = None

    def to_dict(self) -> dict:
        return {
            "suite": self.suite,
            "success": self.success,
            "statistics": dict(self.statistics),
            "failures": [asdict(f) for f in self.failures],
            "rows": self.rows,
            "error": self.error,
            "data_docs": self.data_docs,
        }


class SuiteError(Exception):
    """The suite file is missing or is not a usable GX expectation suite."""


class ValidationRunError(RuntimeError):
    """GX itself failed while validating a file that was read successfully."""


# --------------------------------------------------------------------------------------------
# Suite loading


def load_suite(path: Path) -> "great_expectations.ExpectationSuite":
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{path}: suite file not found") from None
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: suite file is not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise SuiteError(f"{path}: suite file cannot be read ({exc.strerror or exc})") from None

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(
            f"{path}: suite file is not valid JSON "
            f"({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None

    if not isinstance(data, dict):
        raise SuiteError(f"{path}: suite file must hold a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise SuiteError(f"{path}: suite has no name")
    raw_expectations = data.get("expectations")
    if not isinstance(raw_expectations, list):
        raise SuiteError(f"{path}: suite has no list of expectations")

    gx = _gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    # ExpectationSuite() logs and silently drops an expectation it cannot build, which would
    # turn a typo in the suite into a check that never runs; so build each one here first.
    configurations = []
    for number, raw in enumerate(raw_expectations, start=1):
        label = f"expectation {number}"
        if isinstance(raw, dict) and isinstance(raw.get("type"), str):
            label += f" ({raw['type']})"
        if not isinstance(raw, dict) or not isinstance(raw.get("kwargs"), dict):
            raise SuiteError(f"{path}: {label} must be an object with 'type' and 'kwargs'")
        regex = raw["kwargs"].get("regex")
        if isinstance(regex, str):
            try:
                re.compile(regex)
            except re.error as exc:
                raise SuiteError(f"{path}: {label} has an invalid regex ({exc.msg})") from None
        try:
            configuration = ExpectationConfiguration(**raw)
            configuration.to_domain_obj()
        except Exception as exc:
            raise SuiteError(
                f"{path}: {label} is not a valid expectation ({_first_line(exc)})"
            ) from None
        configurations.append(configuration)

    try:
        suite = gx.ExpectationSuite(
            name=name,
            expectations=configurations,
            suite_parameters=data.get("suite_parameters"),
            meta=data.get("meta"),
            notes=data.get("notes"),
            id=data.get("id"),
        )
    except Exception as exc:
        raise SuiteError(f"{path}: not a valid expectation suite ({_first_line(exc)})") from None
    if len(suite.expectations) != len(configurations):
        raise SuiteError(f"{path}: some expectations could not be loaded")
    return suite


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Reading the extract
#
# pyarrow's and pandas' own messages quote the offending line, so none of them is ever passed on:
# when pyarrow stops, the file is scanned again by _diagnose, which names the first problem by
# byte offset or line number, the way a whole-file read would have found it.


class _Unreadable(Exception):
    pass


class _ReadFailed(Exception):
    """pyarrow stopped reading; the message is built by _diagnose, never from pyarrow's."""

    def __init__(self, io_error: str | None = None, too_long: bool = False):
        super().__init__(io_error or "")
        self.io_error = io_error
        self.too_long = too_long


_READ_STEP = 1 << 20
# A first line this long is not a header; stopping here bounds what the probe holds.
_MAX_HEADER_BYTES = 16 << 20


@dataclass(frozen=True)
class _Layout:
    """What the start of a file says about it."""

    # As pyarrow reads the header: the keys of its column types.
    raw_names: list[str]
    # As GX sees them: repeated names renamed the way pandas does ("a", "a.1").
    names: list[str]
    # Bytes up to the end of the header line: the first block must hold at least that.
    header_end: int
    # A header with no line ending and nothing after it; pyarrow reads that as an empty file.
    header_only: bool


def _probe(path: Path) -> _Layout:
    """Read the header line; raise _Unreadable for a file that is missing, empty or undecodable."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    name = str(path)
    try:
        with open(path, "rb") as fh:
            head = b""
            at_eof = False
            while True:
                block = fh.read(_READ_STEP)
                if not block:
                    at_eof = True
                else:
                    head += block
                text = _decodable_prefix(head, at_eof)
                if text is None:
                    raise _Unreadable(_diagnose(path))
                body = text.lstrip("\ufeff")
                if not body.strip():
                    if at_eof:
                        raise _Unreadable(f"{name}: file is empty (no header row)")
                    if len(head) > _MAX_HEADER_BYTES:
                        raise _Unreadable(_diagnose(path))
                    continue
                # pyarrow skips empty lines, so the header is the first line with anything on it.
                start = len(text) - len(body.lstrip("\r\n"))
                ends = [i for i in (text.find("\n", start), text.find("\r", start)) if i >= 0]
                if ends or at_eof:
                    break
                if len(head) > _MAX_HEADER_BYTES:
                    raise _Unreadable(_diagnose(path))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _Unreadable(f"{name}: cannot be read ({reason})") from None

    end = min(ends) if ends else len(text)
    header = text[start:end].encode("utf-8")
    try:
        raw_names = pacsv.read_csv(
            pa.BufferReader(header + b"\n"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
        ).schema.names
    except Exception:
        raise _Unreadable(_diagnose(path)) from None
    return _Layout(
        raw_names=raw_names,
        names=_dedup_names(raw_names),
        header_end=len(text[:end].encode("utf-8")) + 1,
        header_only=not ends,
    )


def _decodable_prefix(data: bytes, at_eof: bool) -> str | None:
    """data decoded, leaving out a multi-byte character cut at its end; None if it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not at_eof and exc.end == len(data) and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8")
        return None


def _dedup_names(names: list[str]) -> list[str]:
    # pandas' rule for repeated header names, so GX sees what a whole-file pandas read gave it.
    counts: dict[str, int] = collections.defaultdict(int)
    out = []
    for name in names:
        count = counts[name]
        while count > 0:
            counts[name] = count + 1
            name = f"{name}.{count}"
            count = counts[name]
        out.append(name)
        counts[name] = count + 1
    return out


def _batches(
    path: Path, layout: _Layout, chunk_bytes: int, start: int = 0
) -> Iterator[list["pyarrow.RecordBatch"]]:
    """The file's data rows from byte `start` (0: from the header), every cell as text and empty
    cells as nulls, about chunk_bytes of CSV at a time (as a list of pyarrow's blocks)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if layout.header_only:
        return
    block = max(min(chunk_bytes, READ_BLOCK_BYTES), layout.header_end + 1)
    per_chunk = max(1, round(chunk_bytes / block))
    source = None
    try:
        if start:
            source = pa.OSFile(str(path))
            source.seek(start)
        reader = pacsv.open_csv(
            source if start else str(path),
            read_options=pacsv.ReadOptions(
                block_size=block, use_threads=True, column_names=layout.raw_names if start else None
            ),
            parse_options=_parse_options(),
            convert_options=_convert_options(layout.raw_names),
        )
        pieces = []
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            if batch.num_rows:
                pieces.append(batch)
            if len(pieces) >= per_chunk:
                yield pieces
                pieces = []
        if pieces:
            yield pieces
    except OSError as exc:
        raise _ReadFailed(io_error=exc.strerror or type(exc).__name__) from None
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:
        raise _ReadFailed(too_long="straddl" in str(exc)) from None
    finally:
        if source is not None:
            source.close()


def _parse_options():
    import pyarrow.csv as pacsv

    # With quoted line breaks allowed, where pyarrow's blocks end never changes how a row is
    # read; it costs pyarrow next to nothing.
    return pacsv.ParseOptions(newlines_in_values=True)


def _convert_options(raw_names: list[str]):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        column_types={n: pa.string() for n in raw_names},
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
        check_utf8=True,
    )


def _units(path: Path, layout: _Layout, chunk_bytes: int) -> Iterator[tuple]:
    """The file's data cut into the work of one GX batch each, in file order.

    ("range", start, length): bytes that end at a line break and hold no quote character, so
    that no line break in them can be inside a quoted value; whoever validates the block reads
    and parses it (a worker, in parallel). This process only looks for the cut.
    ("pieces", batches): from the first quote character on, only a CSV parser can tell where a
    row ends, so the rest of the file is parsed here by pyarrow.
    """
    if layout.header_only:
        return
    position = layout.header_end
    try:
        with open(path, "rb") as fh:
            # No bigger than the file: a thousand small files need no 16 MiB buffer each.
            size = os.fstat(fh.fileno()).st_size
            buffer = bytearray(max(1, min(chunk_bytes, size - position + 1)))
            while True:
                fh.seek(position)
                got = fh.readinto(buffer)
                if not got:
                    return
                if buffer.find(b'"', 0, got) >= 0:
                    break
                if got < len(buffer):
                    yield ("range", position, got)
                    return
                cut = buffer.rfind(b"\n", 0, got) + 1
                if cut == 0:
                    break
                yield ("range", position, cut)
                position += cut
    except OSError as exc:
        raise _ReadFailed(io_error=exc.strerror or type(exc).__name__) from None
    for pieces in _batches(path, layout, chunk_bytes, start=position):
        yield ("pieces", pieces)


def _parse_range(path: str, start: int, length: int, raw_names: list[str]) -> "pyarrow.RecordBatch":
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(length)
        if len(data) != length:
            raise _ReadFailed(io_error="file changed while it was read")
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(
                block_size=length + 1, use_threads=False, column_names=raw_names
            ),
            parse_options=_parse_options(),
            convert_options=_convert_options(raw_names),
        )
    except OSError as exc:
        raise _ReadFailed(io_error=exc.strerror or type(exc).__name__) from None
    except (pa.ArrowException, UnicodeDecodeError, ValueError):
        raise _ReadFailed() from None
    del data
    batches = table.to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


def _diagnose(path: Path, too_long: bool = False) -> str:
    """Why the file cannot be read as CSV: its first byte that is not UTF-8, else its first bad
    record."""
    name = str(path)
    try:
        bad = _first_invalid_utf8(path)
        if bad is not None:
            offset, line = bad
            return f"{name}: not valid UTF-8 at byte {offset} (line {line})"
        found = _first_malformed_record(path)
    except OSError as exc:
        return f"{name}: cannot be read ({exc.strerror or type(exc).__name__})"
    if found:
        return found
    if too_long:
        return f"{name}: a record is longer than the reader's block of {CHUNK_BYTES} bytes"
    return f"{name}: not a well-formed CSV file"


def _first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """Byte offset and line of the first byte that is not UTF-8, reading the file in steps."""
    consumed = 0  # bytes before `pending`
    lines = 0  # line breaks before `pending`
    pending = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(_READ_STEP)
            data = pending + block
            if not data:
                return None
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as exc:
                cut = exc.end == len(data) and exc.reason == "unexpected end of data"
                if not block or not cut:
                    return consumed + exc.start, lines + data.count(b"\n", 0, exc.start) + 1
                good = exc.start
            lines += data.count(b"\n", 0, good)
            consumed += good
            pending = data[good:]
            if not block:
                return None


def _first_malformed_record(path: Path) -> str | None:
    """The first record whose field count differs from the header's, or a quoting error."""
    name = str(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        header_fields: int | None = None
        data_row = 0
        try:
            for record in reader:
                if not record:
                    continue
                if header_fields is None:
                    header_fields = len(record)
                    continue
                data_row += 1
                if len(record) != header_fields:
                    return (
                        f"{name}: line {reader.line_num} (data row {data_row}) has "
                        f"{len(record)} fields, header has {header_fields}"
                    )
        except csv.Error:
            return (
                f"{name}: malformed CSV at line {reader.line_num} "
                "(unbalanced quotes or stray characters)"
            )
    return None


def _joined(pieces: list) -> "pyarrow.RecordBatch":
    import pyarrow as pa

    return pieces[0] if len(pieces) == 1 else pa.concat_batches(pieces)


def _frame(batch: "pyarrow.RecordBatch", names: list[str], offset: int) -> "pandas.DataFrame":
    import pandas as pd

    df = batch.to_pandas()
    df.columns = names
    # GX reports unexpected rows by index label, so the labels say which rows they are: the
    # block's own positions when blocks are validated apart, shifted to the file's afterwards.
    df.index = pd.RangeIndex(offset, offset + batch.num_rows)
    return df


def _empty_frame(names: list[str]) -> "pandas.DataFrame":
    import pandas as pd

    return pd.DataFrame({n: pd.array([], dtype="str") for n in names})


def _facts_frame(names: list[str], rows: int) -> "pandas.DataFrame":
    """The file's columns and row count, and not a byte of its data: each column a null array."""
    import pandas as pd
    import pyarrow as pa

    return pd.DataFrame(
        {n: pd.arrays.ArrowExtensionArray(pa.nulls(rows)) for n in names},
        index=pd.RangeIndex(rows),
        copy=False,
    )


# --------------------------------------------------------------------------------------------
# Which expectation is validated where


_MAP_BASES: tuple | None = None
# Map expectations whose verdict on a row depends on the rows around it.
_ORDER_DEPENDENT = frozenset(
    {"expect_column_values_to_be_increasing", "expect_column_values_to_be_decreasing"}
)
_UNIQUENESS = frozenset(
    {"expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"}
)
_FACT_METRICS = frozenset({"table.columns", "table.row_count", "table.column_count"})


@dataclass
class _Entry:
    key: str
    config: Any
    # "map": per batch, counts summed; "facts": once, on the facts frame; "unique": hashed keys;
    # "whole": the suite is validated on the whole file at once.
    kind: str
    mostly: float = 1.0
    # For "map": whether a passing verdict from VERDICT_FORMAT is enough, the column whose nulls
    # make its missing_count, and whether GX reports one for it at all.
    quick: bool = False
    column: str | None = None
    counts_missing: bool = True
    # For "unique": the key's columns and which rows with missing values it leaves out.
    columns: tuple[str, ...] = ()
    ignore_row_if: str = "never"


@dataclass
class _Plan:
    name: str
    entries: list[_Entry]
    whole: bool
    # JSON of the map expectations, which the workers rebuild their batch suite from.
    chunk_spec: list[dict]
    chunk_token: str
    facts: list[_Entry]
    unique: list[_Entry]
    # One entry per distinct expectation (a suite may repeat one).
    distinct: dict[str, _Entry] = field(default_factory=dict)
    chunk_suite: Any = None
    facts_suite: Any = None


def _map_bases() -> tuple:
    global _MAP_BASES
    if _MAP_BASES is None:
        from great_expectations.expectations.expectation import (
            ColumnMapExpectation,
            ColumnPairMapExpectation,
            MulticolumnMapExpectation,
        )

        _MAP_BASES = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    return _MAP_BASES


def _plan(suite) -> _Plan:
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )
    from great_expectations.expectations.expectation import ColumnMapExpectation

    entries: list[_Entry] = []
    for expectation in suite.expectations:
        config = expectation.configuration
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        key = _expectation_key(config.type, kwargs)
        mostly = getattr(expectation, "mostly", None)
        mostly = 1.0 if mostly is None else float(mostly)
        row_condition = getattr(expectation, "row_condition", None)
        is_map = isinstance(expectation, _map_bases())
        if config.type in _UNIQUENESS and not row_condition:
            columns = _domain_columns(kwargs)
            if config.type == "expect_column_values_to_be_unique":
                ignore = "any_value_is_missing"
            else:
                ignore = getattr(expectation, "ignore_row_if", None) or "all_values_are_missing"
            entry = _Entry(
                key, config, "unique", mostly, columns=tuple(columns), ignore_row_if=ignore
            )
        elif is_map and config.type not in _ORDER_DEPENDENT and config.type not in _UNIQUENESS:
            generic = type(expectation)._validate is ColumnMapExpectation._validate
            not_null = isinstance(expectation, ExpectColumnValuesToNotBeNull)
            quick = (generic or not_null) and mostly >= 1.0 and not row_condition
            entry = _Entry(
                key, config, "map", mostly, quick=quick,
                column=kwargs.get("column") if isinstance(kwargs.get("column"), str) else None,
                counts_missing=not not_null,
            )
        elif (
            not is_map
            and not row_condition
            and set(getattr(expectation, "metric_dependencies", ()) or ()) <= _FACT_METRICS
            and getattr(expectation, "metric_dependencies", None)
        ):
            entry = _Entry(key, config, "facts", mostly)
        else:
            entry = _Entry(key, config, "whole", mostly)
        entries.append(entry)

    whole = any(e.kind == "whole" for e in entries)
    distinct = {e.key: e for e in entries}
    chunk_entries = [e for e in distinct.values() if whole or e.kind == "map"]
    chunk_spec = [e.config.to_json_dict() for e in chunk_entries]
    token = json.dumps([suite.name, chunk_spec], sort_keys=True, default=str)
    return _Plan(
        name=suite.name,
        entries=entries,
        whole=whole,
        chunk_spec=chunk_spec,
        chunk_token=token,
        facts=[] if whole else [e for e in distinct.values() if e.kind == "facts"],
        unique=[] if whole else [e for e in distinct.values() if e.kind == "unique"],
        distinct=distinct,
    )


def _suite_from(name: str, configs: list) -> Any:
    gx = _gx()
    return gx.ExpectationSuite(name=name, expectations=list(configs))


# --------------------------------------------------------------------------------------------
# Running GX


_gx_module = None
_context = None
_batch_definition = None
_context_lock = threading.Lock()
# Derived suites (verdict-only and re-run subsets), by the suite they were derived from.
_SPLITS: dict[int, tuple[Any, Any]] = {}
_SUBSETS: dict[tuple, Any] = {}
# Batch suites rebuilt from a plan's JSON, in workers.
_CHUNK_SUITES: dict[str, Any] = {}


def _gx():
    # Imported on first use: importing GX takes seconds, and Airflow imports plugins while
    # parsing DAGs.
    global _gx_module
    if _gx_module is None:
        import great_expectations
        import great_expectations.execution_engine.pandas_execution_engine as pandas_engine

        # Registers the gate's expectations, without which suites using them do not load.
        import borderx.validation.gate  # noqa: F401

        # GX fingerprints every batch under 1 GB by hashing all of its cells (a third of its
        # time on a block), and would materialise the facts frame's null columns to do it. The
        # fingerprint only feeds batch markers, which borderx drops (they would also be a hash
        # of the data in every result).
        pandas_engine.HASH_THRESHOLD = 0
        _gx_module = great_expectations
    return _gx_module


def _get_context():
    """One ephemeral context per process; callers must hold _context_lock."""
    global _context
    if _context is None:
        gx = _gx()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        _context = gx.get_context(mode="ephemeral", project_config=config)
    return _context


def _new_batch(df: "pandas.DataFrame"):
    """A GX batch of df; callers must hold _context_lock, and call _release after validating."""
    global _batch_definition
    # One data source for the life of the process: adding and deleting one per batch costs GX
    # about 15 ms, which on a thousand small files is most of a second per hundred.
    if _batch_definition is None:
        source = _get_context().data_sources.add_pandas(f"extracts-{uuid.uuid4().hex}")
        asset = source.add_dataframe_asset("extract")
        _batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    return _batch_definition.get_batch(batch_parameters={"dataframe": df})


def _release(batch) -> None:
    # The execution engine keeps the batch's frame until another replaces it; a worker holding a
    # block it has finished with would double its memory.
    try:
        batch.data.execution_engine.batch_manager.reset_batch_cache()
    except AttributeError:
        pass


def _split(suite) -> tuple[Any, list]:
    """The part of the suite that may run at VERDICT_FORMAT, and the rest."""
    cached = _SPLITS.get(id(suite))
    if cached is not None and cached[0] is suite:
        return cached[1]
    quick_configs, counted = [], []
    for entry in _plan(suite).entries:
        (quick_configs if entry.quick else counted).append(entry.config)
    quick = _suite_from(suite.name, quick_configs) if quick_configs else None
    split = (quick, counted)
    if len(_SPLITS) > 32:
        _SPLITS.clear()
    _SPLITS[id(suite)] = (suite, split)
    return split


def _subset(name: str, configs: list) -> Any:
    key = (name, tuple(_config_key(c) for c in configs))
    suite = _SUBSETS.get(key)
    if suite is None:
        if len(_SUBSETS) > 64:
            _SUBSETS.clear()
        suite = _SUBSETS[key] = _suite_from(name, configs)
    return suite


def _config_key(config) -> str:
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    return _expectation_key(config.type, kwargs)


def _run_gx(df: "pandas.DataFrame", suite) -> Any:
    """Validate df as one GX batch; returns GX's suite result.

    Expectations whose verdict is enough when they pass are asked for it at VERDICT_FORMAT;
    those that fail, and the rest, run at RESULT_FORMAT on the same batch, and their results
    replace the verdicts.
    """
    quick, counted = _split(suite)
    with _context_lock:
        batch = _new_batch(df)
        try:
            results: list = []
            outcome = None
            redo = list(counted)
            if quick is not None:
                outcome = batch.validate(quick, result_format=VERDICT_FORMAT)
                by_key = {_config_key(c): c for c in quick.expectation_configurations}
                for evr in outcome.results:
                    if evr.success:
                        results.append(evr)
                    else:
                        redo.append(by_key[_config_key(evr.expectation_config)])
            if redo or outcome is None:
                outcome = batch.validate(_subset(suite.name, redo), result_format=RESULT_FORMAT)
                results.extend(outcome.results)
        finally:
            _release(batch)
    successful = sum(1 for r in results if r.success)
    outcome.results = results
    outcome.success = successful == len(results)
    outcome.statistics = _suite_statistics(successful, len(results))
    return outcome


def _suite_statistics(successful: int, evaluated: int) -> dict:
    return {
        "evaluated_expectations": evaluated,
        "successful_expectations": successful,
        "unsuccessful_expectations": evaluated - successful,
        "success_percent": successful / evaluated * 100 if evaluated else None,
    }


# --------------------------------------------------------------------------------------------
# One block: GX on the map expectations, and the hashed keys of the uniqueness checks


@dataclass
class _ChunkTask:
    # One GX batch: pyarrow RecordBatches read by the caller, or the byte range of the file to
    # read here (see _units). Row numbers in the result count from the batch's first row.
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
class _Tally:
    """One map expectation's result over the blocks read so far."""

    raised: bool = False
    elements: int = 0
    missing: int | None = 0
    unexpected: int = 0
    rows: list[int] = field(default_factory=list)

    def add(self, other: "_Tally") -> None:
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
class _ChunkResult:
    rows: int
    tallies: dict[str, _Tally]
    # key -> the block's hashed keys, by bucket (see _bucketed)
    hashes: dict[str, tuple[Any, Any, Any, Any]]
    # GX results of everything but map expectations; only in whole-file mode, never pickled.
    raw: dict[str, Any] = field(default_factory=dict)
    # The block could not be read: (io_error, too_long), for _diagnose.
    read_error: tuple[str | None, bool] | None = None


def _chunk_suite(task: _ChunkTask, suite=None):
    if suite is not None:
        return suite
    cached = _CHUNK_SUITES.get(task.chunk_token)
    if cached is None:
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        configs = [ExpectationConfiguration(**d) for d in task.chunk_spec]
        cached = _suite_from(task.suite_name, configs)
        if len(_CHUNK_SUITES) > 8:
            _CHUNK_SUITES.clear()
        _CHUNK_SUITES[task.chunk_token] = cached
    return cached


def _validate_chunk(task: _ChunkTask, suite=None) -> _ChunkResult:
    try:
        if task.pieces:
            batch = _joined(task.pieces)
        elif task.length:
            batch = _parse_range(task.path, task.start, task.length, task.raw_names)
        else:
            batch = None
    except _ReadFailed as exc:
        return _ChunkResult(0, {}, {}, read_error=(exc.io_error, exc.too_long))
    task.pieces = []
    if batch is not None and batch.num_rows == 0:
        batch = None
    rows = batch.num_rows if batch is not None else 0
    frame = _frame(batch, task.names, 0) if batch is not None else _empty_frame(task.names)
    nulls = {}
    if batch is not None:
        nulls = {n: batch.column(i).null_count for i, n in enumerate(task.names)}
    result = _run_gx(frame, _chunk_suite(task, suite))
    del frame
    tallies: dict[str, _Tally] = {}
    raw: dict[str, Any] = {}
    for evr in result.results:
        key = _config_key(evr.expectation_config)
        if key in task.tallied:
            tallies[key] = _tally_of(evr, rows, nulls, task.tallied[key])
        else:
            raw[key] = evr
    hashes = {}
    if batch is not None:
        for key, positions, ignore in task.unique:
            h1, h2, where = _key_hashes(batch, positions, ignore, task.hash_keys)
            hashes[key] = _bucketed(h1, h2, where, task.bucket_bits)
    return _ChunkResult(rows, tallies, hashes, raw)


def _tally_of(
    evr, rows: int, nulls: dict[str, int], quick: tuple[str | None, bool] | None
) -> _Tally:
    if _raised_exception(evr.exception_info):
        return _Tally(raised=True, missing=None)
    result = evr.result or {}
    if quick is not None and evr.success and "element_count" not in result:
        column, counts_missing = quick
        missing = nulls.get(column, 0) if counts_missing else None
        return _Tally(elements=rows, missing=missing)
    indices = result.get("partial_unexpected_index_list")
    return _Tally(
        elements=_as_int(result.get("element_count")) or 0,
        missing=_as_int(result.get("missing_count")) if "missing_count" in result else None,
        unexpected=_as_int(result.get("unexpected_count")) or 0,
        # Ints only: with a named index GX reports dicts that carry cell values.
        rows=[int(i) for i in indices or [] if isinstance(i, int) and not isinstance(i, bool)][
            :MAX_ROWS_REPORTED
        ],
    )


# --------------------------------------------------------------------------------------------
# Uniqueness across blocks

# Hashes are keyed with secrets drawn per validation and never stored: the spilled files are
# then no dictionary of the (low-entropy) keys that went into them.
_NULL_HASH = 0x9E3779B97F4A7C15


def _key_hashes(batch, positions: tuple[int, ...], ignore_row_if: str, keys: tuple[str, str]):
    """Two 64-bit hashes of each row's key, and which rows they are (None: all of them)."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    n = batch.num_rows
    h1 = np.full(n, 0x345678, dtype=np.uint64)
    h2 = h1.copy()
    nulls = np.zeros(n, dtype=np.uint8)
    multiplier = np.uint64(1000003)
    for step, position in enumerate(positions):
        encoded = pc.dictionary_encode(batch.column(position))
        values = encoded.dictionary.to_numpy(zero_copy_only=False)
        codes = encoded.indices
        if codes.null_count:
            nulls += np.asarray(codes.is_null(), dtype=np.uint8)
            codes = pc.fill_null(codes, len(values))
        codes = codes.to_numpy(zero_copy_only=False)
        for h, key in ((h1, keys[0]), (h2, keys[1])):
            table = np.empty(len(values) + 1, dtype=np.uint64)
            if len(values):
                table[:-1] = pd.util.hash_array(values, hash_key=key, categorize=False)
            table[-1] = _NULL_HASH
            h ^= table[codes]
            h *= multiplier
        # The multiplier changes with the position, so (a, b) and (b, a) differ.
        multiplier += np.uint64(82520 + 2 * (len(positions) - step))
    if ignore_row_if == "all_values_are_missing":
        keep = nulls < len(positions)
    elif ignore_row_if == "any_value_is_missing":
        keep = nulls == 0
    else:
        return h1, h2, None
    if keep.all():
        return h1, h2, None
    return h1[keep], h2[keep], np.flatnonzero(keep).astype(np.uint64)


def _bucketed(h1, h2, where, bits: int):
    """The block's hashed keys with their row numbers in the block, grouped by the top bits of h1.

    Done where blocks are validated in parallel, so that spilling to disk is only writing.
    Returns (bounds, h1, h2, rows): bucket b is [bounds[b], bounds[b + 1]).
    """
    import numpy as np

    rows = np.arange(len(h1), dtype=np.uint64) if where is None else where
    buckets = (h1 >> np.uint64(64 - bits)).astype(np.uint16)
    order = np.argsort(buckets, kind="stable")
    bounds = np.searchsorted(buckets[order], np.arange((1 << bits) + 1))
    return bounds, h1[order], h2[order], rows[order]


def _bucket_bits(file_size: int) -> int:
    # At least about 32 bytes of CSV per row and 24 bytes per hashed key: at most about 32 MiB
    # of keys per bucket, whatever the file's size, within 16 to 4096 buckets.
    keys = max(1, file_size // 32)
    return max(4, min(12, math.ceil(math.log2(max(2, keys * 24 / (32 << 20))))))


class _DuplicateFinder:
    """Rows whose key appears more than once, in memory that does not grow with the file.

    Hashed keys are held until SPILL_RECORDS, then appended to one set of files per bucket (the
    top bits of h1); equal keys share a bucket, so each bucket is checked on its own.
    """

    def __init__(self, bits: int):
        self._bits = bits
        self._parts: list = []
        self._held = 0
        self._kept = 0
        self._dir: str | None = None

    def add(self, part) -> None:
        self._parts.append(part)
        self._held += len(part[1])
        self._kept += len(part[1])
        if self._held >= SPILL_RECORDS:
            self._spill()

    @property
    def considered(self) -> int:
        return self._kept

    def _spill(self) -> None:
        if not self._parts:
            return
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="borderx-keys-")
        for bucket in range(1 << self._bits):
            slices = [
                (h1[low:high], h2[low:high], rows[low:high])
                for bounds, h1, h2, rows in self._parts
                for low, high in [(bounds[bucket], bounds[bucket + 1])]
                if low < high
            ]
            if not slices:
                continue
            stem = os.path.join(self._dir, f"{bucket:04x}")
            for field_no, suffix in enumerate((".h1", ".h2", ".row")):
                with open(stem + suffix, "ab") as fh:
                    for piece in slices:
                        piece[field_no].tofile(fh)
        self._parts, self._held = [], 0

    def _groups(self) -> Iterator[tuple]:
        import numpy as np

        if self._dir is None:
            if self._parts:
                yield tuple(np.concatenate([p[i] for p in self._parts]) for i in (1, 2, 3))
            return
        self._spill()
        for stem in sorted({name.split(".")[0] for name in os.listdir(self._dir)}):
            path = os.path.join(self._dir, stem)
            yield tuple(
                np.fromfile(path + suffix, dtype=np.uint64) for suffix in (".h1", ".h2", ".row")
            )

    def duplicates(self) -> tuple[int, list[int]]:
        """How many rows share their key with another, and the first of them (0-based)."""
        import numpy as np

        count = 0
        first = np.empty(0, dtype=np.uint64)
        for h1, h2, rows in self._groups():
            found = _duplicated_rows(h1, h2, rows)
            if len(found):
                count += len(found)
                first = np.sort(np.concatenate([first, found]))[:MAX_ROWS_REPORTED]
        return count, [int(r) for r in first]

    def close(self) -> None:
        self._parts = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _duplicated_rows(h1, h2, rows) -> "numpy.ndarray":
    import numpy as np

    empty = np.empty(0, dtype=np.uint64)
    if len(h1) < 2:
        return empty
    # Sorting the first hash alone settles the usual case, a bucket without a repeated key.
    ordered = np.sort(h1)
    repeated = ordered[1:] == ordered[:-1]
    if not repeated.any():
        return empty
    candidate = np.isin(h1, np.unique(ordered[1:][repeated]))
    c1, c2, crows = h1[candidate], h2[candidate], rows[candidate]
    order = np.lexsort((c2, c1))
    c1, c2, crows = c1[order], c2[order], crows[order]
    same = (c1[1:] == c1[:-1]) & (c2[1:] == c2[:-1])
    member = np.zeros(len(c1), dtype=bool)
    member[1:] |= same
    member[:-1] |= same
    return crows[member]


# --------------------------------------------------------------------------------------------
# Worker processes


# Set once worker processes could not be started here (a daemonic process, such as a Celery
# prefork worker, may not have children): every later file is validated in this process.
_workers_unavailable = False


def _worker_count() -> int:
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


def _worker_init() -> None:
    global _context, _batch_definition, _context_lock
    # Ctrl-C is the parent's to handle; a worker's traceback would only add noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A fork copies the parent's context and its lock (perhaps held by another thread):
    # each worker builds its own.
    _context = None
    _batch_definition = None
    _context_lock = threading.Lock()
    _SPLITS.clear()
    _SUBSETS.clear()
    _CHUNK_SUITES.clear()


def _worker_ready() -> int:
    _gx()
    with _context_lock:
        _get_context()
    return os.getpid()


def _start_workers(file_size: int) -> ProcessPoolExecutor | None:
    """Worker processes for one file, or None to validate it here.

    A pool lives for one file: idle workers would keep about 150 MiB each through the rest of
    the exchange, and starting two costs about 50 ms (they are forked with GX imported).
    """
    global _workers_unavailable
    workers = _worker_count()
    if workers < 2 or file_size < PARALLEL_MIN_BYTES or _workers_unavailable:
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
        _workers_unavailable = True
        log.warning("validation workers unavailable (%s); validating in this process",
                    type(exc).__name__)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        return None
    return pool


# --------------------------------------------------------------------------------------------
# One file


@dataclass
class _FileRun:
    result: Any  # an ExpectationSuiteValidationResult combined over the blocks
    rows: int
    columns: list[str]


def _validate_file(csv_path: Path, suite, plan: _Plan) -> _FileRun:
    layout = _probe(csv_path)
    try:
        size = csv_path.stat().st_size
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _Unreadable(f"{csv_path}: cannot be read ({reason})") from None
    if plan.whole:
        return _validate_whole(csv_path, suite, plan, layout)
    pool = _start_workers(size)
    try:
        return _validate_blocks(csv_path, plan, layout, size, pool)
    except BrokenProcessPool:
        # A worker died (killed for memory, say): the file is validated again, here.
        log.warning("%s: a validation worker stopped; validating in this process", csv_path.name)
        pool.shutdown(wait=False, cancel_futures=True)
        pool = None
        return _validate_blocks(csv_path, plan, layout, size, None)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _validate_blocks(csv_path: Path, plan: _Plan, layout: _Layout, size: int, pool) -> _FileRun:
    import numpy as np

    if plan.chunk_suite is None:
        configs = [e.config for e in plan.distinct.values() if e.kind == "map"]
        plan.chunk_suite = _suite_from(plan.name, configs)
    position = {n: i for i, n in enumerate(layout.names)}
    unique = []
    missing_key_columns = set()
    for entry in plan.unique:
        if all(c in position for c in entry.columns):
            columns = tuple(position[c] for c in entry.columns)
            unique.append((entry.key, columns, entry.ignore_row_if))
        else:
            missing_key_columns.add(entry.key)
    bits = _bucket_bits(size)
    template = _ChunkTask(
        pieces=[],
        path=str(csv_path),
        start=0,
        length=0,
        raw_names=layout.raw_names,
        names=layout.names,
        suite_name=plan.name,
        chunk_token=plan.chunk_token,
        chunk_spec=plan.chunk_spec,
        tallied=_tallied(plan),
        unique=unique,
        hash_keys=(secrets.token_urlsafe(12), secrets.token_urlsafe(12)),
        bucket_bits=bits,
    )
    tallies: dict[str, _Tally] = {}
    finders = {key: _DuplicateFinder(bits) for key, _, _ in unique}
    rows = 0
    blocks = 0

    def absorb(part: _ChunkResult) -> None:
        nonlocal rows
        if part.read_error is not None:
            raise _ReadFailed(*part.read_error)
        for key, tally in part.tallies.items():
            tally.rows = [rows + r for r in tally.rows]
            tallies.setdefault(key, _Tally()).add(tally)
        for key, (bounds, h1, h2, where) in part.hashes.items():
            finders[key].add((bounds, h1, h2, where + np.uint64(rows)))
        rows += part.rows

    pending: collections.deque[Future] = collections.deque()
    try:
        try:
            for unit in _units(csv_path, layout, CHUNK_BYTES):
                task = copy.copy(template)
                if unit[0] == "range":
                    task.start, task.length = unit[1], unit[2]
                else:
                    task.pieces = unit[1]
                blocks += 1
                if pool is None:
                    absorb(_validate_chunk(task, plan.chunk_suite))
                else:
                    pending.append(pool.submit(_validate_chunk, task))
                    # One block queued per worker keeps them busy while this process reads.
                    while len(pending) > _worker_count():
                        absorb(pending.popleft().result())
                del task, unit
            while pending:
                absorb(pending.popleft().result())
        except _ReadFailed as exc:
            if exc.io_error:
                raise _Unreadable(f"{csv_path}: cannot be read ({exc.io_error})") from None
            raise _Unreadable(_diagnose(csv_path, exc.too_long)) from None
        finally:
            for future in pending:
                future.cancel()
        if blocks == 0:
            absorb(_validate_chunk(copy.copy(template), plan.chunk_suite))

        results: dict[str, Any] = {}
        if plan.facts:
            if plan.facts_suite is None:
                plan.facts_suite = _suite_from(plan.name, [e.config for e in plan.facts])
            facts = _run_gx(_facts_frame(layout.names, rows), plan.facts_suite)
            for evr in facts.results:
                results[_config_key(evr.expectation_config)] = evr
        for entry in plan.unique:
            if entry.key in missing_key_columns:
                results[entry.key] = _not_evaluated(entry)
            else:
                finder = finders[entry.key]
                count, first = finder.duplicates()
                considered = finder.considered
                tally = _Tally(
                    elements=rows, missing=rows - considered, unexpected=count, rows=first
                )
                results[entry.key] = _map_result(entry, tally)
        for key, tally in tallies.items():
            results[key] = _map_result(plan.distinct[key], tally)
    finally:
        for finder in finders.values():
            finder.close()
    return _FileRun(_suite_result(plan, results), rows, layout.names)


def _tallied(plan: _Plan) -> dict[str, tuple[str | None, bool] | None]:
    return {
        e.key: (e.column, e.counts_missing) if e.quick else None
        for e in plan.distinct.values()
        if e.kind == "map"
    }


def _validate_whole(csv_path: Path, suite, plan: _Plan, layout: _Layout) -> _FileRun:
    """GX on the whole file as one batch: for suites whose expectations do not combine."""
    import pyarrow as pa

    try:
        batches = list(_batches(csv_path, layout, CHUNK_BYTES))
    except _ReadFailed as exc:
        if exc.io_error:
            raise _Unreadable(f"{csv_path}: cannot be read ({exc.io_error})") from None
        raise _Unreadable(_diagnose(csv_path, exc.too_long)) from None
    pieces = [piece for chunk in batches for piece in chunk]
    del batches
    rows = sum(p.num_rows for p in pieces)
    task = _ChunkTask(
        pieces=[pa.concat_batches(pieces)] if pieces else [],
        path=str(csv_path),
        start=0,
        length=0,
        raw_names=layout.raw_names,
        names=layout.names,
        suite_name=plan.name,
        chunk_token=plan.chunk_token,
        chunk_spec=plan.chunk_spec,
        tallied=_tallied(plan),
        unique=[],
        hash_keys=("", ""),
    )
    part = _validate_chunk(task, suite)
    results = dict(part.raw)
    for key, tally in part.tallies.items():
        results[key] = _map_result(plan.distinct[key], tally)
    del pieces
    return _FileRun(_suite_result(plan, results), rows, layout.names)


def _map_result(entry: _Entry, tally: _Tally):
    """GX's result for a map expectation, from counts over the whole file (GX's own arithmetic)."""
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    if tally.raised:
        return _not_evaluated(entry)
    elements, unexpected, missing = tally.elements, tally.unexpected, tally.missing
    considered = elements - missing if missing is not None else elements
    if elements == 0 or considered == 0:
        success = True
    else:
        success = (considered - unexpected) / considered >= entry.mostly
    percent = percent_total = missing_percent = None
    if elements > 0:
        percent_total = unexpected / elements * 100
        if missing is not None:
            missing_percent = missing / elements * 100
            percent = unexpected / considered * 100 if considered > 0 else None
        else:
            percent = percent_total
    result: dict[str, Any] = {
        "element_count": elements,
        "unexpected_count": unexpected,
        "unexpected_percent": percent,
        "partial_unexpected_index_list": sorted(tally.rows)[:MAX_ROWS_REPORTED],
    }
    if missing is not None:
        result.update(
            missing_count=missing,
            missing_percent=missing_percent,
            unexpected_percent_total=percent_total,
            unexpected_percent_nonmissing=percent,
        )
    return ExpectationValidationResult(
        success=success,
        expectation_config=entry.config,
        result=result,
        exception_info={
            "raised_exception": False,
            "exception_message": None,
            "exception_traceback": None,
        },
    )


def _not_evaluated(entry: _Entry):
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    return ExpectationValidationResult(
        success=False,
        expectation_config=entry.config,
        result={},
        exception_info={
            "raised_exception": True,
            "exception_message": "not evaluated",
            "exception_traceback": None,
        },
    )


def _suite_result(plan: _Plan, results: dict[str, Any]):
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
    )

    ordered = [results[entry.key] for entry in plan.entries]
    successful = sum(1 for r in ordered if r.success)
    return ExpectationSuiteValidationResult(
        success=successful == len(ordered),
        results=ordered,
        suite_name=plan.name,
        statistics=_suite_statistics(successful, len(ordered)),
        meta={},
    )


_PLANS: dict[int, tuple[Any, _Plan]] = {}


def _plan_for(suite) -> _Plan:
    cached = _PLANS.get(id(suite))
    if cached is not None and cached[0] is suite:
        return cached[1]
    plan = _plan(suite)
    if len(_PLANS) > 32:
        _PLANS.clear()
    _PLANS[id(suite)] = (suite, plan)
    return plan


_SUITES: dict[tuple, Any] = {}


def _load_suite_cached(path: Path):
    """load_suite, once per suite file content: a thousand small files share one plan."""
    path = Path(path)
    try:
        key = (str(path.resolve()), hashlib.sha256(path.read_bytes()).hexdigest())
    except OSError:
        return load_suite(path)
    suite = _SUITES.get(key)
    if suite is None:
        suite = load_suite(path)
        if len(_SUITES) > 16:
            _SUITES.clear()
        _SUITES[key] = suite
    return suite


def validate_extract(
    csv_path: Path, suite_path: Path, *, data_docs_dir: Path | None = None
) -> ValidationOutcome:
    """Validate one extract; with data_docs_dir, also write the run's Data Docs page there.

    A file that cannot be read as CSV gets no page: GX never ran on it.
    """
    suite = _load_suite_cached(suite_path)
    plan = _plan_for(suite)
    csv_path = Path(csv_path)
    try:
        run = _validate_file(csv_path, suite, plan)
    except _Unreadable as exc:
        return ValidationOutcome(
            suite=suite.name,
            success=False,
            statistics=_statistics(
                {
                    "evaluated_expectations": 0,
                    "successful_expectations": 0,
                    "unsuccessful_expectations": 0,
                }
            ),
            failures=[],
            rows=0,
            error=str(exc),
        )
    except (SuiteError, ValidationRunError):
        raise
    except Exception as exc:
        # The original exception may quote the data; only its type is kept.
        raise ValidationRunError(
            f"{csv_path}: Great Expectations failed while validating ({type(exc).__name__})"
        ) from None

    result = run.result
    known_columns = _columns_named_in(suite)
    present_columns = set(run.columns)
    order = _suite_order(suite)
    failures: list[tuple[int, FailedExpectation]] = []
    for evr in result.results:
        if evr.success:
            continue
        config = evr.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        position = order.get(_expectation_key(config.type, kwargs), len(order))
        failure = _failure(
            config.type,
            kwargs,
            config.description,
            evr,
            known_columns,
            present_columns,
            gate=_is_gate(config.meta),
        )
        failures.append((position, failure))
    failures.sort(key=lambda item: item[0])

    data_docs: str | None = None
    if data_docs_dir is not None:
        try:
            page = render_data_docs(
                result, data_docs_dir, name=csv_path.name, known_columns=known_columns
            )
            data_docs = str(page)
        except Exception as exc:
            # The page is a convenience beside the verdict; failing to write it must not turn
            # into a failed validation, and the exception text may quote data.
            log.warning(
                "%s: Data Docs page not written (%s)", csv_path.name, type(exc).__name__
            )

    return ValidationOutcome(
        suite=suite.name,
        success=bool(result.success),
        statistics=_statistics(result.statistics),
        failures=[f for _, f in failures],
        rows=run.rows,
        data_docs=data_docs,
    )


def _is_gate(meta: Any) -> bool:
    return isinstance(meta, dict) and meta.get(GATE_META_KEY) == GATE_META_VALUE


# --------------------------------------------------------------------------------------------
# Data Docs

_SAFE_RESULT_NUMBERS = (
    "element_count",
    "missing_count",
    "missing_percent",
    "unexpected_count",
    "unexpected_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
)


def render_data_docs(
    result: Any,
    out_dir: Path,
    *,
    name: str | None = None,
    known_columns: set[str] | None = None,
) -> Path:
    """Write the GX Data Docs page of one validation result into out_dir; return its path.

    result is the ExpectationSuiteValidationResult GX returned. The page is rendered by GX's
    ValidationResultsPageRenderer and DefaultJinjaPageView from a copy of it that keeps only
    counts, percentages, row positions and column names the suite itself uses, whatever result
    format produced it. The page is one HTML file: styles are inlined, scripts and fonts come
    from CDNs. It is named "<name>.validation.html", name defaulting to the suite's.
    """
    if known_columns is None:
        known_columns = _columns_named_in_results(result)
    safe = _value_free_copy(result, known_columns, name or result.suite_name)

    renderer, view = _page_renderers()
    document = renderer.render(safe)
    html = view.render(document, show_how_to_buttons=False)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name or result.suite_name) or "validation"
    page = out_dir / f"{stem}.validation.html"
    partial = page.with_name(f".{page.name}.{uuid.uuid4().hex}.part")
    try:
        partial.write_text(html, encoding="utf-8")
        os.replace(partial, page)
    finally:
        partial.unlink(missing_ok=True)
    return page


_renderers: tuple[Any, Any] | None = None


def _page_renderers() -> tuple[Any, Any]:
    # A page view owns a Jinja environment, which compiles the page's templates on first use and
    # keeps them: a view per page spent about 250 ms per extract compiling the same templates.
    global _renderers
    if _renderers is None:
        _gx()
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        _renderers = (ValidationResultsPageRenderer(), DefaultJinjaPageView())
    return _renderers


def _columns_named_in_results(result: Any) -> set[str]:
    names: set[str] = set()
    for evr in result.results:
        kwargs = evr.expectation_config.kwargs
        names.update(_domain_columns(kwargs))
    return names


def _value_free_copy(result: Any, known_columns: set[str], run_name: str) -> Any:
    """A deep copy of a GX suite result reduced to what a report may show."""
    from great_expectations import __version__ as gx_version

    safe = copy.deepcopy(result)
    for evr in safe.results:
        evr.result = _value_free_result(evr.expectation_config.type, evr.result, known_columns)
        raised = _raised_exception(evr.exception_info)
        # GX's exception messages and tracebacks can quote the offending cells.
        evr.exception_info = {
            "raised_exception": raised,
            "exception_message": "not evaluated: error while evaluating" if raised else None,
            # GX's page renders the traceback as text when an exception was raised.
            "exception_traceback": "(withheld: it can quote the data)" if raised else None,
        }
    # The batch meta names a throwaway data source and fingerprints the data; what the page
    # needs from it is which file and when.
    safe.meta = {
        "great_expectations_version": gx_version,
        "run_id": {
            "run_name": run_name,
            "run_time": dt.datetime.now(dt.timezone.utc).isoformat(),
        },
        "batch_spec": {"data_asset_name": run_name},
    }
    return safe


def _value_free_result(expectation_type: str, result: Any, known_columns: set[str]) -> dict:
    if not isinstance(result, dict):
        return {}
    out: dict[str, Any] = {}
    for key in _SAFE_RESULT_NUMBERS:
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value
    indices = result.get("partial_unexpected_index_list")
    if isinstance(indices, list):
        out["partial_unexpected_index_list"] = [
            i for i in indices if isinstance(i, int) and not isinstance(i, bool)
        ]

    observed = result.get("observed_value")
    if isinstance(observed, (int, float)) and not isinstance(observed, bool):
        out["observed_value"] = observed
    elif isinstance(observed, (list, tuple)):
        if expectation_type in _gate_types():
            # The gate's own observed names are vocabulary or positions by construction.
            out["observed_value"] = [str(o) for o in observed]
        elif expectation_type.startswith("expect_table_column"):
            out["observed_value"] = [
                name if isinstance(name, str) and name in known_columns
                else f"[unrecognised column {i}]"
                for i, name in enumerate(observed, start=1)
            ]
    # Anything else (a min, a max, a most common value, details) may be a cell value.
    return out


def _gate_types() -> frozenset[str]:
    from borderx.validation.gate import GATE_EXPECTATION_TYPES

    return GATE_EXPECTATION_TYPES


# --------------------------------------------------------------------------------------------
# Turning GX results into value-free failures


def _expectation_key(expectation_type: str, kwargs: dict) -> str:
    return json.dumps([expectation_type, kwargs], sort_keys=True, default=str)


def _suite_order(suite) -> dict[str, int]:
    order: dict[str, int] = {}
    for index, configuration in enumerate(suite.expectation_configurations):
        order.setdefault(_expectation_key(configuration.type, dict(configuration.kwargs)), index)
    return order


def _columns_named_in(suite) -> set[str]:
    names: set[str] = set()
    for configuration in suite.expectation_configurations:
        kwargs = configuration.kwargs
        for key in ("column", "column_A", "column_B"):
            if isinstance(kwargs.get(key), str):
                names.add(kwargs[key])
        for key in ("column_list", "column_set"):
            if isinstance(kwargs.get(key), (list, tuple, set)):
                names.update(c for c in kwargs[key] if isinstance(c, str))
    return names


def _domain_columns(kwargs: dict) -> list[str]:
    if isinstance(kwargs.get("column"), str):
        return [kwargs["column"]]
    if isinstance(kwargs.get("column_A"), str) and isinstance(kwargs.get("column_B"), str):
        return [kwargs["column_A"], kwargs["column_B"]]
    for key in ("column_list", "column_set"):
        if isinstance(kwargs.get(key), (list, tuple, set)):
            return [str(c) for c in kwargs[key]]
    return []


def _failure(
    expectation_type: str,
    kwargs: dict,
    description: str | None,
    evr: Any,
    known_columns: set[str],
    present_columns: set[str],
    gate: bool = False,
) -> FailedExpectation:
    columns = _domain_columns(kwargs)
    result = evr.result or {}
    raised = _raised_exception(evr.exception_info)

    observed: str | None = None
    if raised:
        if any(c not in present_columns for c in columns):
            observed = "not evaluated: column missing from file"
        else:
            observed = "not evaluated: error while evaluating"
    elif expectation_type in _gate_types() and isinstance(result.get("observed_value"), list):
        # The gate's own observed names are vocabulary or positions by construction.
        observed = ", ".join(str(o) for o in result["observed_value"]) or None
    elif expectation_type.startswith("expect_table_"):
        observed = _observed_table_value(result.get("observed_value"), known_columns)

    rows: list[int] = []
    indices = result.get("partial_unexpected_index_list")
    if isinstance(indices, list):
        # Ints only: with a named index GX reports dicts that carry cell values.
        rows = [int(i) + 1 for i in indices if isinstance(i, int) and not isinstance(i, bool)]
        rows = sorted(rows)[:MAX_ROWS_REPORTED]

    return FailedExpectation(
        expectation=expectation_type,
        column=", ".join(columns) if columns else None,
        rule=description or _rule(expectation_type, kwargs),
        unexpected_count=_as_int(result.get("unexpected_count")),
        unexpected_percent=_as_float(result.get("unexpected_percent")),
        rows=rows,
        observed=observed,
        gate=gate,
    )


def _raised_exception(exception_info: Any) -> bool:
    if not isinstance(exception_info, dict):
        return False
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    # Keyed by metric when a metric failed to resolve.
    return any(isinstance(v, dict) and v.get("raised_exception") for v in exception_info.values())


def _observed_table_value(value: Any, known_columns: set[str]) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        # A file without its header row has its first data row read as column names, so only
        # names the suite itself uses are shown.
        return ", ".join(
            name if isinstance(name, str) and name in known_columns
            else f"[unrecognised column {i}]"
            for i, name in enumerate(value, start=1)
        )
    return None


def _rule(expectation_type: str, kwargs: dict) -> str:
    column_list = ", ".join(str(c) for c in kwargs.get("column_list") or [])
    value_set = ", ".join(str(v) for v in kwargs.get("value_set") or [])
    if expectation_type == "expect_column_values_to_not_be_null":
        rule = "values must not be empty"
    elif expectation_type == "expect_column_values_to_be_in_set":
        rule = f"values must be one of {value_set}"
    elif expectation_type == "expect_column_values_to_not_be_in_set":
        rule = f"values must not be any of {value_set}"
    elif expectation_type == "expect_column_values_to_match_regex":
        rule = f"values must match the pattern {kwargs.get('regex')}"
    elif expectation_type == "expect_column_values_to_not_match_regex":
        rule = f"values must not match the pattern {kwargs.get('regex')}"
    elif expectation_type == "expect_column_values_to_be_unique":
        rule = "values must be unique"
    elif expectation_type == "expect_compound_columns_to_be_unique":
        rule = f"each combination of {column_list} must appear only once"
    elif expectation_type == "expect_table_columns_to_match_ordered_list":
        rule = f"columns must be exactly, in this order: {column_list}"
    elif expectation_type == "expect_table_columns_to_match_set":
        rule = "columns must be " + ", ".join(str(c) for c in kwargs.get("column_set") or [])
    elif expectation_type == "expect_table_row_count_to_be_between":
        rule = "row count must be " + _range(kwargs.get("min_value"), kwargs.get("max_value"))
    elif expectation_type == "expect_table_row_count_to_equal":
        rule = f"row count must be {kwargs.get('value')}"
    elif expectation_type == "expect_column_values_to_be_between":
        rule = "values must be " + _range(kwargs.get("min_value"), kwargs.get("max_value"))
    elif expectation_type == "expect_table_columns_to_not_be_identifiers":
        rule = "anonymisation gate: no column may be named like a direct identifier"
    elif expectation_type == "expect_column_values_to_not_contain_identifiers":
        from borderx.validation.gate import KIND_LABELS

        kinds = [KIND_LABELS.get(k, str(k)) for k in kwargs.get("kinds") or []]
        rule = "anonymisation gate: values must not contain " + (
            ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds)
        )
    else:
        shown = {k: v for k, v in kwargs.items() if k not in ("column", "column_list", "mostly")}
        details = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
        rule = expectation_type.replace("_", " ") + (f" ({details})" if details else "")

    mostly = kwargs.get("mostly")
    if isinstance(mostly, (int, float)) and mostly < 1:
        rule += f" in at least {mostly:.0%} of rows"
    return rule


def _range(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return "any value"


def _statistics(statistics: dict) -> dict:
    out: dict[str, Any] = {}
    for key in _STATISTICS_KEYS:
        value = statistics.get(key)
        if key == "success_percent":
            out[key] = _as_float(value)
        else:
            out[key] = _as_int(value)
    return out


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
