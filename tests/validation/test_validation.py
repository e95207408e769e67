import hashlib
import json
import logging
import multiprocessing
import re
import socket
from pathlib import Path

import pytest

from borderx.validation import extract, gx_run, reading, uniqueness
from borderx.validation.datadocs import ensure_page, page_html, source_of
from borderx.validation import workers as validation_workers
from borderx.validation import (
    FailedExpectation,
    SuiteError,
    ValidationOutcome,
    load_suite,
    render_data_docs,
    validate_extract,
)

SUITE = Path(__file__).resolve().parents[2] / "expectations" / "traveller_flows.json"
GOODS_SUITE = SUITE.with_name("goods_crossings.json")

HEADER = [
    "period",
    "border_point",
    "direction",
    "nationality",
    "age_band",
    "sex",
    "travel_mode",
    "traveller_category",
    "travellers",
]
KEY_COLUMNS = ", ".join(HEADER[:-1])
SECRET = "SECRETVALUE123"


def good_row(i: int = 0) -> dict:
    """A valid row; distinct i gives a distinct key."""
    return {
        "period": f"2024-{i % 12 + 1:02d}-01",
        "border_point": "ZA-BEI",
        "direction": "ENTRY",
        "nationality": "ZAF",
        "age_band": ["0-17", "18-29", "30-44", "45-64", "65+", "UNK"][i // 12 % 6],
        "sex": ["F", "M", "X", "UNK"][i // 72 % 4],
        "travel_mode": "ROAD",
        "traveller_category": "VISITOR",
        "travellers": str(i * 3),
    }


def rows(n: int, **changes_by_row) -> list[dict]:
    """n valid rows; changes_by_row maps "r<1-based row>" to a dict of cells to override."""
    out = [good_row(i) for i in range(n)]
    for key, changes in changes_by_row.items():
        out[int(key[1:]) - 1].update(changes)
    return out


def write_csv(path: Path, data: list[dict], header: list[str] = HEADER, bom: bool = False) -> Path:
    lines = [",".join(header)]
    lines += [",".join(row.get(col, "") for col in header) for row in data]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def validate(path: Path, **kwargs) -> ValidationOutcome:
    return validate_extract(path, SUITE, **kwargs)


def only_failure(outcome: ValidationOutcome) -> FailedExpectation:
    assert not outcome.success
    assert outcome.error is None
    assert len(outcome.failures) == 1, [f.expectation for f in outcome.failures]
    return outcome.failures[0]


# ------------------------------------------------------------------------------------------
# Suite file


def test_suite_file_is_gx_serialisation():
    suite = load_suite(SUITE)
    assert suite.name == "traveller_flows"
    assert suite.meta["schema_version"] == "1"
    assert suite.to_json_dict() == json.loads(SUITE.read_text(encoding="utf-8"))


def test_load_suite_missing_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(SuiteError, match="nope.json"):
        load_suite(missing)


def test_load_suite_malformed_json(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"name": "x", "expectations": [', encoding="utf-8")
    with pytest.raises(SuiteError, match="broken.json.*JSON"):
        load_suite(bad)


def test_load_suite_rejects_unknown_expectation_instead_of_dropping_it(tmp_path):
    data = json.loads(SUITE.read_text(encoding="utf-8"))
    data["expectations"].append({"type": "expect_no_such_thing", "kwargs": {}, "meta": {}})
    bad = tmp_path / "unknown.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SuiteError, match="unknown.json.*expect_no_such_thing"):
        load_suite(bad)


def test_load_suite_rejects_invalid_regex(tmp_path):
    data = json.loads(SUITE.read_text(encoding="utf-8"))
    data["expectations"].append(
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "sex", "regex": "(["}}
    )
    bad = tmp_path / "regex.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SuiteError, match="regex.json.*regex"):
        load_suite(bad)


def test_validate_with_missing_suite_raises(tmp_path):
    csv_path = write_csv(tmp_path / "x.csv", rows(2))
    with pytest.raises(SuiteError, match="absent.json"):
        validate_extract(csv_path, tmp_path / "absent.json")


# ------------------------------------------------------------------------------------------
# Valid files


def test_valid_file_passes(tmp_path):
    outcome = validate(write_csv(tmp_path / "ok.csv", rows(30)))
    assert outcome.success
    assert outcome.failures == []
    assert outcome.rows == 30
    assert outcome.error is None
    assert outcome.suite == "traveller_flows"
    stats = outcome.statistics
    assert stats["unsuccessful_expectations"] == 0
    assert stats["evaluated_expectations"] == stats["successful_expectations"] > 0
    assert stats["success_percent"] == 100.0
    json.dumps(outcome.to_dict())


def test_utf8_bom_is_accepted(tmp_path):
    outcome = validate(write_csv(tmp_path / "bom.csv", rows(3), bom=True))
    assert outcome.success, outcome.failures
    assert outcome.rows == 3


def test_leap_day_is_a_real_date(tmp_path):
    outcome = validate(write_csv(tmp_path / "leap.csv", rows(2, r2={"period": "2024-02-29"})))
    assert outcome.success, outcome.failures


def test_validation_is_quiet_and_offline(tmp_path, capfd, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("validation tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    outcome = validate(write_csv(tmp_path / "quiet.csv", rows(5, r2={"sex": "Q"})))
    assert not outcome.success
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


# ------------------------------------------------------------------------------------------
# One rule broken at a time


def test_bad_enum_value(tmp_path):
    outcome = validate(write_csv(tmp_path / "enum.csv", rows(5, r2={"direction": "SIDEWAYS"})))
    failure = only_failure(outcome)
    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert failure.column == "direction"
    assert failure.rows == [2]
    assert failure.unexpected_count == 1
    assert failure.unexpected_percent == pytest.approx(20.0)
    assert failure.rule == "values must be one of ENTRY, EXIT"
    assert failure.observed is None
    assert failure.gate is False


@pytest.mark.parametrize(
    "bad_date", ["2023-02-29", "2024-13-01", "2024-04-31", "2024/01/05", "20240105"]
)
def test_bad_date(tmp_path, bad_date):
    outcome = validate(write_csv(tmp_path / "date.csv", rows(4, r3={"period": bad_date})))
    failure = only_failure(outcome)
    assert failure.expectation == "expect_column_values_to_match_regex"
    assert failure.column == "period"
    assert failure.rows == [3]
    assert "YYYY-MM-DD" in failure.rule


def test_bad_nationality(tmp_path):
    data = rows(6, r1={"nationality": "ZA"}, r6={"nationality": "zaf"})
    failure = only_failure(validate(write_csv(tmp_path / "nat.csv", data)))
    assert failure.expectation == "expect_column_values_to_match_regex"
    assert failure.column == "nationality"
    assert failure.rows == [1, 6]
    assert failure.unexpected_count == 2
    assert failure.rule == "values must match the pattern ^[A-Z]{3}$"


def test_bad_border_point(tmp_path):
    failure = only_failure(
        validate(write_csv(tmp_path / "bp.csv", rows(3, r2={"border_point": "ZABEI"})))
    )
    assert failure.expectation == "expect_column_values_to_match_regex"
    assert failure.column == "border_point"
    assert failure.rows == [2]


@pytest.mark.parametrize("bad_count", ["-5", "3.5", "1e3", " 7"])
def test_travellers_not_a_non_negative_integer(tmp_path, bad_count):
    outcome = validate(write_csv(tmp_path / "trav.csv", rows(4, r4={"travellers": bad_count})))
    failure = only_failure(outcome)
    assert failure.expectation == "expect_column_values_to_match_regex"
    assert failure.column == "travellers"
    assert failure.rows == [4]


def test_missing_column(tmp_path):
    header = [c for c in HEADER if c != "nationality"]
    outcome = validate(write_csv(tmp_path / "missing.csv", rows(3), header=header))
    assert not outcome.success
    assert outcome.rows == 3
    first = outcome.failures[0]
    assert first.expectation == "expect_table_columns_to_match_ordered_list"
    assert first.column == ", ".join(HEADER)
    assert first.rows == []
    assert first.observed == ", ".join(header)

    # Every check on the absent column fails too, marked as not evaluated rather than hidden.
    not_evaluated = {(f.expectation, f.column) for f in outcome.failures[1:]}
    assert not_evaluated == {
        ("expect_column_values_to_not_be_null", "nationality"),
        ("expect_column_values_to_match_regex", "nationality"),
        ("expect_compound_columns_to_be_unique", KEY_COLUMNS),
        ("expect_column_values_to_not_contain_identifiers", "nationality"),
    }
    for failure in outcome.failures[1:]:
        assert failure.observed == "not evaluated: column missing from file"
        assert failure.rows == []


def test_extra_column(tmp_path):
    header = HEADER + ["remarks"]
    data = [dict(r, remarks="x") for r in rows(3)]
    failure = only_failure(validate(write_csv(tmp_path / "extra.csv", data, header=header)))
    assert failure.expectation == "expect_table_columns_to_match_ordered_list"
    assert failure.column == ", ".join(HEADER)
    assert failure.rows == []
    assert failure.observed == ", ".join(HEADER) + ", [unrecognised column 10]"


def test_columns_out_of_order(tmp_path):
    header = HEADER.copy()
    header[0], header[1] = header[1], header[0]
    failure = only_failure(validate(write_csv(tmp_path / "order.csv", rows(2), header=header)))
    assert failure.expectation == "expect_table_columns_to_match_ordered_list"
    assert failure.observed == ", ".join(header)


def test_empty_cell_counts_as_null(tmp_path):
    failure = only_failure(validate(write_csv(tmp_path / "empty.csv", rows(4, r2={"sex": ""}))))
    assert failure.expectation == "expect_column_values_to_not_be_null"
    assert failure.column == "sex"
    assert failure.rows == [2]
    assert failure.unexpected_count == 1
    assert failure.rule == "values must not be empty"


def test_duplicate_key_row(tmp_path):
    data = rows(4)
    data[2] = dict(data[0], travellers="999")
    failure = only_failure(validate(write_csv(tmp_path / "dup.csv", data)))
    assert failure.expectation == "expect_compound_columns_to_be_unique"
    assert failure.column == KEY_COLUMNS
    assert failure.rows == [1, 3]
    assert failure.unexpected_count == 2


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(HEADER) + "\n", encoding="utf-8")
    outcome = validate(path)
    failure = only_failure(outcome)
    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert failure.column is None
    assert failure.rows == []
    assert failure.observed == "0"
    assert failure.rule == "row count must be at least 1"
    assert outcome.rows == 0


def test_header_only_without_final_newline(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(HEADER), encoding="utf-8")
    failure = only_failure(validate(path))
    assert failure.expectation == "expect_table_row_count_to_be_between"


def test_rows_are_capped_at_twenty_but_counted_in_full(tmp_path):
    data = rows(30)
    for row in data[5:]:
        row["sex"] = "Q"
    failure = only_failure(validate(write_csv(tmp_path / "many.csv", data)))
    assert failure.unexpected_count == 25
    assert failure.rows == list(range(6, 26))


# ------------------------------------------------------------------------------------------
# Several rules at once


def test_several_broken_rules_are_all_reported(tmp_path):
    data = rows(
        6,
        r1={"direction": "IN"},
        r2={"period": "2024-02-30", "nationality": ""},
        r4={"travellers": "-1"},
        r5={"age_band": "18-30", "travel_mode": "BOAT"},
    )
    data[5] = dict(data[2])
    outcome = validate(write_csv(tmp_path / "multi.csv", data))
    assert not outcome.success
    assert outcome.rows == 6
    got = {(f.expectation, f.column): f.rows for f in outcome.failures}
    assert got == {
        ("expect_column_values_to_not_be_null", "nationality"): [2],
        ("expect_column_values_to_match_regex", "period"): [2],
        ("expect_column_values_to_be_in_set", "direction"): [1],
        ("expect_column_values_to_be_in_set", "age_band"): [5],
        ("expect_column_values_to_be_in_set", "travel_mode"): [5],
        ("expect_column_values_to_match_regex", "travellers"): [4],
        ("expect_compound_columns_to_be_unique", KEY_COLUMNS): [3, 6],
    }
    assert outcome.statistics["unsuccessful_expectations"] == 7
    # Reported in the order the suite lists its expectations.
    suite_order = [
        (e["type"], e["kwargs"].get("column") or ", ".join(e["kwargs"].get("column_list", [])))
        for e in json.loads(SUITE.read_text(encoding="utf-8"))["expectations"]
    ]
    reported = [(f.expectation, f.column) for f in outcome.failures]
    assert reported == [k for k in suite_order if k in set(reported)]


# ------------------------------------------------------------------------------------------
# Files that cannot be read as CSV


def assert_unreadable(outcome: ValidationOutcome, path: Path, *fragments: str) -> None:
    assert outcome.success is False
    assert outcome.error is not None
    assert str(path) in outcome.error
    for fragment in fragments:
        assert fragment in outcome.error
    assert outcome.failures == []
    assert outcome.rows == 0
    json.dumps(outcome.to_dict())


def test_invalid_utf8(tmp_path):
    path = write_csv(tmp_path / "latin1.csv", rows(3))
    raw = path.read_bytes()
    offset = raw.index(b"ZAF")
    path.write_bytes(raw[:offset] + b"\xe9" + raw[offset + 1 :])
    assert_unreadable(validate(path), path, "not valid UTF-8", f"byte {offset}", "line 2")


def test_row_with_too_many_fields(tmp_path):
    path = write_csv(tmp_path / "ragged.csv", rows(4))
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] += ",extra"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_unreadable(validate(path), path, "line 4", "data row 3", "10 fields", "header has 9")


def test_row_with_too_few_fields(tmp_path):
    path = write_csv(tmp_path / "short.csv", rows(4))
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_unreadable(validate(path), path, "line 3", "8 fields", "header has 9")


def test_every_row_with_an_extra_field(tmp_path):
    # The C parser would silently drop the extra field of every row here.
    path = write_csv(tmp_path / "wide.csv", rows(3))
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0]] + [l + ",x" for l in lines[1:]]) + "\n", encoding="utf-8")
    assert_unreadable(validate(path), path, "line 2", "10 fields")


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b"   \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    assert_unreadable(validate(path), path, "empty")


def test_missing_csv_file(tmp_path):
    path = tmp_path / "gone.csv"
    assert_unreadable(validate(path), path, "cannot be read")


# ------------------------------------------------------------------------------------------
# Nothing from the data may leak


def _secret_in_nationality(path: Path) -> None:
    write_csv(path, rows(3, r2={"nationality": SECRET}))


def _secret_in_every_column(path: Path) -> None:
    write_csv(path, rows(3, r2={c: SECRET for c in HEADER}))


def _secret_as_duplicate_key(path: Path) -> None:
    data = rows(3, r1={"nationality": SECRET})
    data[2] = dict(data[0])
    write_csv(path, data)


def _secret_in_ragged_row(path: Path) -> None:
    write_csv(path, rows(3))
    with path.open("a", encoding="utf-8") as f:
        f.write(f"2024-01-01,{SECRET},x\n")


def _secret_without_header(path: Path) -> None:
    # The first data row ends up as the column names.
    write_csv(path, rows(3, r1={"nationality": SECRET, "border_point": SECRET}))
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")


def _secret_in_header(path: Path) -> None:
    write_csv(path, rows(2), header=HEADER[:-1] + [SECRET])


def _secret_next_to_bad_utf8(path: Path) -> None:
    path.write_bytes(
        (",".join(HEADER) + "\n2024-01-01,ZA-BEI,ENTRY,").encode() + SECRET.encode() + b"\xff\n"
    )


def _secret_in_unbalanced_quotes(path: Path) -> None:
    write_csv(path, rows(2))
    with path.open("a", encoding="utf-8") as f:
        f.write(f'2024-01-01,"{SECRET},ENTRY\n')


@pytest.mark.parametrize(
    "make",
    [
        _secret_in_nationality,
        _secret_in_every_column,
        _secret_as_duplicate_key,
        _secret_in_ragged_row,
        _secret_without_header,
        _secret_in_header,
        _secret_next_to_bad_utf8,
        _secret_in_unbalanced_quotes,
    ],
)
def test_no_data_value_leaks(tmp_path, make, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "leak.csv"
    make(path)
    outcome = validate(path, data_docs_dir=tmp_path / "docs")
    assert not outcome.success
    assert outcome.failures or outcome.error
    if outcome.data_docs:
        assert SECRET not in page_html(outcome.data_docs)
    assert SECRET not in json.dumps(outcome.to_dict())
    assert SECRET not in str(outcome)
    assert SECRET not in repr(outcome)
    assert SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_secret_row_is_still_located(tmp_path):
    outcome = validate(write_csv(tmp_path / "leak.csv", rows(3, r2={"nationality": SECRET})))
    failure = only_failure(outcome)
    assert failure.column == "nationality"
    assert failure.rows == [2]


# ------------------------------------------------------------------------------------------
# Compatibility of the result types


def test_result_types_keep_their_positional_constructors():
    failure = FailedExpectation("expect_x", "col", "rule", 1, 50.0, [2], None)
    assert failure.gate is False
    outcome = ValidationOutcome("suite", False, {}, [failure], 2, None)
    assert outcome.data_docs is None
    data = outcome.to_dict()
    assert data["failures"][0]["gate"] is False
    assert data["data_docs"] is None


# ------------------------------------------------------------------------------------------
# Data Docs


def _assert_standalone_page(html: str) -> None:
    assert html.lstrip().lower().startswith("<!doctype html>")
    # Styles and scripts come from CDNs or are inline; nothing beside the page is needed.
    for tag, attr in (("link", "href"), ("script", "src")):
        for match in re.finditer(rf"<{tag}\b[^>]*\b{attr}=\"([^\"]+)\"", html):
            if tag == "link" and "stylesheet" not in match.group(0):
                continue
            assert match.group(1).startswith("https://"), match.group(0)


def test_a_passing_files_page_is_named_at_once_and_rendered_from_its_source_on_first_need(tmp_path):
    docs = tmp_path / "docs" / "nested"
    outcome = validate(write_csv(tmp_path / "ok.csv", rows(6)), data_docs_dir=docs)
    assert outcome.success
    page = Path(outcome.data_docs)
    assert page == docs / "ok.csv.validation.html"
    assert outcome.to_dict()["data_docs"] == str(page)
    assert [p.name for p in docs.iterdir()] == ["ok.csv.validation.json"]
    assert source_of(page).stat().st_mode & 0o777 == 0o600
    assert ensure_page(page)
    assert [p.name for p in docs.iterdir()] == [page.name], "the source is gone once the page is rendered"
    assert page.stat().st_mode & 0o777 == 0o600
    assert ensure_page(page), "a page already rendered is left as it is"
    html = page.read_text(encoding="utf-8")
    _assert_standalone_page(html)
    assert "traveller_flows" in html
    assert "ok.csv" in html


def test_data_docs_page_shows_failures_without_values(tmp_path):
    data = rows(5, r2={"direction": SECRET}, r4={"nationality": f"{SECRET}@example.org"})
    outcome = validate(write_csv(tmp_path / "bad.csv", data), data_docs_dir=tmp_path)
    assert not outcome.success
    assert Path(outcome.data_docs).is_file(), "a failing file's page is rendered at once"
    html = page_html(outcome.data_docs)
    assert SECRET not in html
    assert "ENTRY" in html  # the rule's value set comes from the suite, not the data
    assert "Unsuccessful Expectations" in html
    assert "must not contain" in html


def test_no_page_unless_asked(tmp_path):
    outcome = validate(write_csv(tmp_path / "ok.csv", rows(2)))
    assert outcome.data_docs is None
    assert list(tmp_path.iterdir()) == [tmp_path / "ok.csv"]


def test_unreadable_file_gets_no_page(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    outcome = validate(path, data_docs_dir=tmp_path / "docs")
    assert outcome.error
    assert outcome.data_docs is None
    assert not (tmp_path / "docs").exists()


def test_data_docs_hold_no_values_whatever_the_result_format(tmp_path, monkeypatch):
    # A result that carries every value GX can put in one: the page is still value-free.
    monkeypatch.setattr(
        gx_run,
        "RESULT_FORMAT",
        {"result_format": "COMPLETE", "include_unexpected_rows": True},
    )
    data = rows(4, r1={"sex": SECRET}, r3={"nationality": SECRET, "age_band": SECRET})
    data[3] = dict(data[0])
    outcome = validate(write_csv(tmp_path / "complete.csv", data), data_docs_dir=tmp_path)
    assert not outcome.success
    assert SECRET not in page_html(outcome.data_docs)
    assert SECRET not in json.dumps(outcome.to_dict())


def test_headerless_file_page_shows_no_first_row(tmp_path):
    path = write_csv(tmp_path / "nohead.csv", rows(3, r1={"border_point": SECRET}))
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    outcome = validate(path, data_docs_dir=tmp_path / "docs")
    html = page_html(outcome.data_docs)
    assert SECRET not in html
    assert "[unrecognised column 2]" in html


def test_render_data_docs_from_a_gx_result(tmp_path, gx_results):
    validate(write_csv(tmp_path / "x.csv", rows(3, r2={"sex": SECRET})))
    page = render_data_docs(gx_results[0], tmp_path / "out")
    assert page == tmp_path / "out" / "traveller_flows.validation.html"
    html = page.read_text(encoding="utf-8")
    _assert_standalone_page(html)
    assert SECRET not in html
    # The caller's result is left as GX returned it.
    assert gx_results[0].meta.get("active_batch_definition") is not None


def test_page_failure_does_not_fail_the_validation(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(extract, "render_data_docs", broken)
    monkeypatch.setattr(extract, "write_page_source", broken)
    outcome = validate(write_csv(tmp_path / "ok.csv", rows(2)), data_docs_dir=tmp_path / "docs")
    assert outcome.success
    assert outcome.data_docs is None
    failed = validate(write_csv(tmp_path / "bad.csv", rows(2, r1={"sex": "Q"})), data_docs_dir=tmp_path / "docs")
    assert not failed.success and failed.data_docs is None
    assert caplog.text.count("Data Docs page not written (RuntimeError)") == 2
    assert SECRET not in caplog.text


# ------------------------------------------------------------------------------------------
# goods_crossings

GOODS_HEADER = [
    "declaration_ref",
    "lodged_date",
    "customs_office",
    "procedure",
    "hs_code",
    "origin_country",
    "destination_country",
    "transport_mode",
    "gross_mass_kg",
    "statistical_value",
    "currency",
]
TRANSPORT_MODES = [
    "SEA", "RAIL", "ROAD", "AIR", "POST", "FIXED_INSTALLATION", "INLAND_WATERWAY", "OWN_PROPULSION",
]


REGEX = "expect_column_values_to_match_regex"
IN_SET = "expect_column_values_to_be_in_set"


def good_goods_row(i: int = 0) -> dict:
    return {
        "declaration_ref": hashlib.blake2b(f"decl/{i}".encode(), digest_size=16).hexdigest(),
        "lodged_date": f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
        "customs_office": ["ZA-BEI", "ZA-LEB", "BW-MART", "NA-WVB01"][i % 4],
        "procedure": ["IMPORT", "EXPORT", "TRANSIT"][i % 3],
        "hs_code": ["870323", "100630", "271019", "000000"][i % 4],
        "origin_country": ["ZA", "CN", "DE"][i % 3],
        "destination_country": ["BW", "NA", "ZA"][i % 3],
        "transport_mode": TRANSPORT_MODES[i % len(TRANSPORT_MODES)],
        "gross_mass_kg": ["12", "0.5", "1234.125", "40000.1"][i % 4],
        "statistical_value": ["100", "2500.5", "1999999.99", "0"][i % 4],
        "currency": ["ZAR", "BWP", "USD"][i % 3],
    }


def goods_rows(n: int, **changes_by_row) -> list[dict]:
    out = [good_goods_row(i) for i in range(n)]
    for key, changes in changes_by_row.items():
        out[int(key[1:]) - 1].update(changes)
    return out


def validate_goods(path: Path, **kwargs) -> ValidationOutcome:
    return validate_extract(path, GOODS_SUITE, **kwargs)


def write_goods(path: Path, data: list[dict], header: list[str] = GOODS_HEADER) -> Path:
    return write_csv(path, data, header=header)


def test_goods_suite_file_is_gx_serialisation():
    suite = load_suite(GOODS_SUITE)
    assert suite.name == "goods_crossings"
    assert suite.meta["schema_version"] == "1"
    assert suite.to_json_dict() == json.loads(GOODS_SUITE.read_text(encoding="utf-8"))


def test_goods_valid_file_passes(tmp_path):
    outcome = validate_goods(write_goods(tmp_path / "ok.csv", goods_rows(40)))
    assert outcome.success, outcome.failures
    assert outcome.rows == 40
    assert outcome.suite == "goods_crossings"
    assert outcome.statistics["success_percent"] == 100.0


@pytest.mark.parametrize(
    "column, bad, expectation",
    [
        ("declaration_ref", "ABCDEF0123456789ABCDEF0123456789", REGEX),
        ("declaration_ref", "abcdef0123456789abcdef012345678", REGEX),
        ("lodged_date", "2023-02-29", REGEX),
        ("lodged_date", "2024-04-31", REGEX),
        ("lodged_date", "05/01/2024", REGEX),
        ("customs_office", "ZABEI", REGEX),
        ("customs_office", "za-bei", REGEX),
        ("procedure", "REEXPORT", IN_SET),
        ("hs_code", "8703", REGEX),
        ("hs_code", "8703.23", REGEX),
        ("origin_country", "ZAF", REGEX),
        ("destination_country", "bw", REGEX),
        ("transport_mode", "TRUCK", IN_SET),
        ("gross_mass_kg", "1.2345", REGEX),
        ("gross_mass_kg", "-3", REGEX),
        ("statistical_value", "10.005", REGEX),
        ("statistical_value", "1,000.00", REGEX),
        ("currency", "RAND", REGEX),
        ("currency", "zar", REGEX),
    ],
)
def test_goods_rule_broken_alone(tmp_path, column, bad, expectation):
    path = tmp_path / "bad.csv"
    data = goods_rows(5, r3={column: bad})
    if "," in bad:
        path.write_text(
            ",".join(GOODS_HEADER) + "\n"
            + "\n".join(
                ",".join(f'"{r[c]}"' if c == column else r[c] for c in GOODS_HEADER) for r in data
            ) + "\n",
            encoding="utf-8",
        )
    else:
        write_goods(path, data)
    failure = only_failure(validate_goods(path))
    assert failure.expectation == expectation
    assert failure.column == column
    assert failure.rows == [3]
    assert failure.gate is False


@pytest.mark.parametrize("column", GOODS_HEADER)
def test_goods_empty_cell(tmp_path, column):
    path = write_goods(tmp_path / "e.csv", goods_rows(4, r2={column: ""}))
    failure = only_failure(validate_goods(path))
    assert failure.expectation == "expect_column_values_to_not_be_null"
    assert failure.column == column
    assert failure.rows == [2]


def test_goods_duplicate_declaration_ref(tmp_path):
    data = goods_rows(5)
    data[4]["declaration_ref"] = data[1]["declaration_ref"]
    failure = only_failure(validate_goods(write_goods(tmp_path / "dup.csv", data)))
    assert failure.expectation == "expect_column_values_to_be_unique"
    assert failure.column == "declaration_ref"
    assert failure.rows == [2, 5]


def test_goods_columns_out_of_order(tmp_path):
    header = GOODS_HEADER.copy()
    header[5], header[6] = header[6], header[5]
    path = write_goods(tmp_path / "o.csv", goods_rows(3), header=header)
    failure = only_failure(validate_goods(path))
    assert failure.expectation == "expect_table_columns_to_match_ordered_list"
    assert failure.observed == ", ".join(header)


def test_goods_missing_column(tmp_path):
    header = [c for c in GOODS_HEADER if c != "currency"]
    outcome = validate_goods(write_goods(tmp_path / "m.csv", goods_rows(3), header=header))
    assert outcome.failures[0].expectation == "expect_table_columns_to_match_ordered_list"
    assert {(f.expectation, f.column) for f in outcome.failures[1:]} == {
        ("expect_column_values_to_not_be_null", "currency"),
        ("expect_column_values_to_match_regex", "currency"),
        ("expect_column_values_to_not_contain_identifiers", "currency"),
    }


def test_goods_header_only(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(",".join(GOODS_HEADER) + "\n", encoding="utf-8")
    failure = only_failure(validate_goods(path))
    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert failure.observed == "0"


# ------------------------------------------------------------------------------------------
# Files read in blocks: every block is its own GX batch, results are the whole file's


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows each, so that small files span many GX batches."""
    monkeypatch.setattr(reading, "CHUNK_BYTES", 256)
    return 256


@pytest.fixture
def gx_frames(monkeypatch):
    """Each frame GX is given: its rows, and whether it holds data (the facts frame does not)."""
    seen = []
    run = gx_run.run_gx

    def record(session, df, suite):
        holds_data = len(df.columns) and str(df.dtypes.iloc[0]) != "null[pyarrow]"
        seen.append((len(df), bool(holds_data)))
        return run(session, df, suite)

    monkeypatch.setattr(gx_run, "run_gx", record)
    return seen


@pytest.fixture
def workers(monkeypatch):
    """Two worker processes even for tiny files; returns the pools started."""
    monkeypatch.setattr(validation_workers, "WORKERS", 2)
    monkeypatch.setattr(validation_workers, "PARALLEL_MIN_BYTES", 0)
    started = []
    start = extract.start_workers

    def recording_start(session, size):
        started.append(start(session, size))
        return started[-1]

    monkeypatch.setattr(extract, "start_workers", recording_start)
    return started


def comparable(outcome: ValidationOutcome) -> dict:
    data = outcome.to_dict()
    data.pop("data_docs")
    return data


def custom_suite(tmp_path: Path, *extra: dict, name: str = "custom") -> Path:
    """The traveller_flows suite plus extra expectations."""
    data = json.loads(SUITE.read_text(encoding="utf-8"))
    data["name"] = name
    data["expectations"] += list(extra)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def several_problems(n: int = 60) -> list[dict]:
    data = rows(
        n,
        r2={"direction": "IN"},
        r9={"period": "2024-02-30", "nationality": ""},
        r31={"travellers": "-1"},
        r44={"age_band": "1980-01-31"},
        r58={"sex": "Q"},
    )
    data[49] = dict(data[0], travellers="5")
    data[n - 1] = dict(data[11])
    return data


def test_gx_batches_hold_a_block_not_the_file(tmp_path, small_blocks, gx_frames):
    outcome = validate(write_csv(tmp_path / "ok.csv", rows(60)))
    assert outcome.success, outcome.failures
    assert outcome.rows == 60
    data_batches = [n for n, holds_data in gx_frames if holds_data]
    assert len(data_batches) >= 10
    assert max(data_batches) <= 8
    assert sum(data_batches) == 60
    # The table expectations ran once, on the whole file's row count, without its data.
    assert [n for n, holds_data in gx_frames if not holds_data] == [60]


def test_row_numbers_count_from_the_start_of_the_file(tmp_path, small_blocks, gx_frames):
    data = rows(60, r2={"direction": "IN"}, r23={"direction": "UP"}, r57={"direction": "X"})
    failure = only_failure(validate(write_csv(tmp_path / "rows.csv", data)))
    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert failure.rows == [2, 23, 57]
    assert failure.unexpected_count == 3
    assert failure.unexpected_percent == pytest.approx(5.0)
    assert len(gx_frames) > 3


def test_first_twenty_rows_of_the_file_across_blocks(tmp_path, small_blocks):
    data = rows(60)
    for row in data[15:]:
        row["sex"] = "Q"
    failure = only_failure(validate(write_csv(tmp_path / "many.csv", data)))
    assert failure.unexpected_count == 45
    assert failure.rows == list(range(16, 36))
    assert failure.unexpected_percent == pytest.approx(75.0)


def test_empty_cells_percent_is_over_the_whole_file(tmp_path, small_blocks):
    data = rows(40, r3={"sex": ""}, r38={"sex": ""})
    failure = only_failure(validate(write_csv(tmp_path / "nulls.csv", data)))
    assert failure.expectation == "expect_column_values_to_not_be_null"
    assert failure.rows == [3, 38]
    assert failure.unexpected_percent == pytest.approx(5.0)


def test_duplicate_keys_in_different_blocks(tmp_path, small_blocks, gx_frames):
    data = rows(60)
    data[49] = dict(data[0], travellers="999")
    failure = only_failure(validate(write_csv(tmp_path / "dup.csv", data)))
    assert failure.expectation == "expect_compound_columns_to_be_unique"
    assert failure.column == KEY_COLUMNS
    assert failure.rows == [1, 50]
    assert failure.unexpected_count == 2
    assert failure.unexpected_percent == pytest.approx(2 / 60 * 100)
    # Rows 1 and 50 were never in one GX batch.
    assert max(n for n, holds_data in gx_frames if holds_data) < 49


def test_several_duplicate_groups_across_blocks(tmp_path, small_blocks):
    data = rows(60)
    data[30] = dict(data[2])
    data[59] = dict(data[2])
    data[45] = dict(data[44])
    failure = only_failure(validate(write_csv(tmp_path / "dups.csv", data)))
    assert failure.rows == [3, 31, 45, 46, 60]
    assert failure.unexpected_count == 5


def test_duplicate_declaration_refs_in_different_blocks(tmp_path, small_blocks):
    data = goods_rows(40)
    data[38]["declaration_ref"] = data[1]["declaration_ref"]
    failure = only_failure(validate_goods(write_goods(tmp_path / "dup.csv", data)))
    assert failure.expectation == "expect_column_values_to_be_unique"
    assert failure.column == "declaration_ref"
    assert failure.rows == [2, 39]
    assert failure.unexpected_count == 2


def test_keys_spilled_to_disk_find_the_same_duplicates_and_are_removed(
    tmp_path, small_blocks, monkeypatch
):
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(uniqueness.tempfile, "tempdir", str(spill))
    made = []
    mkdtemp = uniqueness.tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        made.append(mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(uniqueness.tempfile, "mkdtemp", recording_mkdtemp)
    path = write_csv(tmp_path / "dup.csv", several_problems())
    in_memory = validate(path)
    monkeypatch.setattr(uniqueness, "SPILL_RECORDS", 4)
    spilled = validate(path)
    assert made, "the keys never spilled"
    assert comparable(spilled) == comparable(in_memory)
    assert list(spill.iterdir()) == []


def test_rows_whose_key_is_all_empty_are_not_duplicates(tmp_path, small_blocks):
    data = rows(30)
    blank = {c: "" for c in HEADER[:-1]}
    data[3] = dict(data[3], **blank)
    data[27] = dict(data[27], **blank)
    outcome = validate(write_csv(tmp_path / "blank.csv", data))
    assert not outcome.success
    assert "expect_compound_columns_to_be_unique" not in {f.expectation for f in outcome.failures}
    nulls = [f for f in outcome.failures if f.expectation == "expect_column_values_to_not_be_null"]
    assert {f.column for f in nulls} == set(HEADER[:-1])
    assert all(f.rows == [4, 28] for f in nulls)


def test_bad_row_in_the_last_block(tmp_path, small_blocks):
    path = write_csv(tmp_path / "ragged.csv", rows(60))
    with path.open("a", encoding="utf-8") as f:
        f.write("2024-01-01,ZA-BEI,ENTRY,ZAF,0-17,F,ROAD,VISITOR,3,extra\n")
    assert_unreadable(
        validate(path), path, "line 62", "data row 61", "10 fields", "header has 9"
    )


def test_short_row_in_a_middle_block(tmp_path, small_blocks):
    path = write_csv(tmp_path / "short.csv", rows(60))
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[33] = lines[33].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_unreadable(validate(path), path, "line 34", "data row 33", "8 fields")


def test_invalid_utf8_in_a_later_block(tmp_path, small_blocks):
    path = write_csv(tmp_path / "latin1.csv", rows(60))
    raw = path.read_bytes()
    offset = raw.index(b"VISITOR", 2500)
    path.write_bytes(raw[:offset] + b"VISIT\xc9" + raw[offset + 6 :])
    line = raw.count(b"\n", 0, offset) + 1
    assert line > 40
    assert_unreadable(validate(path), path, "not valid UTF-8", f"byte {offset + 5}", f"line {line}")


def test_utf8_error_is_reported_before_a_ragged_row(tmp_path, small_blocks):
    # A whole-file read checks the encoding first; streaming must not report the ragged row
    # it meets earlier instead.
    path = write_csv(tmp_path / "both.csv", rows(60))
    lines = path.read_bytes().split(b"\n")
    lines[3] += b",extra"
    lines[50] = lines[50].replace(b"ZAF", b"Z\xffF")
    path.write_bytes(b"\n".join(lines))
    assert_unreadable(validate(path), path, "not valid UTF-8", "line 51")


def test_multibyte_character_across_a_block_boundary_is_read(tmp_path, small_blocks):
    data = rows(60)
    for row in data:
        row["border_point"] = "ZA-BÉI"
    outcome = validate(write_csv(tmp_path / "accents.csv", data))
    failure = only_failure(outcome)
    assert failure.column == "border_point"
    assert failure.unexpected_count == 60
    assert outcome.error is None


def test_quoted_line_break_across_blocks(tmp_path, monkeypatch):
    data = rows(60)
    path = tmp_path / "quoted.csv"
    lines = [",".join(HEADER)] + [",".join(r[c] for c in HEADER) for r in data]
    lines[40] = lines[40].replace(",ZAF,", ',"Z\nAF",')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outcomes = []
    for size in (130, 256, 1000, 32 << 20):
        monkeypatch.setattr(reading, "CHUNK_BYTES", size)
        outcomes.append(comparable(validate(path)))
    assert all(o == outcomes[0] for o in outcomes)
    assert outcomes[0]["failures"][0]["rows"] == [40]


@pytest.mark.parametrize("size", [200, 333, 1000, 32 << 20])
def test_outcome_does_not_depend_on_the_block_size(tmp_path, monkeypatch, size):
    path = write_csv(tmp_path / "multi.csv", several_problems())
    whole = comparable(validate(path))
    monkeypatch.setattr(reading, "CHUNK_BYTES", size)
    assert comparable(validate(path)) == whole
    got = {(f["expectation"], f["column"]): f["rows"] for f in whole["failures"]}
    assert got[("expect_compound_columns_to_be_unique", KEY_COLUMNS)] == [1, 12, 50, 60]
    assert got[("expect_column_values_to_not_contain_identifiers", "age_band")] == [44]


def test_workers_give_the_outcome_of_one_process(tmp_path, small_blocks, workers):
    path = write_csv(tmp_path / "multi.csv", several_problems())
    goods = goods_rows(40, r7={"currency": "x@y.com"})
    goods[30]["declaration_ref"] = goods[6]["declaration_ref"]
    goods_path = write_goods(tmp_path / "goods.csv", goods)
    in_workers = (comparable(validate(path)), comparable(validate_goods(goods_path)))
    assert len(workers) == 2 and all(pool is not None for pool in workers)
    validation_workers.WORKERS = 1
    in_process = (comparable(validate(path)), comparable(validate_goods(goods_path)))
    assert workers[2:] == [None, None]
    # A pool lives for one file: nothing is left running between files.
    assert multiprocessing.active_children() == []
    assert in_workers == in_process
    assert not in_process[0]["success"] and not in_process[1]["success"]


def test_workers_report_an_unreadable_file_like_one_process(tmp_path, small_blocks, workers):
    path = write_csv(tmp_path / "ragged.csv", rows(60))
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[45] += ",extra"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_unreadable(validate(path), path, "line 46", "data row 45", "10 fields")


def test_row_count_is_checked_on_the_whole_file(tmp_path, small_blocks):
    suite = custom_suite(
        tmp_path,
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 50}, "meta": {}},
    )
    outcome = validate_extract(write_csv(tmp_path / "long.csv", rows(60)), suite)
    failure = only_failure(outcome)
    assert failure.expectation == "expect_table_row_count_to_be_between"
    assert failure.observed == "60"
    assert outcome.rows == 60


def test_mostly_is_judged_over_the_whole_file(tmp_path, small_blocks):
    suite = custom_suite(
        tmp_path,
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "traveller_category", "regex": "^VISITOR$", "mostly": 0.9},
            "meta": {},
        },
    )
    # Five bad rows next to each other: their block is all bad, the file is 92% good.
    data = rows(60)
    for row in data[20:25]:
        row["traveller_category"] = "WORKER"
    assert validate_extract(write_csv(tmp_path / "ok.csv", data), suite).success
    # Seven bad rows, one per block: every block is mostly good, the file is not.
    data = rows(60)
    for i in (3, 12, 21, 30, 39, 48, 57):
        data[i]["traveller_category"] = "WORKER"
    failure = only_failure(validate_extract(write_csv(tmp_path / "bad.csv", data), suite))
    assert failure.unexpected_count == 7
    assert failure.rows == [4, 13, 22, 31, 40, 49, 58]
    assert "in at least 90% of rows" in failure.rule


def test_suite_with_an_aggregate_is_validated_as_one_batch(tmp_path, small_blocks, gx_frames):
    suite = custom_suite(
        tmp_path,
        {
            "type": "expect_column_distinct_values_to_be_in_set",
            "kwargs": {"column": "direction", "value_set": ["ENTRY"]},
            "meta": {},
        },
    )
    data = rows(60, r55={"direction": "EXIT"})
    data[40] = dict(data[1])
    outcome = validate_extract(write_csv(tmp_path / "agg.csv", data), suite)
    assert [n for n, holds_data in gx_frames if holds_data] == [60]
    got = {(f.expectation, f.column): f.rows for f in outcome.failures}
    assert got == {
        ("expect_compound_columns_to_be_unique", KEY_COLUMNS): [2, 41],
        ("expect_column_distinct_values_to_be_in_set", "direction"): [],
    }


def test_blocked_page_holds_no_values(tmp_path, small_blocks):
    data = rows(40, r3={"nationality": SECRET}, r33={"sex": SECRET})
    data[35] = dict(data[2])
    outcome = validate(write_csv(tmp_path / "leak.csv", data), data_docs_dir=tmp_path / "docs")
    html = page_html(outcome.data_docs)
    assert SECRET not in html
    assert "Unsuccessful Expectations" in html
    assert SECRET not in json.dumps(outcome.to_dict())
