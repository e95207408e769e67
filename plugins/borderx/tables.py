"""Extract files as tables: which format a file is in, its Parquet row groups read as text, and columns typed
the way a dataset defines them.

An extract is Parquet when its name ends in .parquet, and CSV otherwise. Validation sees both as text, so one
suite checks both alike; deliveries carry the dataset's types (Dataset.column_types), whichever format came in.
No message from pyarrow is passed on: it can quote the data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import pyarrow

PARQUET_MAGIC = b"PAR1"
READ_BUFFER_BYTES = 1 << 20
ARROW_TYPES = {"string": "string", "integer": "int64", "number": "float64"}


class NotParquet(Exception):
    """A .parquet file that cannot be read as Parquet; the message names the file and the problem."""


def format_of(path: Path | str) -> str:
    return "parquet" if str(path).lower().endswith(".parquet") else "csv"


def open_parquet(path: Path):
    """The file's Parquet reader, once its magic bytes and footer check out; raises NotParquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
    except OSError as exc:
        raise NotParquet(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if size == 0:
        raise NotParquet(f"{path}: file is empty, not Parquet")
    if head != PARQUET_MAGIC:
        raise NotParquet(f"{path}: not a Parquet file (it does not begin with the Parquet magic PAR1)")
    if tail != PARQUET_MAGIC or size < 12:
        raise NotParquet(f"{path}: cut short or corrupt Parquet file (it does not end with the Parquet magic PAR1)")
    try:
        # Pages are read as they are decoded, not a whole row group's column chunks at once: a file written
        # as one huge row group is read in as little memory as one of many small ones.
        reader = pq.ParquetFile(str(path), buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
    except (pa.ArrowException, OSError, ValueError):
        raise NotParquet(f"{path}: corrupt Parquet file (its footer cannot be read)") from None
    nested = [f.name for f in reader.schema_arrow if pa.types.is_nested(f.type)]
    if nested:
        raise NotParquet(f"{path}: column {nested[0]} holds nested values (lists, structs or maps); an extract "
                         f"has one value per cell")
    return reader


def parquet_batches(path: Path, batch_rows: int, columns: list[str] | None = None) -> Iterator["pyarrow.RecordBatch"]:
    """The file's rows in batches of about batch_rows, every column as text: read row group by row group, a
    large group in several batches, small groups joined (a file of many small row groups costs no more blocks
    of validation than one of a few large ones).

    Raises NotParquet when the file is not Parquet, or a page cannot be read (cut or corrupt past its footer).
    """
    import pyarrow as pa

    reader = open_parquet(path)
    group = 0
    pending: list = []
    held = 0
    try:
        for group in range(reader.num_row_groups):
            for batch in reader.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns,
                                             use_threads=False):
                pending.append(as_text(batch))
                held += batch.num_rows
                if held >= batch_rows:
                    yield _joined(pending)
                    pending, held = [], 0
    except (pa.ArrowException, OSError, ValueError):
        raise NotParquet(f"{path}: corrupt Parquet file (row group {group} cannot be read)") from None
    finally:
        reader.close()
    if pending:
        yield _joined(pending)


def _joined(batches: list) -> "pyarrow.RecordBatch":
    import pyarrow as pa

    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


def as_text(batch: "pyarrow.RecordBatch") -> "pyarrow.RecordBatch":
    """Every column as text, as a CSV extract is read: 12 and 12.0 read "12", a date "2026-11-01", a null stays
    a null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def arrow_schema(columns: list[str], types: dict[str, str]) -> "pyarrow.Schema":
    import pyarrow as pa

    return pa.schema([(c, pa.type_for_alias(ARROW_TYPES[types.get(c, "string")])) for c in columns])


def typed(batch: "pyarrow.RecordBatch", types: dict[str, str]) -> "pyarrow.RecordBatch":
    """The batch's text columns cast to the dataset's types; empty cells of typed columns become nulls.

    Raises ValueError (naming the column only) for a value that is not of its column's type; validation lets
    none through.
    """
    import pyarrow as pa

    columns = []
    for name, column in zip(batch.schema.names, batch.columns):
        kind = types.get(name, "string")
        if kind != "string":
            try:
                column = _number(column, kind)
            except pa.ArrowException:
                raise ValueError(f"column {name}: a value is not {'an integer' if kind == 'integer' else 'a number'}"
                                 ) from None
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _number(column: "pyarrow.Array", kind: str) -> "pyarrow.Array":
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.type_for_alias(ARROW_TYPES[kind])
    if pa.types.is_string(column.type):
        column = pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), pa.scalar(None, pa.string()), column)
        if kind == "integer":
            try:
                return pc.cast(column, target)
            except pa.ArrowInvalid:
                # "12.0": a whole number written as a float; a fraction still fails the safe cast below.
                column = pc.cast(column, pa.float64())
    return pc.cast(column, target)
