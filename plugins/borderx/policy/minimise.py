"""Cutting an extract down to what one recipient may receive, streaming in record batches.

Each recipient's cut reads the extract again, batch by batch, so memory does not grow with the extract; a small
CSV extract is parsed once instead and its rows held for every cut of it (`Rows`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from borderx import tables

BLOCK_SIZE = 8 << 20
# Rows read from a Parquet extract at a time, about what BLOCK_SIZE of CSV holds.
PARQUET_BATCH_ROWS = 128 << 10
# A CSV extract up to this size is parsed once for all its cuts and held meanwhile: parsing costs a small file
# more than cutting it does. Its rows in memory are about as large as its text, whatever the content; a Parquet
# file's are not (compression), so Parquet extracts are always streamed.
HELD_BYTES = 1 << 20
COMPRESSED = (".bz2", ".gz", ".lz4", ".zst")


@dataclass(frozen=True)
class MinimiseResult:
    rows_in: int
    rows_out: int
    suppressed_rows: int
    suppressed_count: int  # sum of the count column over suppressed rows, e.g. travellers withheld


def _reader(path: Path, columns: list[str] | None = None, data: bytes | None = None) -> Iterator[pa.RecordBatch]:
    """The file's batches, or those of `data`, the file's bytes read already (a CSV file's only)."""
    # Every column as text, as validation read it; the dataset's types are applied after (tables.typed).
    if tables.format_of(path) == "parquet":
        return tables.parquet_batches(path, PARQUET_BATCH_ROWS, columns)

    def source():
        return path if data is None else pa.BufferReader(data)

    header = pacsv.open_csv(source(), read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    return pacsv.open_csv(
        source(),
        read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, encoding="utf-8"),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            include_columns=columns,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


class Rows:
    """An extract's rows as its cuts read them, every column as text: parsed once and held when the extract is a
    CSV file of at most HELD_BYTES, read again (streaming) for each cut otherwise. `release` lets go of held rows.

    Rows are held only of bytes that hash to `sha256` (the extract as it was received), and only where the
    whole-table parse succeeds; any other file is streamed, so each cut succeeds or fails as it would alone.
    """

    def __init__(self, path: Path | str, sha256: str | None = None):
        self.path = Path(path)
        self.sha256 = sha256
        self._held: list[pa.RecordBatch] | None = None
        self._tried = False

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        held = self._hold()
        if held is None or not set(columns) <= set(held[0].schema.names):
            # A column the file lacks fails as it does when streamed.
            return _reader(self.path, columns)
        return (batch.select(columns) for batch in held)

    @property
    def held(self) -> bool:
        """Whether the rows are in memory (parsed on the first cut or count)."""
        return self._held is not None

    def release(self) -> None:
        self._held, self._tried = None, True

    def _hold(self) -> list[pa.RecordBatch] | None:
        if not self._tried:
            self._tried = True
            self._held = self._parsed()
        return self._held

    def _parsed(self) -> list[pa.RecordBatch] | None:
        # A compressed file's rows are not bounded by its size (pyarrow unpacks .gz and the like by their name).
        if tables.format_of(self.path) != "csv" or self.path.name.lower().endswith(COMPRESSED):
            return None
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(HELD_BYTES + 1)
            if len(data) > HELD_BYTES or (self.sha256 and hashlib.sha256(data).hexdigest() != self.sha256):
                return None
            held = list(_reader(self.path, data=data))
        except (pa.ArrowException, OSError, ValueError):
            return None
        # A header-only file gives no batch to read the names from; a name given twice is not one column.
        if not held or len(set(held[0].schema.names)) != len(held[0].schema.names):
            return None
        return held


Source = Union[Path, Rows]


def _batches(source: Source, columns: list[str]) -> Iterator[pa.RecordBatch]:
    return source.batches(columns) if isinstance(source, Rows) else _reader(Path(source), columns)


def _counts(batch: pa.RecordBatch, count_column: str) -> pa.Array:
    return tables.typed(batch.select([count_column]), {count_column: "integer"}).column(0)


def _small(counts: pa.Array, k: int) -> pa.Array:
    return pc.and_(pc.greater(counts, 0), pc.less(counts, k))


def count_small_cells(source: Source, count_column: str, k: int) -> tuple[int, int]:
    """Rows with a count above zero but below k, and the total count they hold (`source`: a path, or its Rows)."""
    rows = total = 0
    if k <= 1:
        return 0, 0
    for batch in _batches(source, [count_column]):
        counts = _counts(batch, count_column)
        mask = _small(counts, k)
        rows += pc.sum(mask).as_py() or 0
        total += pc.sum(pc.filter(counts, mask)).as_py() or 0
    return rows, total


class _Writer:
    """Writes batches as CSV, or as Parquet one row group per batch, to a stream that need not seek."""

    def __init__(self, sink: BinaryIO, schema: pa.Schema, out_format: str):
        self._out = pa.PythonFile(sink, mode="w")
        if out_format == "parquet":
            self._writer = pq.ParquetWriter(self._out, schema, compression="zstd")
        else:
            self._writer = pacsv.CSVWriter(self._out, schema, write_options=pacsv.WriteOptions(quoting_style="needed"))

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


def minimise(
    source: Source, sink: BinaryIO, columns: list[str], *, count_column: str | None = None, min_cell_size: int = 1,
    column_types: dict[str, str] | None = None, out_format: str = "csv",
) -> MinimiseResult:
    """Writes the allowed columns of `source` (a CSV or Parquet file, or its Rows) to `sink` as `out_format`,
    leaving out small cells.

    Columns carry the types column_types gives them (default: the count column an integer, all else strings).
    """
    suppress = count_column is not None and min_cell_size > 1
    types = dict(column_types if column_types is not None else ({count_column: "integer"} if count_column else {}))
    wanted = list(dict.fromkeys(columns + ([count_column] if suppress else [])))
    rows_in = rows_out = suppressed_count = 0
    writer = _Writer(sink, tables.arrow_schema(columns, types), out_format)
    try:
        for batch in _batches(source, wanted):
            rows_in += batch.num_rows
            batch = tables.typed(batch, types)
            if suppress:
                counts = _counts(batch, count_column)
                mask = _small(counts, min_cell_size)
                suppressed_count += pc.sum(pc.filter(counts, mask)).as_py() or 0
                batch = batch.filter(pc.invert(mask))
            writer.write(batch.select(columns))
            rows_out += batch.num_rows
    finally:
        writer.close()
    return MinimiseResult(rows_in, rows_out, rows_in - rows_out, suppressed_count)
