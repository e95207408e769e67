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
    for outcome, folder in zip(outcomes, docs):
        page = Path(outcome.data_docs)
        assert page.parent == folder and page.is_file()
    assert "SIDEWAYS" not in Path(outcomes[-1].data_docs).read_text(encoding="utf-8")


def test_pages_of_passing_files_may_be_written_later_and_failing_ones_are_written_at_once(tmp_path):
    from borderx.validation.batched import write_page, write_pending_pages

    folder = tmp_path / "in"
    folder.mkdir()
    paths = [_good(folder, day) for day in range(1, 4)]
    paths.append(_bad(folder, "direction", BAD["direction"]))
    session = GxSession()
    outcomes = validate_files(paths, SUITE, data_docs_dirs=[tmp_path / "docs" / p.stem for p in paths],
                              session=session, defer_pages=True)
    pages = [Path(o.data_docs) for o in outcomes]
    # The first two passed together; the third stood alone beside the bad one, and alone pages are written.
    assert [p.exists() for p in pages] == [False, False, True, True]
    write_page(str(pages[1]), session)
    assert [p.exists() for p in pages] == [False, True, True, True]
    write_pending_pages(session)
    assert all(p.is_file() for p in pages) and not session.pending_pages
    alone = validate_extract(paths[0], SUITE, session=GxSession(), data_docs_dir=tmp_path / "alone")

    def same_but_times(page: Path) -> str:
        text = re.sub(r"borderx-validation-\d+", "N", page.read_text(encoding="utf-8"))
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "U", text)
        return re.sub(r"\d{4}-?\d{2}-?\d{2}[T ][\d:.]+Z?(\+00:00)?", "T", text)

    assert same_but_times(pages[0]) == same_but_times(Path(alone.data_docs))


def test_pages_handed_to_a_writer_process_are_written_by_the_end_of_its_block(tmp_path):
    from borderx.validation.batched import write_page
    from borderx.validation.page_writer import PageWriter

    folder = tmp_path / "in"
    folder.mkdir()
    paths = [_good(folder, day) for day in range(1, 5)]
    session = GxSession()
    outcomes = validate_files(paths, SUITE, data_docs_dirs=[tmp_path / "docs" / p.stem for p in paths],
                              session=session, defer_pages=True)
    pages = [Path(o.data_docs) for o in outcomes]
    with PageWriter(session, min_pages=1) as writer:
        writer.hand_over()
        assert not session.pending_pages and set(session.pages_apart) == {str(p) for p in pages}
        # A page wanted at once (its file goes to quarantine) is waited for.
        write_page(str(pages[2]), session)
        assert pages[2].is_file()
    assert all(p.is_file() for p in pages) and not session.pages_apart
    here = validate_files(paths, SUITE, data_docs_dirs=[tmp_path / "here" / p.stem for p in paths],
                          session=GxSession())
    assert [_same_but_times(p) for p in pages] == [_same_but_times(Path(o.data_docs)) for o in here]


def _same_but_times(page: Path) -> str:
    text = re.sub(r"borderx-validation-\d+", "N", page.read_text(encoding="utf-8"))
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "U", text)
    return re.sub(r"\d{4}-?\d{2}-?\d{2}[T ][\d:.]+Z?(\+00:00)?", "T", text)
