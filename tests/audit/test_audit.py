"""The audit trail's hash chain: every kind of tampering is caught, concurrent appends never fork it."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from borderx.audit import events
from borderx.audit.trail import AuditTrail
from borderx.cli import main
from borderx.exchange import run_once

REPO = Path(__file__).resolve().parents[2]


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


def test_a_group_of_events_reaches_the_disk_with_one_fsync_and_is_readable_at_once(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    trail = AuditTrail(tmp_path / "audit")
    trail.append("received", provider="ZA-DHA", source_sha256="0" * 64, size=1)
    assert len(synced) == 1
    with trail.grouped():
        for i in range(3):
            trail.append("received", provider="ZA-DHA", source_sha256=f"{i + 1:064x}", size=i)
        with trail.grouped():
            trail.append("received", provider="ZA-DHA", source_sha256="f" * 64, size=9)
        assert len(synced) == 1
        # Another reader (or process) sees every event at once, and appends after them.
        other = AuditTrail(tmp_path / "audit")
        assert other.verify() == (5, None)
        trail.commit()
        assert len(synced) == 2
        trail.commit()
        assert len(synced) == 2
        trail.append("received", provider="ZA-DHA", source_sha256="e" * 64, size=9)
    assert len(synced) == 3
    with trail.grouped():
        pass
    assert len(synced) == 3
    assert trail.verify() == (6, None)


GROUP_THEN_KILL = """
import os, signal, sys
from borderx.audit.trail import AuditTrail
trail = AuditTrail(sys.argv[1])
with trail.grouped():
    for i in range(3):
        trail.append("received", provider="ZA-DHA", source_sha256=f"{i:064x}", size=i)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_inside_a_group_loses_none_of_its_events(tmp_path):
    killed = subprocess.run([sys.executable, "-c", GROUP_THEN_KILL, str(tmp_path / "audit")], capture_output=True,
                            text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    assert AuditTrail(tmp_path / "audit").verify() == (3, None)


def test_record_writes_the_event_its_class_builds(tmp_path):
    trail = AuditTrail(tmp_path / "audit", clock=_fixed_clock())
    event = events.Received(provider="ZA-DHA", dataset="traveller_flows", source_sha256="a" * 64,
                            source_name="f.csv", size=12)
    line = trail.record(event, actor={"hub": True, "via": "borderx run"})
    assert line["type"] == "received" and line["details"] == event.details()
    assert list(trail.events()) == [line]
    # A field left out, or one no definition has, is refused before anything is written.
    with pytest.raises(TypeError):
        events.Received(provider="ZA-DHA", dataset="traveller_flows", source_sha256="a" * 64, source_name="f.csv")
    with pytest.raises(TypeError):
        events.build("received", **event.details(), colour="blue")
    with pytest.raises(ValueError, match="unknown audit event type"):
        trail.append("exploded")
    assert trail.verify() == (1, None)


def test_event_schema_on_disk_is_the_one_the_definitions_generate():
    on_disk = (REPO / "docs" / "events" / events.SCHEMA_FILE).read_text(encoding="utf-8")
    assert on_disk == events.schema_text(), "regenerate it: python -m borderx.audit.events docs/events"
    jsonschema.Draft202012Validator.check_schema(json.loads(on_disk))


def test_every_event_of_a_real_run_fits_its_definition_and_the_schema(runtime, capsys):
    summary = run_once(runtime, settle_seconds=0)
    delivery = summary.published[0]["delivery_id"]
    assert main(["deliveries", "revoke", delivery, "--reason", "sent in error", "--home", str(runtime.home.root),
                 "--s3-endpoint", runtime.target.endpoint_url, "--bucket", runtime.target.bucket]) == 0
    schema = json.loads((REPO / "docs" / "events" / events.SCHEMA_FILE).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    trail = list(runtime.trail.events())
    for event in trail:
        assert not list(validator.iter_errors(event)), event
        assert events.build(event["type"], **event["details"]).details() == event["details"]
    assert {e["type"] for e in trail} >= {"config-changed", "received", "validated", "quarantined", "minimised",
                                          "suppressed", "encrypted", "signed", "published", "archived", "revoked"}
    # The schema is no formality: a detail no definition has, or a missing one, does not fit.
    forged = {**trail[-1], "details": {**trail[-1]["details"], "note": "x"}}
    assert list(validator.iter_errors(forged))
    cut = {**trail[-1], "details": {k: v for k, v in trail[-1]["details"].items() if k != "reason"}}
    assert list(validator.iter_errors(cut))


def test_trails_of_one_folder_appending_in_turn_keep_one_chain(tmp_path):
    """Each process has its own trail object on the same file: an append after another's follows that one."""
    from borderx.audit.trail import AuditTrail as Trail

    first, second = Trail(tmp_path / "audit"), Trail(tmp_path / "audit")
    order = [first, first, second, first, second, second, first]
    for n, trail in enumerate(order):
        trail.append("received", provider="ZA-DHA", dataset="x", source_sha256="a" * 64, source_name=f"f{n}",
                     size=n)
    count, broken = first.verify()
    assert (count, broken) == (len(order), None)
    assert [e["seq"] for e in first.events()] == list(range(1, len(order) + 1))
