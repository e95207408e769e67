"""Cutting an extract down to what one recipient may receive, streaming in record batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

BLOCK_SIZE = 8 << 20


@dataclass(frozen=True)
class MinimiseResult:
    rows_in: int
    rows_out: int
    suppressed_rows: int
    suppressed_count: int  # sum of the count column over suppressed rows, e.g. travellers withheld


def _reader(path: Path, columns: list[str] | None = None) -> pacsv.CSVStreamingReader:
    # Every column as text: the published file carries the provider's values exactly as written.
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


def _small(batch: pa.RecordBatch, count_column: str, k: int) -> pa.Array:
    counts = pc.cast(batch.column(count_column), pa.int64())
    return pc.and_(pc.greater(counts, 0), pc.less(counts, k))


def count_small_cells(path: Path, count_column: str, k: int) -> tuple[int, int]:
    """Rows with a count above zero but below k, and the total count they hold."""
    rows = total = 0
    if k <= 1:
        return 0, 0
    for batch in _reader(path, [count_column]):
        mask = _small(batch, count_column, k)
        rows += pc.sum(mask).as_py() or 0
        total += pc.sum(pc.filter(pc.cast(batch.column(count_column), pa.int64()), mask)).as_py() or 0
    return rows, total


def minimise(
    path: Path, sink: BinaryIO, columns: list[str], *, count_column: str | None = None, min_cell_size: int = 1
) -> MinimiseResult:
    """Writes the allowed columns of `path` as CSV to `sink`, leaving out small cells."""
    suppress = count_column is not None and min_cell_size > 1
    wanted = list(dict.fromkeys(columns + ([count_column] if suppress else [])))
    rows_in = rows_out = suppressed_count = 0
    out = pa.PythonFile(sink, mode="w")
    writer = None
    try:
        for batch in _reader(path, wanted):
            rows_in += batch.num_rows
            if suppress:
                mask = _small(batch, count_column, min_cell_size)
                suppressed_count += pc.sum(pc.filter(pc.cast(batch.column(count_column), pa.int64()), mask)).as_py() or 0
                batch = batch.filter(pc.invert(mask))
            batch = batch.select(columns)
            if writer is None:
                writer = pacsv.CSVWriter(out, batch.schema, write_options=pacsv.WriteOptions(quoting_style="needed"))
            writer.write_batch(batch)
            rows_out += batch.num_rows
        if writer is None:
            schema = pa.schema([(c, pa.string()) for c in columns])
            writer = pacsv.CSVWriter(out, schema, write_options=pacsv.WriteOptions(quoting_style="needed"))
    finally:
        if writer is not None:
            writer.close()
    return MinimiseResult(rows_in, rows_out, rows_in - rows_out, suppressed_count)
