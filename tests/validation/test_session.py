"""A GxSession is one process's validation state: handed in, or the process's own, never a
parent's after a fork."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path

from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, traveller_flows_rows, write_csv
from borderx.validation import GxSession, process_session, validate_extract
from borderx.validation import workers as validation_workers
from borderx.validation.datadocs import page_html

SUITE = Path(__file__).resolve().parents[2] / "expectations" / "traveller_flows.json"
FORK = multiprocessing.get_context("fork")


def _extract(path: Path, bad_row: int | None = None) -> Path:
    rows = list(traveller_flows_rows(["ZA-BEI"], dt.date(2026, 1, 1), 3))
    if bad_row is not None:
        rows[bad_row][2] = "SIDEWAYS"  # direction
    return write_csv(path, TRAVELLER_FLOWS_COLUMNS, rows)


def test_a_session_handed_in_gives_the_outcome_of_the_process_session(tmp_path):
    path = _extract(tmp_path / "a.csv", bad_row=4)
    own = GxSession()
    given = validate_extract(path, SUITE, session=own)
    default = validate_extract(path, SUITE)
    assert given == default
    assert not given.success and given.failures[0].rows == [5]
    assert own is not process_session()
    assert process_session() is process_session()


def test_each_page_gets_the_next_run_name_of_its_session(tmp_path):
    own = GxSession()
    names = []
    for n in range(2):
        outcome = validate_extract(_extract(tmp_path / f"{n}.csv"), SUITE, session=own,
                                   data_docs_dir=tmp_path / "docs")
        names.append(page_html(outcome.data_docs))
    assert "borderx-validation-1" in names[0] and "borderx-validation-2" in names[1]


def _validate_in_child(path: str, results) -> None:
    session = process_session()
    results.put((id(session), session.lock.locked(), validate_extract(Path(path), SUITE).success))


def test_a_forked_child_builds_its_own_session_even_while_the_parent_holds_its_lock(tmp_path):
    path = _extract(tmp_path / "ok.csv")
    parent = process_session()
    assert validate_extract(path, SUITE).success
    results = FORK.Queue()
    with parent.lock:  # as another thread of the parent would, running GX at the fork
        child = FORK.Process(target=_validate_in_child, args=(str(path), results))
        child.start()
        child.join(timeout=120)
    assert child.exitcode == 0, "the child did not finish: it waited on its parent's lock"
    session_id, locked, success = results.get(timeout=5)
    assert session_id != id(parent) and not locked and success


def _validate_as_a_daemon(paths: list[str], results) -> None:
    validation_workers.WORKERS = 2
    validation_workers.PARALLEL_MIN_BYTES = 0
    session = GxSession()
    outcomes = [validate_extract(Path(p), SUITE, session=session).to_dict() for p in paths]
    results.put((session.workers_unavailable, outcomes))


def test_a_daemonic_process_validates_in_process_once_workers_cannot_start(tmp_path):
    # A Celery prefork worker is daemonic, and a daemonic process may not have children.
    paths = [_extract(tmp_path / "a.csv", bad_row=2), _extract(tmp_path / "b.csv")]
    expected = [validate_extract(p, SUITE).to_dict() for p in paths]
    results = FORK.Queue()
    daemon = FORK.Process(target=_validate_as_a_daemon, args=([str(p) for p in paths], results),
                          daemon=True)
    daemon.start()
    unavailable, outcomes = results.get(timeout=120)
    daemon.join(timeout=30)
    assert unavailable
    assert outcomes == expected
