"""Small files validated together give each file the outcome it gets alone: a bad file among good ones fails
alone, with its own rows, and the good ones pass with their own counts."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, traveller_flows_rows, write_csv
from borderx.validation import GxSession, gx_run, validate_extract
from borderx.validation.batched import validate_files
from borderx.validation.datadocs import ensure_page, page_html, source_of

SUITE = Path(__file__).resolve().parents[2] / "expectations" / "traveller_flows.json"


def _rows(day: int) -> list[list[str]]:
    return [list(r) for r in traveller_flows_rows(["ZA-BEI", "ZA-LEB"], dt.date(2026, 1, day), 1 + day % 3, seed=day)]


def _good(folder: Path, day: int) -> Path:
    return write_csv(folder / f"good-{day:02d}.csv", TRAVELLER_FLOWS_COLUMNS, _rows(day))


def _bad(folder: Path, name: str, change) -> Path:
    rows = _rows(20 + len(list(folder.iterdir())))
    change(rows)
    return write_csv(folder / f"{name}.csv", TRAVELLER_FLOWS_COLUMNS, rows)


def _set(rows, row, column, value):
    rows[row][TRAVELLER_FLOWS_COLUMNS.index(column)] = value


BAD = {
    "direction": lambda rows: _set(rows, 4, "direction", "SIDEWAYS"),
    "empty-cell": lambda rows: _set(rows, 2, "sex", ""),
    "negative": lambda rows: _set(rows, 7, "travellers", "-17"),
    "duplicate-key": lambda rows: rows.append(list(rows[3])),
    "identifier": lambda rows: _set(rows, 1, "traveller_category", "someone@example.org"),
    "quoted": lambda rows: _set(rows, 5, "nationality", 'Z"AF'),
}


@pytest.fixture
def counted_verdicts(monkeypatch):
    calls = []
    real = gx_run.all_pass

    def all_pass(session, df, suite):
        calls.append(len(df))
        return real(session, df, suite)

    monkeypatch.setattr(gx_run, "all_pass", all_pass)
    return calls


def test_good_files_pass_together_in_one_batch_with_their_own_counts(tmp_path, counted_verdicts):
    paths = [_good(tmp_path, day) for day in range(1, 13)]
    together = validate_files(paths, SUITE, session=GxSession())
    alone = [validate_extract(p, SUITE, session=GxSession()) for p in paths]
    assert together == alone
    assert all(o.success for o in together)
    assert len({o.rows for o in together}) > 1, "files of different lengths, each counted as its own"
    assert counted_verdicts == [sum(o.rows for o in alone)], "one shared batch of every row"


@pytest.mark.parametrize("kind", sorted(BAD))
def test_one_bad_file_among_good_ones_fails_alone_as_it_would_alone(tmp_path, kind):
    paths = [_good(tmp_path, day) for day in range(1, 8)]
    paths.insert(3, _bad(tmp_path, kind, BAD[kind]))
    together = validate_files(paths, SUITE, session=GxSession())
    alone = [validate_extract(p, SUITE, session=GxSession()) for p in paths]
    assert together == alone
    assert [o.success for o in together] == [True] * 3 + [False] + [True] * 4
    assert together[3].failures, "the bad file has its findings"


def test_files_of_other_shapes_and_unreadable_files_are_validated_alone(tmp_path, counted_verdicts):
    paths = [_good(tmp_path, day) for day in range(1, 5)]
    paths.append(write_csv(tmp_path / "short.csv", TRAVELLER_FLOWS_COLUMNS[:-1],
                           [r[:-1] for r in _rows(9)]))
    (tmp_path / "empty.csv").write_bytes(b"")
    paths.append(tmp_path / "empty.csv")
    (tmp_path / "latin.csv").write_bytes(",".join(TRAVELLER_FLOWS_COLUMNS).encode() + b"\nVISIT\xc9\n")
    paths.append(tmp_path / "latin.csv")
    together = validate_files(paths, SUITE, session=GxSession())
    alone = [validate_extract(p, SUITE, session=GxSession()) for p in paths]
    assert together == alone
    assert [o.success for o in together] == [True] * 4 + [False] * 3
    assert together[5].error and together[6].error
    assert counted_verdicts[0] == sum(o.rows for o in alone[:4]), "the good ones shared a batch"


def test_each_file_gets_its_own_data_docs_page(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [_good(folder, day) for day in range(1, 4)]
    paths.append(_bad(folder, "direction", BAD["direction"]))
    docs = [tmp_path / "docs" / p.stem for p in paths]
    outcomes = validate_files(paths, SUITE, data_docs_dirs=docs, session=GxSession())
    pages = [Path(o.data_docs) for o in outcomes]
    assert [p.parent for p in pages] == docs
    # Passing files' pages are left as their sources; the failing file's is rendered at once.
    assert [p.exists() for p in pages] == [False, False, False, True]
    assert all(source_of(p).is_file() for p in pages[:3])
    assert "SIDEWAYS" not in pages[-1].read_text(encoding="utf-8")
    assert all(ensure_page(p) and p.is_file() for p in pages)


def test_pages_of_files_passing_together_are_the_pages_they_get_alone(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [_good(folder, day) for day in range(1, 5)]
    together = validate_files(paths, SUITE, data_docs_dirs=[tmp_path / "docs" / p.stem for p in paths],
                              session=GxSession())
    alone = [validate_extract(p, SUITE, session=GxSession(), data_docs_dir=tmp_path / "alone" / p.stem)
             for p in paths]
    assert [_same_but_times(page_html(o.data_docs)) for o in together] == [
        _same_but_times(page_html(o.data_docs)) for o in alone]


def _same_but_times(html: str) -> str:
    text = re.sub(r"borderx-validation-\d+", "N", html)
    text = re.sub(r"\?d=\d{8}T\d{6}\.\d+Z", "?d=D", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "U", text)
    return re.sub(r"\d{4}-?\d{2}-?\d{2}[T ][\d:.]+Z?(\+00:00)?", "T", text)
