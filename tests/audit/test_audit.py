"""The audit trail's hash chain: every kind of tampering is caught, concurrent appends never fork it."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pytest

from borderx.audit.trail import AuditTrail


def _fixed_clock():
    moment = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
    return lambda: moment


@pytest.fixture
def trail(tmp_path):
    t = AuditTrail(tmp_path / "audit", clock=_fixed_clock())
    for i in range(5):
        t.append("received", provider="ZA-DHA", source_sha256=f"{i:064x}", size=i)
    return t


def _lines(trail):
    return trail.path.read_text().splitlines(keepends=True)


def _write(trail, lines):
    trail.path.write_text("".join(lines))


def test_intact_chain_verifies(trail):
    assert trail.verify() == (5, None)
    events = list(trail.events())
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] for a, b in zip(events, events[1:]))


def test_changed_byte_is_caught(trail):
    lines = _lines(trail)
    lines[2] = lines[2].replace('"size":2', '"size":9')
    _write(trail, lines)
    count, broken = trail.verify()
    assert count == 2 and broken.line == 3 and "hash" in broken.reason


def test_deleted_event_is_caught(trail):
    lines = _lines(trail)
    del lines[1]
    _write(trail, lines)
    assert trail.verify()[1].line == 2


def test_inserted_event_is_caught(trail):
    lines = _lines(trail)
    forged = json.loads(lines[1])
    forged["details"]["size"] = 99
    lines.insert(2, json.dumps(forged) + "\n")
    _write(trail, lines)
    assert trail.verify()[1].line == 3


def test_reordered_pair_is_caught(trail):
    lines = _lines(trail)
    lines[1], lines[2] = lines[2], lines[1]
    _write(trail, lines)
    assert trail.verify()[1].line == 2


def _append_many(folder, n):
    t = AuditTrail(folder)
    for i in range(n):
        t.append("received", worker=multiprocessing.current_process().name, i=i)


def test_concurrent_appends_keep_one_chain(tmp_path):
    folder = tmp_path / "audit"
    procs = [multiprocessing.Process(target=_append_many, args=(folder, 40)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert AuditTrail(folder).verify() == (160, None)
