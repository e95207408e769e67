"""One spine: opening a home writes nothing, not even a folder; the run that first sees a config change records it, and every
stage's hand-off survives the dict form Airflow keeps it in."""

from __future__ import annotations

import json
import shutil

from borderx.cli import main


def _config_changes(home) -> int:
    lines = (home.audit / "trail.jsonl").read_text().splitlines()
    return sum(json.loads(line)["type"] == "config-changed" for line in lines)


def test_read_only_commands_leave_the_trail_as_it_is_and_the_next_run_records_the_change(
        demo_home, s3_endpoint, bucket, capsys):
    s3_args = ["--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket]
    assert main(["run", "--once", "--settle", "0", *s3_args]) == 1  # the demo's bad extracts are quarantined
    assert _config_changes(demo_home) == 1
    agreement = demo_home.config / "agreements" / "DSA-2026-001.yaml"
    agreement.write_text(agreement.read_text() + "\n# reviewed\n")
    trail = (demo_home.audit / "trail.jsonl").read_bytes()
    for folder in (demo_home.work, demo_home.archive):
        shutil.rmtree(folder)  # what a writing process makes again, and a read-only one must not
    tree = sorted(str(p.relative_to(demo_home.root)) for p in demo_home.root.rglob("*"))

    assert main(["audit", "verify", *s3_args]) == 0
    assert main(["audit", "report", "--home", str(demo_home.root), "--format", "json"]) == 0
    assert main(["deliveries", "list", *s3_args]) == 0
    assert main(["check", "--home", str(demo_home.root)]) == 0
    capsys.readouterr()
    assert (demo_home.audit / "trail.jsonl").read_bytes() == trail
    made = {str(p.relative_to(demo_home.root)) for p in demo_home.root.rglob("*")} - set(tree)
    assert made == set(), "a read-only command made nothing in the home"

    assert main(["run", "--once", "--settle", "0", *s3_args]) == 0
    assert main(["run", "--once", "--settle", "0", *s3_args]) == 0
    events = [json.loads(line) for line in (demo_home.audit / "trail.jsonl").read_text().splitlines()]
    changed = [e for e in events if e["type"] == "config-changed"]
    assert len(changed) == 2, "recorded once, by the first run to see it"
    assert list(changed[-1]["details"]["files"]) == ["config/agreements/DSA-2026-001.yaml"]


def test_every_hand_off_survives_its_dict_form(runtime):
    from borderx.airflow import tasks
    from borderx.bucket.publish import ensure_bucket
    from borderx.exchange import (Accepted, DeliveryJob, DeliveryResult, Exchanged, Finished, Gone, Quarantined,
                                  Received, stages)
    from borderx.exchange.handoff import outcome_from_dict

    def through_xcom(value):
        again = type(value).from_dict(json.loads(json.dumps(value.to_dict())))
        assert again == value
        return again

    outcomes = [stages.validate(runtime, through_xcom(stages.receive(runtime, f)))
                for f in stages.discover(runtime, settle_seconds=0)]
    kinds = {type(o) for o in outcomes}
    assert kinds == {Accepted, Quarantined}, kinds
    for outcome in outcomes:
        assert outcome_from_dict(through_xcom(outcome).to_dict()) == outcome
    accepted = next(o for o in outcomes if isinstance(o, Accepted))
    job = through_xcom(DeliveryJob(accepted, accepted.plans[0]))
    ensure_bucket(runtime.s3, runtime.target.bucket)
    result = through_xcom(stages.deliver(runtime, job.accepted, job.plan))
    assert isinstance(result, DeliveryResult) and result.status == "published" and result.rows
    assert through_xcom(stages.finish(runtime, accepted, [result])).archived
    assert through_xcom(Exchanged(accepted, (result,))).results == (result,)
    assert through_xcom(Gone("x.csv")).to_dict() == {"status": "gone", "name": "x.csv"}
    assert through_xcom(Received(accepted.extract)).extract == accepted.extract
    assert Finished.from_dict({"extract": "x.csv", "archived": None}).deliveries == ()
    assert tasks.delivery_jobs([accepted.to_dict()]) == [DeliveryJob(accepted, p).to_dict() for p in accepted.plans]


def test_a_file_counts_as_done_once_its_events_are_on_the_disk_with_one_wait_for_the_disk(runtime):
    """The ledger settles a file, and its receipt is issued, only after the trail's events of it (its archiving
    included) are on the disk: one fsync covers both."""
    import os

    from borderx.bucket.publish import ensure_bucket
    from borderx.exchange import Accepted, stages

    ensure_bucket(runtime.s3, runtime.target.bucket)
    accepted = next(a for a in (stages.validate(runtime, stages.receive(runtime, f))
                                for f in stages.discover(runtime, settle_seconds=0)) if isinstance(a, Accepted))
    synced, seen = [], []
    trail_sync, settle = runtime.trail.sync, runtime.ledger.settle

    def sync():
        trail_sync()
        synced.append(os.path.getsize(runtime.trail.path))

    def settled(sha256, outcome, **kw):
        # Every event so far, the Archived one last, was in the file at the last sync.
        events = list(runtime.trail.events())
        seen.append((events[-1]["type"], synced[-1] if synced else None, os.path.getsize(runtime.trail.path)))
        settle(sha256, outcome, **kw)

    runtime.trail.sync, runtime.ledger.settle = sync, settled
    with runtime.trail.grouped():
        results = [stages.deliver(runtime, accepted, plan) for plan in accepted.plans]
        synced.clear()
        stages.finish(runtime, accepted, results)
    (last, at_sync, size), = seen
    assert last == "archived" and at_sync == size, "settled before its events were on the disk"
    assert len(synced) == 2, "one fsync before the ledger and the receipt, one at the group's end"
    types = [e["type"] for e in runtime.trail.events()][-2:]
    assert types == ["archived", "receipt-issued"]
