"""Listing deliveries and revoking one: the delivery stops existing and a signed tombstone says why."""

from __future__ import annotations

import json

import pytest

from borderx.cli import main
from borderx.crypto import sshsig
from borderx.bucket.deliveries import TOMBSTONE_NAMESPACE, list_deliveries, read_tombstone
from borderx.exchange import run_once


def _args(runtime, *extra):
    return [*extra, "--home", str(runtime.home.root), "--s3-endpoint", runtime.target.endpoint_url,
            "--bucket", runtime.target.bucket]


def test_list_filters_by_agreement_recipient_dataset_and_dates(runtime, capsys):
    run_once(runtime, settle_seconds=0)
    assert main(_args(runtime, "deliveries", "list", "--format", "json")) == 0
    everything = json.loads(capsys.readouterr().out)
    assert len(everything) == 6 and {d["state"] for d in everything} == {"complete"}
    assert main(_args(runtime, "deliveries", "list", "--format", "json", "--recipient", "NA-MHAISS")) == 0
    assert {(d["agreement"], d["dataset"]) for d in json.loads(capsys.readouterr().out)} == {
        ("DSA-2026-001", "traveller_flows"), ("DSA-2026-003", "goods_crossings")}
    assert main(_args(runtime, "deliveries", "list", "--format", "json", "--agreement", "DSA-2026-002")) == 0
    assert [d["recipient"] for d in json.loads(capsys.readouterr().out)] == ["BW-BURS"]
    assert main(_args(runtime, "deliveries", "list", "--format", "json", "--from", "2099-01-01")) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_revoke_removes_the_delivery_and_leaves_a_signed_tombstone(runtime, s3, capsys):
    summary = run_once(runtime, settle_seconds=0)
    target = summary.published[0]
    assert main(_args(runtime, "deliveries", "revoke", target["delivery_id"], "--reason", "sent under the wrong DSA")) == 0
    [revoked] = [d for d in list_deliveries(s3, runtime.target.bucket) if d.delivery_id == target["delivery_id"]]
    assert revoked.state == "revoked"
    names = sorted(o["Key"].rsplit("/", 1)[1] for o in
                   s3.list_objects_v2(Bucket=runtime.target.bucket, Prefix=revoked.prefix)["Contents"])
    assert names == ["tombstone.json", "tombstone.json.sig"]
    hub_key = runtime.config.settings.hub.signing_public_key
    tombstone = read_tombstone(s3, runtime.target.bucket, revoked.prefix, hub_key)
    assert tombstone["reason"] == "sent under the wrong DSA" and tombstone["delivery_id"] == target["delivery_id"]
    body = s3.get_object(Bucket=runtime.target.bucket, Key=revoked.prefix + "tombstone.json")["Body"].read()
    with pytest.raises(sshsig.SignatureError):
        sshsig.verify(hub_key, body.replace(b"wrong", b"right"),
                      s3.get_object(Bucket=runtime.target.bucket, Key=revoked.prefix + "tombstone.json.sig")["Body"].read(),
                      TOMBSTONE_NAMESPACE)
    events = [e for e in runtime.trail.events() if e["type"] == "revoked"]
    assert len(events) == 1 and events[0]["details"]["reason"] == "sent under the wrong DSA"
    # Running the exchange again does not bring a revoked delivery back.
    assert run_once(runtime, settle_seconds=0).files == 0
    assert main(_args(runtime, "deliveries", "revoke", "f" * 32, "--reason", "x")) == 1


def test_the_audit_report_lists_revocations(runtime, capsys):
    summary = run_once(runtime, settle_seconds=0)
    target = summary.published[0]["delivery_id"]
    assert main(_args(runtime, "deliveries", "revoke", target, "--reason", "consent withdrawn")) == 0
    capsys.readouterr()
    assert main(["audit", "report", "--home", str(runtime.home.root), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["delivery_id"], r["reason"]) for r in report["revocations"]] == [(target, "consent withdrawn")]
