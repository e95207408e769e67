"""A Parquet extract is validated by the same suite and gate as a CSV one, row group by row group, with the same
report; a file that cannot be read as Parquet gets a reason that names it."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from borderx.validation import extract, reading, validate_extract, workers

SUITE = Path(__file__).resolve().parents[2] / "expectations" / "traveller_flows.json"
HEADER = ["period", "border_point", "direction", "nationality", "age_band", "sex", "travel_mode",
          "traveller_category", "travellers"]
SECRET = "SECRETVALUE123"


def _rows(n: int) -> list[list[str]]:
    bands, sexes = ["0-17", "18-29", "30-44", "45-64", "65+", "UNK"], ["F", "M", "X", "UNK"]
    return [[f"2024-{i % 12 + 1:02d}-01", "ZA-BEI", "ENTRY", "ZAF", bands[i // 12 % 6], sexes[i // 72 % 4], "ROAD",
             "VISITOR", str(i * 3)] for i in range(n)]


def _bad_rows() -> list[list[str]]:
    rows = _rows(250)
    rows[3][2] = "INBOUND"
    rows[120][3] = SECRET
    rows[201][8] = "-4"
    rows[240] = list(rows[7])  # a duplicate key, in another row group than the row it repeats
    return rows


def _csv(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _parquet(path: Path, rows, **kwargs) -> Path:
    columns = [list(c) for c in zip(*rows)]
    arrays = [pa.array(c) for c in columns[:-1]] + [pa.array([int(v) for v in columns[-1]], pa.int64())]
    pq.write_table(pa.table(arrays, names=HEADER), path, **kwargs)
    return path


def test_parquet_and_csv_of_the_same_rows_get_the_same_report(tmp_path):
    rows = _bad_rows()
    from_csv = validate_extract(_csv(tmp_path / "x.csv", rows), SUITE)
    # Small row groups and dictionary-encoded strings: rows are numbered across row groups all the same.
    from_parquet = validate_extract(_parquet(tmp_path / "x.parquet", rows, row_group_size=64), SUITE)
    assert not from_parquet.success and from_parquet.rows == from_csv.rows == 250
    assert from_parquet.failures == from_csv.failures
    failed = {(f.expectation, f.column, tuple(f.rows)) for f in from_parquet.failures}
    assert ("expect_column_values_to_be_in_set", "direction", (4,)) in failed
    assert ("expect_column_values_to_match_regex", "nationality", (121,)) in failed
    assert any(rule == "expect_compound_columns_to_be_unique" and rows_ == (8, 241) for rule, _, rows_ in failed)
    assert SECRET not in json.dumps(from_parquet.to_dict())


def test_valid_parquet_with_typed_columns_passes(tmp_path):
    rows = _rows(280)
    path = tmp_path / "good.parquet"
    columns = [list(c) for c in zip(*rows)]
    arrays = [pa.array([dt.date.fromisoformat(v) for v in columns[0]], pa.date32())]
    arrays += [pa.array(c).dictionary_encode() for c in columns[1:-1]]
    arrays.append(pa.array([float(v) for v in columns[-1]], pa.float64()))  # 12.0 reads as "12"
    pq.write_table(pa.table(arrays, names=HEADER), path, row_group_size=100)
    outcome = validate_extract(path, SUITE)
    assert outcome.success, outcome.failures
    assert outcome.rows == 280


def test_parquet_is_read_in_blocks_of_about_chunk_bytes_whatever_its_row_groups(tmp_path):
    for group_rows in (700, 7):
        path = _parquet(tmp_path / f"x{group_rows}.parquet", _rows(1000), row_group_size=group_rows)
        layout = reading.probe(path)
        assert layout.format == "parquet" and layout.names == HEADER
        chunks = list(reading.batches(path, layout, 9 * 8 * 300))  # about 300 rows a block
        sizes = [sum(b.num_rows for b in pieces) for pieces in chunks]
        # A large row group is cut, small ones are joined: every block but the last holds 300 to 600 rows.
        assert sum(sizes) == 1000 and all(300 <= n < 600 for n in sizes[:-1]) and len(sizes) >= 2, sizes
        assert all(b.schema.types == [pa.string()] * len(HEADER) for pieces in chunks for b in pieces)


def test_unreadable_parquet_names_the_file_and_the_problem(tmp_path):
    text = tmp_path / "flows.parquet"
    text.write_text(",".join(HEADER) + "\n", encoding="utf-8")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    footer = tmp_path / "footer.parquet"
    footer.write_bytes(b"PAR1" + b"\x00" * 40 + (20).to_bytes(4, "little") + b"PAR1")
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"period": [["2024-01-01"]]}), nested)
    for path, problem in ((text, "not a Parquet file"), (empty, "file is empty"),
                          (footer, "footer cannot be read"), (nested, "nested values")):
        outcome = validate_extract(path, SUITE)
        assert not outcome.success and outcome.error, path
        assert outcome.error.startswith(f"{path}: ") and problem in outcome.error, outcome.error


def test_parquet_blocks_validated_by_worker_processes_give_the_same_report(tmp_path, monkeypatch):
    rows = _bad_rows()
    alone = validate_extract(_parquet(tmp_path / "x.parquet", rows, row_group_size=64), SUITE)
    monkeypatch.setattr(workers, "WORKERS", 2)
    monkeypatch.setattr(workers, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(reading, "CHUNK_BYTES", 9 * 8 * 50)  # blocks of 50 rows, across row groups
    started = []
    start = extract.start_workers
    monkeypatch.setattr(extract, "start_workers", lambda session, size: started.append(start(session, size))
                        or started[-1])
    pooled = validate_extract(tmp_path / "x.parquet", SUITE)
    assert started and started[0] is not None, "the file was validated by worker processes"
    assert pooled.failures == alone.failures and pooled.rows == alone.rows
