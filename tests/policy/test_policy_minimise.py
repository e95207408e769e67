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
