"""Whose file it is: location codes that belong to another agency than the one whose folder the file is in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from borderx import tables

# Border points and customs offices are the reporting agency's own codes, prefixed with its country
# (SPEC: `border_point` "the agency's code, e.g. ZA-BEI"). A file whose codes carry another country's prefix
# was made by another agency, whatever folder it was dropped in.

LOCATION_COLUMNS = ("border_point", "customs_office")
_COUNTRY_CODE = r"^[A-Z]{2}-"
ROWS_SHOWN = 10


@dataclass(frozen=True)
class ForeignCodes:
    """Rows of an extract whose location codes belong to `country`, not to the agency whose folder it is in."""

    column: str
    country: str
    count: int
    rows: tuple[int, ...]  # the first few, counting data rows from 1


def foreign_codes(path: Path, country: str) -> list[ForeignCodes]:
    """Location codes in `path` prefixed with a country other than `country`, per column and country.

    A file that cannot be read as CSV or Parquet, or has no location column, yields nothing: validation reports those.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        batches = _location_batches(path)
        if batches is None:
            return []
        found: dict[tuple[str, str], list] = {}
        offset = 0
        for batch in batches:
            for column in batch.schema.names:
                values = batch.column(column)
                foreign = pc.and_(pc.match_substring_regex(values, _COUNTRY_CODE),
                                  pc.invert(pc.starts_with(values, f"{country}-")))
                if not pc.any(foreign).as_py():
                    continue
                prefixes = pc.utf8_slice_codeunits(values, 0, 2)
                for prefix in pc.unique(pc.filter(prefixes, foreign)).to_pylist():
                    rows = pc.indices_nonzero(pc.and_(foreign, pc.equal(prefixes, prefix)))
                    seen = found.setdefault((column, prefix), [0, []])
                    seen[0] += len(rows)
                    seen[1] += [offset + r + 1 for r in rows[:ROWS_SHOWN - len(seen[1])].to_pylist()]
            offset += batch.num_rows
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError, tables.NotParquet):
        return []
    return [ForeignCodes(column, prefix, count, tuple(rows))
            for (column, prefix), (count, rows) in sorted(found.items())]


def _location_batches(path: Path):
    """The file's location columns as text, in batches; None if it has none."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if tables.format_of(path) == "parquet":
        with tables.open_parquet(path) as reader:
            columns = [c for c in LOCATION_COLUMNS if c in reader.schema_arrow.names]
        return tables.parquet_batches(path, 128 << 10, columns) if columns else None
    header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
    columns = [c for c in LOCATION_COLUMNS if c in header]
    if not columns:
        return None
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=8 << 20, encoding="utf-8"),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                             include_columns=columns, strings_can_be_null=False),
    )
