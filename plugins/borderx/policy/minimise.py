"""Cutting an extract down to what one recipient may receive, streaming in record batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from borderx import tables

BLOCK_SIZE = 8 << 20
# Rows read from a Parquet extract at a time, about what BLOCK_SIZE of CSV holds.
PARQUET_BATCH_ROWS = 128 << 10


@dataclass(frozen=True)
class MinimiseResult:
    rows_in: int
    rows_out: int
    suppressed_rows: int
    suppressed_count: int  # sum of the count column over suppressed rows, e.g. travellers withheld


def _reader(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    # Every column as text, as validation read it; the dataset's types are applied after (tables.typed).
    if tables.format_of(path) == "parquet":
        return tables.parquet_batches(path, PARQUET_BATCH_ROWS, columns)
    header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, encoding="utf-8"),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            include_columns=columns,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _counts(batch: pa.RecordBatch, count_column: str) -> pa.Array:
    return tables.typed(batch.select([count_column]), {count_column: "integer"}).column(0)


def _small(counts: pa.Array, k: int) -> pa.Array:
    return pc.and_(pc.greater(counts, 0), pc.less(counts, k))


def count_small_cells(path: Path, count_column: str, k: int) -> tuple[int, int]:
    """Rows with a count above zero but below k, and the total count they hold."""
    rows = total = 0
    if k <= 1:
        return 0, 0
    for batch in _reader(path, [count_column]):
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
    path: Path, sink: BinaryIO, columns: list[str], *, count_column: str | None = None, min_cell_size: int = 1,
    column_types: dict[str, str] | None = None, out_format: str = "csv",
) -> MinimiseResult:
    """Writes the allowed columns of `path` (CSV or Parquet) to `sink` as `out_format`, leaving out small cells.

    Columns carry the types column_types gives them (default: the count column an integer, all else strings).
    """
    suppress = count_column is not None and min_cell_size > 1
    types = dict(column_types if column_types is not None else ({count_column: "integer"} if count_column else {}))
    wanted = list(dict.fromkeys(columns + ([count_column] if suppress else [])))
    rows_in = rows_out = suppressed_count = 0
    writer = _Writer(sink, tables.arrow_schema(columns, types), out_format)
    try:
        for batch in _reader(path, wanted):
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
