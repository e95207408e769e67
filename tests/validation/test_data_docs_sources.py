"""A passing file's Data Docs page is left as a value-free source and rendered from it on first need: the source
holds no cell value, renders the page GX renders at once, costs little to build, and a source altered on disk
gives a clear error or a page without markup of its own, never a crash."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from borderx.errors import PageSourceError
from borderx.validation import GxSession, gx_run, validate_extract
from borderx.validation.datadocs import (
    MAX_SOURCE_BYTES,
    ensure_page,
    page_html,
    page_source,
    render_data_docs,
    source_of,
    write_page_source,
)
from borderx.validation.suite import columns_named_in, load_suite

SUITE = Path(__file__).resolve().parents[2] / "expectations" / "traveller_flows.json"
HEADER = ["period", "border_point", "direction", "nationality", "age_band", "sex", "travel_mode",
          "traveller_category", "travellers"]
SECRET = "SECRETVALUE123"
# Cells that pass the suite and appear nowhere else.
DISTINCT = ["ZA-QZ7XK9", "ZA-WV8JY4", "70931582646", "58120497363"]


def _write(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _rows(n: int, point: str = "ZA-BEI", travellers: str = "7") -> list[list[str]]:
    ages = ["0-17", "18-29", "30-44", "45-64", "65+", "UNK"]
    return [[f"2026-01-{i % 28 + 1:02d}", point, "ENTRY", "ZAF", ages[i // 28 % 6], "F", "ROAD", "VISITOR",
             travellers] for i in range(n)]


def _same_but_times(html: str) -> str:
    html = re.sub(r"borderx-validation-\d+", "N", html)
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "U", html)  # GX's element ids
    # GX's cache-busting query on its logo, and the run time.
    html = re.sub(r"\?d=\d{8}T\d{6}\.\d+Z", "?d=D", html)
    return re.sub(r"\d{4}-\d{2}-\d{2}T[\d:.]+(\+00:00)?", "T", html)


def test_a_passing_files_source_holds_none_of_its_values(tmp_path):
    rows = _rows(12, point=DISTINCT[0], travellers=DISTINCT[2]) + _rows(12, point=DISTINCT[1], travellers=DISTINCT[3])
    path = _write(tmp_path / "distinct.csv", rows)
    outcome = validate_extract(path, SUITE, data_docs_dir=tmp_path / "docs")
    assert outcome.success
    assert all(value in path.read_text() for value in DISTINCT)
    source = source_of(outcome.data_docs).read_text(encoding="utf-8")
    assert "expect_column_values_to_match_regex" in source and "border_point" in source
    assert not [value for value in DISTINCT if value in source]
    assert ensure_page(outcome.data_docs)
    assert not [value for value in DISTINCT if value in Path(outcome.data_docs).read_text(encoding="utf-8")]


def test_a_source_holds_no_value_whatever_the_result_format(tmp_path, monkeypatch, gx_results):
    monkeypatch.setattr(gx_run, "RESULT_FORMAT", {"result_format": "COMPLETE", "include_unexpected_rows": True})
    rows = _rows(6)
    rows[2][1] = SECRET  # border_point: fails its pattern
    rows[4][3] = SECRET  # nationality
    rows[5] = list(rows[0])  # a duplicate key
    validate_extract(_write(tmp_path / "complete.csv", rows), SUITE)
    with_values = [r for r in gx_results if SECRET in json.dumps(r.to_json_dict(), default=str)]
    assert with_values, "GX's own result quotes the cells"
    for n, result in enumerate(with_values):
        page = write_page_source(result, tmp_path / "docs" / str(n), name="complete.csv", session=GxSession())
        assert SECRET not in source_of(page).read_text(encoding="utf-8")
        assert ensure_page(page) and SECRET not in page.read_text(encoding="utf-8")


def test_a_page_rendered_from_its_source_is_the_page_rendered_at_once(tmp_path, gx_results):
    rows = _rows(8)
    rows[3][2] = "SIDEWAYS"  # direction
    validate_extract(_write(tmp_path / "bad.csv", rows), SUITE)
    validate_extract(_write(tmp_path / "good.csv", _rows(8)), SUITE)
    assert {r.success for r in gx_results} == {True, False}
    session = GxSession()
    for n, result in enumerate(gx_results):
        at_once = render_data_docs(result, tmp_path / "now" / str(n), name="x.csv", session=session)
        later = write_page_source(result, tmp_path / "later" / str(n), name="x.csv", session=session)
        assert not later.exists()
        assert _same_but_times(page_html(later)) == _same_but_times(page_html(later)), "rendered again, the same"
        assert ensure_page(later)
        assert _same_but_times(later.read_text(encoding="utf-8")) == _same_but_times(
            at_once.read_text(encoding="utf-8"))


def test_building_a_source_copies_nothing_and_renders_nothing(tmp_path, gx_results, monkeypatch):
    """What keeps a source at a fraction of a millisecond (bench/README.md): it is read off the result field by
    field, with no deep copy of it and no GX renderer; the result is left as it was."""
    import copy

    validate_extract(_write(tmp_path / "good.csv", _rows(40)), SUITE)
    result = max(gx_results, key=lambda r: len(r.results))
    before = json.dumps(result.to_json_dict(), sort_keys=True, default=str)
    known = columns_named_in(load_suite(SUITE))

    def refused(*args, **kwargs):
        raise AssertionError("building a source must not deep-copy or render")

    monkeypatch.setattr(copy, "deepcopy", refused)
    monkeypatch.setattr(GxSession, "renderers", refused)
    source = page_source(result, known, run_name="borderx-validation-1", asset="good.csv",
                         run_time="2026-01-01T00:00:00")
    monkeypatch.undo()
    assert len(source["results"]) == len(result.results)
    assert json.dumps(result.to_json_dict(), sort_keys=True, default=str) == before


@pytest.fixture
def source(tmp_path) -> Path:
    outcome = validate_extract(_write(tmp_path / "in.csv", _rows(5)), SUITE, data_docs_dir=tmp_path / "docs")
    return source_of(outcome.data_docs)


def _altered(source: Path, change) -> Path:
    data = json.loads(source.read_text(encoding="utf-8"))
    change(data)
    source.write_text(json.dumps(data), encoding="utf-8")
    return source


def _set(key, value):
    return lambda data: data.__setitem__(key, value)


def _set_in_first(key, value):
    return lambda data: data["results"][0].__setitem__(key, value)


ALTERED = {
    "run name": _set("run_name", "<img src=x onerror=alert(1)>"),
    "data asset": _set("asset", "<script>alert(1)</script>"),
    "run time": _set("run_time", "<b>soon</b>"),
    "version": _set("source_version", 99),
    "results": _set("results", {"<b>": 1}),
    "expectation type": _set_in_first("type", "expect_<b>x</b>"),
    "unknown expectation": _set_in_first("type", "expect_the_unknown"),
    "arguments GX refuses": lambda data: data["results"][-1]["kwargs"].__setitem__("kinds", ["<b>nonsense</b>"]),
    "success": _set("success", "yes"),
}


@pytest.mark.parametrize("what", sorted(ALTERED))
def test_an_altered_source_gives_a_clear_error_and_no_page(source, what):
    _altered(source, ALTERED[what])
    page = source.with_name(source.name.replace(".json", ".html"))
    with pytest.raises(PageSourceError) as raised:
        ensure_page(page)
    message = str(raised.value)
    assert message.startswith(source.name + ": ") and "<" not in message, message
    assert not page.exists() and source.exists()


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b"{" * 100_000, b" " * MAX_SOURCE_BYTES + b"{}"],
                         ids=["not-json", "a-list", "deep", "oversized"])
def test_a_source_that_is_not_one_gives_a_clear_error(source, content):
    source.write_bytes(content)
    with pytest.raises(PageSourceError, match=re.escape(source.name)):
        page_html(source.with_name(source.name.replace(".json", ".html")))


def test_markup_written_into_a_source_reaches_its_page_only_escaped(source):
    n = iter(range(1, 10_000))
    # Names GX validates (expectation types, identifier kinds) and the run's own fields are checked apart.
    checked = {"type", "kinds", "run_name", "asset", "run_time"}

    def marked(value, key=None):
        if isinstance(value, str) and key not in checked:
            return f"<i>M{next(n)}</i>"
        if isinstance(value, list) and key not in checked:
            return [marked(v) for v in value]
        if isinstance(value, dict):
            return {k: marked(v, k) for k, v in value.items()}
        return value

    def change(data):
        data.update(marked(data))
        # The gate's observed names are shown as they are; a table's column names only if the suite uses them.
        gate = next(r for r in data["results"] if r["type"] == "expect_table_columns_to_not_be_identifiers")
        gate["result"]["observed_value"] = ["<i>Mobserved</i>"]

    _altered(source, change)
    html = page_html(source.with_name(source.name.replace(".json", ".html")))
    assert "Expectation Validation Result" in html
    assert not re.findall(r"<i>M\w+</i>", html)
    assert "&lt;i&gt;Mobserved" in html and "&lt;i&gt;M1&lt;/i&gt;" in html


def test_validating_the_same_content_again_leaves_only_the_new_runs_page(tmp_path):
    session = GxSession()
    path = _write(tmp_path / "again.csv", _rows(5))
    first = validate_extract(path, SUITE, data_docs_dir=tmp_path / "docs", session=session)
    assert ensure_page(first.data_docs) and "borderx-validation-1" in page_html(first.data_docs)
    second = validate_extract(path, SUITE, data_docs_dir=tmp_path / "docs", session=session)
    assert second.data_docs == first.data_docs and not Path(second.data_docs).exists()
    assert "borderx-validation-2" in page_html(second.data_docs)
    rows = _rows(5)
    rows[0][2] = "SIDEWAYS"
    _write(path, rows)
    third = validate_extract(path, SUITE, data_docs_dir=tmp_path / "docs", session=session)
    assert not third.success and third.data_docs == first.data_docs
    assert [p.name for p in (tmp_path / "docs").iterdir()] == [Path(third.data_docs).name]
    assert "borderx-validation-3" in page_html(third.data_docs)
