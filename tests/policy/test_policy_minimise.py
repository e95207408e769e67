"""Who gets what: delivery ids, agreements in force, and the cut of an extract for one recipient."""

from __future__ import annotations

import csv
import datetime as dt
import io

from borderx.config.loader import load_config
from borderx.policy.minimise import count_small_cells, minimise
from borderx.policy import decide, delivery_id
from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, write_csv

TODAY = dt.date(2026, 11, 28)


def test_delivery_id_is_derived_from_agreement_recipient_dataset_and_source():
    a = delivery_id("DSA-1", "ZA-SARS", "traveller_flows", "ab" * 32)
    assert a == delivery_id("DSA-1", "ZA-SARS", "traveller_flows", "ab" * 32)
    others = {
        delivery_id("DSA-2", "ZA-SARS", "traveller_flows", "ab" * 32),
        delivery_id("DSA-1", "NA-MHAISS", "traveller_flows", "ab" * 32),
        delivery_id("DSA-1", "ZA-SARS", "goods_crossings", "ab" * 32),
        delivery_id("DSA-1", "ZA-SARS", "traveller_flows", "cd" * 32),
    }
    assert a not in others and len(others) == 4


def test_active_agreement_plans_one_delivery_per_recipient(demo_home):
    config = load_config(demo_home.root, today=TODAY)
    decision = decide(config, "ZA-DHA", "traveller_flows", "ab" * 32, TODAY)
    assert {p.recipient for p in decision.plans} == {"ZA-SARS", "NA-MHAISS"}
    sars = next(p for p in decision.plans if p.recipient == "ZA-SARS")
    assert "nationality" not in sars.columns and sars.columns[0] == "period"
    assert decision.min_cell_size == 5 and not decision.reject_small_cells


def test_agreement_outside_its_window_publishes_nothing(demo_home):
    config = load_config(demo_home.root, today=TODAY)
    later = dt.date(2029, 1, 1)
    decision = decide(config, "ZA-DHA", "traveller_flows", "ab" * 32, later)
    assert not decision.plans
    assert "outside validity" in decision.blocked[0].rule


def _rows(counts):
    return [["2026-11-01", "ZA-BEI", "ENTRY", "ZAF", "18-29", "F", "ROAD", "VISITOR", str(c)] for c in counts]


def test_minimise_keeps_allowed_columns_and_suppresses_small_cells(tmp_path):
    src = write_csv(tmp_path / "x.csv", TRAVELLER_FLOWS_COLUMNS, _rows([0, 1, 4, 5, 6, 100]))
    sink = io.BytesIO()
    result = minimise(src, sink, ["period", "travellers"], count_column="travellers", min_cell_size=5)
    header, *rows = list(csv.reader(io.StringIO(sink.getvalue().decode())))
    assert header == ["period", "travellers"]
    assert [r[1] for r in rows] == ["0", "5", "6", "100"]  # k-1 and below go, k and above stay, zero is no cell
    assert (result.rows_in, result.rows_out, result.suppressed_rows, result.suppressed_count) == (6, 4, 2, 5)
    assert count_small_cells(src, "travellers", 5) == (2, 5)


def test_minimise_of_header_only_file_writes_header(tmp_path):
    src = write_csv(tmp_path / "x.csv", TRAVELLER_FLOWS_COLUMNS, [])
    sink = io.BytesIO()
    result = minimise(src, sink, ["period", "border_point"])
    assert sink.getvalue().decode().splitlines() == ['"period","border_point"'] or sink.getvalue().decode().splitlines() == ["period,border_point"]
    assert result.rows_out == 0


def test_counts_go_out_as_integers_in_both_formats_whichever_format_came_in(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows([12, 3, 0, 7])
    as_csv = write_csv(tmp_path / "x.csv", TRAVELLER_FLOWS_COLUMNS, [r[:-1] + [c] for r, c in
                                                                     zip(rows, ["0012", "3", "0", "7"])])
    columns = list(zip(*rows))
    table = pa.table([pa.array(list(c)) for c in columns[:-1]] + [pa.array([12.0, 3.0, 0.0, 7.0])],
                     names=TRAVELLER_FLOWS_COLUMNS)
    as_parquet = tmp_path / "x.parquet"
    pq.write_table(table, as_parquet, row_group_size=2)
    types = {"travellers": "integer"}
    for source in (as_csv, as_parquet):
        assert count_small_cells(source, "travellers", 5) == (1, 3)
        sink = io.BytesIO()
        minimise(source, sink, ["period", "travellers"], count_column="travellers", min_cell_size=5,
                 column_types=types)
        assert list(csv.reader(io.StringIO(sink.getvalue().decode()))) == [
            ["period", "travellers"], ["2026-11-01", "12"], ["2026-11-01", "0"], ["2026-11-01", "7"]]
        sink = io.BytesIO()
        cut = minimise(source, sink, ["border_point", "travellers"], count_column="travellers", min_cell_size=5,
                       column_types=types, out_format="parquet")
        out = pq.read_table(io.BytesIO(sink.getvalue()))
        assert out.schema == pa.schema([("border_point", pa.string()), ("travellers", pa.int64())])
        assert out.column("travellers").to_pylist() == [12, 0, 7] and cut.suppressed_count == 3


def test_a_count_with_a_fraction_is_refused_naming_the_column_only(tmp_path):
    import pytest

    src = write_csv(tmp_path / "x.csv", TRAVELLER_FLOWS_COLUMNS, [r[:-1] + ["12.5"] for r in _rows([1])])
    with pytest.raises(ValueError) as refused:
        minimise(src, io.BytesIO(), ["travellers"], column_types={"travellers": "integer"})
    assert "travellers" in str(refused.value) and "12.5" not in str(refused.value)


def test_empty_parquet_delivery_holds_the_schema(tmp_path):
    import pyarrow.parquet as pq

    src = write_csv(tmp_path / "x.csv", TRAVELLER_FLOWS_COLUMNS, [])
    sink = io.BytesIO()
    minimise(src, sink, ["period", "travellers"], count_column="travellers", out_format="parquet")
    table = pq.read_table(io.BytesIO(sink.getvalue()))
    assert table.num_rows == 0 and [str(t) for t in table.schema.types] == ["string", "int64"]


def _cuts(source):
    """A CSV cut and a Parquet cut of `source`, each with its result, as one recipient after another gets them."""
    plans = [(["period", "border_point", "travellers"], "csv"), (["nationality", "travellers"], "parquet"),
             (["sex", "age_band"], "csv")]
    made = []
    for columns, out_format in plans:
        sink = io.BytesIO()
        result = minimise(source, sink, columns, count_column="travellers", min_cell_size=5,
                          column_types={"travellers": "integer"}, out_format=out_format)
        made.append((sink.getvalue(), result))
    return made


def test_a_small_extract_is_parsed_once_for_every_cut_and_each_cut_is_the_streamed_one(tmp_path):
    import hashlib

    from borderx.policy.minimise import Rows

    src = write_csv(tmp_path / "x.csv", TRAVELLER_FLOWS_COLUMNS, _rows([0, 1, 4, 5, 6, 100] * 50))
    rows = Rows(src, hashlib.sha256(src.read_bytes()).hexdigest())
    assert count_small_cells(rows, "travellers", 5) == count_small_cells(src, "travellers", 5) == (100, 250)
    assert rows.held
    streamed = _cuts(src)
    src.write_text("not,the,extract\n")  # held rows are what was read, not what the file says now
    assert _cuts(rows) == streamed
    rows.release()
    assert not rows.held and not Rows(src).held


def test_rows_are_held_only_of_the_received_bytes_of_a_small_plain_csv(tmp_path):
    import gzip
    import hashlib

    from borderx.policy.minimise import HELD_BYTES, Rows

    src = write_csv(tmp_path / "x.csv", TRAVELLER_FLOWS_COLUMNS, _rows([3, 7]))
    changed = Rows(src, hashlib.sha256(b"what was received").hexdigest())
    assert _cuts(changed) == _cuts(src) and not changed.held, "bytes that are not the received extract are streamed"

    big = write_csv(tmp_path / "big.csv", TRAVELLER_FLOWS_COLUMNS, _rows(range(HELD_BYTES // 40)))
    assert big.stat().st_size > HELD_BYTES
    large = Rows(big)
    assert count_small_cells(large, "travellers", 5) == count_small_cells(big, "travellers", 5)
    assert not large.held, "memory must not grow with the extract"

    packed = tmp_path / "x.csv.gz"
    packed.write_bytes(gzip.compress(src.read_bytes()))
    compressed = Rows(packed)
    assert _cuts(compressed) == _cuts(src) and not compressed.held, "a compressed file's rows are not bounded"


def test_a_file_the_whole_parse_refuses_is_cut_as_it_is_streamed(tmp_path):
    import pytest

    from borderx.policy.minimise import Rows

    src = tmp_path / "x.csv"
    src.write_bytes(b"period,nationality,travellers\n2026-11-01,\xff\xfe,12\n")
    rows = Rows(src)
    assert _first_cut(rows) == _first_cut(src) == b'"period","travellers"\n"2026-11-01",12\n'
    assert not rows.held, "not UTF-8 in a column no cut reads"

    lacking = write_csv(tmp_path / "y.csv", ["period", "travellers"], [["2026-11-01", "12"]])
    for source in (Rows(lacking), lacking):
        with pytest.raises(Exception) as streamed:
            _first_cut(source, ["period", "border_point"])
        assert "border_point" in str(streamed.value)


def _first_cut(source, columns=("period", "travellers")):
    sink = io.BytesIO()
    minimise(source, sink, list(columns), column_types={"travellers": "integer"})
    return sink.getvalue()
