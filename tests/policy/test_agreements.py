"""Agreements enforced in code: only those in force publish, the strictest small-cell rule wins, keys out of
their validity are never used, and the audit trail says which rule stopped what."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess

import pytest
import yaml

from borderx.exchange import Runtime, run_once
from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, write_csv

AGREEMENT = "DSA-2026-001"


def _edit_yaml(path, change):
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _open(home, s3_endpoint, bucket, today=None):
    clock = (lambda: dt.datetime.combine(today, dt.time(12), dt.timezone.utc)) if today else None
    return Runtime.open(home.root, endpoint_url=s3_endpoint, bucket=bucket, **({"clock": clock} if clock else {}))


def _only_flows(home, rows):
    """Replaces the demo's extracts with one traveller_flows file of the given rows."""
    for path in home.intake.rglob("*"):
        if path.is_file():
            path.unlink()
    return write_csv(home.intake / "ZA-DHA" / "traveller_flows" / "flows.csv", TRAVELLER_FLOWS_COLUMNS, rows)


def _flow_rows(counts):
    return [["2026-11-01", "ZA-BEI", "ENTRY", nat, "18-29", "F", "ROAD", "VISITOR", str(c)]
            for nat, c in zip(["ZAF", "BWA", "NAM", "ZWE", "MOZ", "LSO", "SWZ", "ZMB"], counts)]


def _delivered_counts(s3, bucket, home, recipient):
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    data = next(k for k in keys if f"/{recipient}/" in k and k.endswith("data.csv.age"))
    plain = subprocess.run(["age", "-d", "-i", str(home.root / "keys" / recipient / "age.key")],
                           input=s3.get_object(Bucket=bucket, Key=data)["Body"].read(), capture_output=True,
                           check=True).stdout.decode()
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=data.replace("data.csv.age", "manifest.json"))["Body"].read())
    return sorted(int(r["travellers"]) for r in csv.DictReader(io.StringIO(plain))), manifest


@pytest.mark.parametrize("status", ["draft", "suspended", "terminated"])
def test_an_agreement_not_active_publishes_nothing_and_the_trail_says_why(demo_home, s3_endpoint, bucket, s3, status):
    _edit_yaml(demo_home.config / "agreements" / f"{AGREEMENT}.yaml", lambda d: d.update(status=status))
    rt = _open(demo_home, s3_endpoint, bucket)
    summary = run_once(rt, settle_seconds=0)
    assert not [p for p in summary.published if p["agreement"] == AGREEMENT]
    blocked = [e for e in rt.trail.events() if e["type"] == "blocked" and e["details"]["agreement"] == AGREEMENT]
    assert blocked and all(e["details"]["rule"] == f"agreement status is {status}" for e in blocked)
    flows = [q for q in summary.quarantined if q["dataset"] == "traveller_flows"]
    assert any(r["rule"] == "no-agreement-in-force" and AGREEMENT in r["message"] for q in flows for r in q["reasons"])


def test_an_expired_agreement_publishes_nothing(demo_home, s3_endpoint, bucket):
    rt = _open(demo_home, s3_endpoint, bucket)
    later = dt.date(2029, 1, 2)
    rt.clock = lambda: dt.datetime.combine(later, dt.time(12), dt.timezone.utc)
    summary = run_once(rt, settle_seconds=0)
    assert not summary.published
    rules = {e["details"]["rule"] for e in rt.trail.events() if e["type"] == "blocked"}
    assert any(r.startswith("outside validity") for r in rules)


def test_revoked_and_expired_keys_are_never_used(demo_home, s3_endpoint, bucket, s3):
    from borderx.crypto import age

    identity, recipient = age.generate_x25519_identity()

    def add_keys(data):
        data["age_recipients"][0]["revoked"] = True
        data["age_recipients"].append({"key": recipient, "valid_from": dt.date(2026, 1, 1)})
        _, stale = age.generate_x25519_identity()
        data["age_recipients"].append({"key": stale, "valid_from": dt.date(2025, 1, 1), "valid_to": dt.date(2025, 12, 31)})

    _edit_yaml(demo_home.config / "agencies" / "ZA-SARS.yaml", add_keys)
    rt = _open(demo_home, s3_endpoint, bucket)
    run_once(rt, settle_seconds=0)
    manifests = [json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
                 for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].endswith("manifest.json")]
    sars = [m for m in manifests if m["recipient"] == "ZA-SARS"]
    assert sars and all(m["keys"]["recipients"] == [recipient] for m in sars)


@pytest.mark.parametrize("count,kept", [(4, False), (5, True), (6, True), (0, True)])
def test_small_cell_boundary(demo_home, s3_endpoint, bucket, s3, count, kept):
    _only_flows(demo_home, _flow_rows([count, 50]))
    rt = _open(demo_home, s3_endpoint, bucket)
    summary = run_once(rt, settle_seconds=0)
    assert len(summary.published) == 2
    counts, manifest = _delivered_counts(s3, bucket, demo_home, "NA-MHAISS")
    assert counts == (sorted([count, 50]) if kept else [50])
    assert manifest["suppressed"]["rows"] == (0 if kept else 1)
    assert manifest["suppressed"]["count"] == (0 if kept else count)
    suppressed_events = [e for e in rt.trail.events() if e["type"] == "suppressed"]
    assert len(suppressed_events) == (0 if kept else 2)


def _second_agreement(home, k, small_cells):
    def change(data):
        data["id"] = "DSA-2026-009"
        data["recipients"] = [{"agency": "BW-DIC", "columns": ["period", "border_point", "travellers"],
                               "min_cell_size": k, "small_cells": small_cells}]
        data["providers"] = ["ZA-DHA"]

    source = home.config / "agreements" / f"{AGREEMENT}.yaml"
    target = home.config / "agreements" / "DSA-2026-009.yaml"
    target.write_text(source.read_text())
    _edit_yaml(target, change)


def test_two_agreements_with_different_k_apply_the_larger_to_every_recipient(demo_home, s3_endpoint, bucket, s3):
    _second_agreement(demo_home, 10, "suppress")
    _only_flows(demo_home, _flow_rows([3, 5, 9, 10, 11, 400]))
    rt = _open(demo_home, s3_endpoint, bucket)
    summary = run_once(rt, settle_seconds=0)
    assert {p["recipient"] for p in summary.published} == {"ZA-SARS", "NA-MHAISS", "BW-DIC"}
    for recipient in ("ZA-SARS", "NA-MHAISS", "BW-DIC"):
        counts, manifest = _delivered_counts(s3, bucket, demo_home, recipient)
        assert counts == [10, 11, 400], recipient
        assert manifest["suppressed"] == {"rows": 3, "count": 17, "count_column": "travellers", "min_cell_size": 10}


def test_reject_wins_over_suppress(demo_home, s3_endpoint, bucket, s3):
    _second_agreement(demo_home, 10, "reject")
    source = _only_flows(demo_home, _flow_rows([9, 400]))
    original = source.read_bytes()
    rt = _open(demo_home, s3_endpoint, bucket)
    summary = run_once(rt, settle_seconds=0)
    assert not summary.published and not s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/").get("Contents")
    [rejected] = summary.quarantined
    [reason] = rejected["reasons"]
    assert reason["rule"] == "small-cells" and reason["count"] == 1 and reason["column"] == "travellers"
    assert (demo_home.quarantine / "ZA-DHA" / "traveller_flows" / "flows.csv").read_bytes() == original
    assert any(e["type"] == "quarantined" and e["details"]["reasons"] == ["small-cells"] for e in rt.trail.events())


def test_an_agreement_can_require_post_quantum_keys(demo_home, s3_endpoint, bucket, s3):
    from borderx.crypto import age

    identity, recipient = age.generate_hybrid_identity()
    _edit_yaml(demo_home.config / "agencies" / "NA-MHAISS.yaml", lambda d: d["age_recipients"].append(
        {"key": recipient, "valid_from": dt.date(2026, 1, 1)}))

    def require_pq(data):
        data["recipients"][1]["post_quantum"] = True

    _edit_yaml(demo_home.config / "agreements" / f"{AGREEMENT}.yaml", require_pq)
    rt = _open(demo_home, s3_endpoint, bucket)
    run_once(rt, settle_seconds=0)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"deliveries/{AGREEMENT}/NA-MHAISS/")["Contents"]]
    data_key = next(k for k in keys if k.endswith("data.csv.age"))
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=data_key.replace("data.csv.age", "manifest.json"))["Body"].read())
    assert manifest["keys"]["recipients"] == [recipient]
    blob = s3.get_object(Bucket=bucket, Key=data_key)["Body"].read()
    assert b"-> mlkem768x25519 " in blob.split(b"\n---", 1)[0]
    plain = age.decrypt(blob, [age.parse_identity(identity)])
    assert plain.startswith(b'"period"') or plain.startswith(b"period")
    # The recipient's classic key alone cannot open it.
    classic = age.parse_identities((demo_home.root / "keys" / "NA-MHAISS" / "age.key").read_text())
    with pytest.raises(age.NoIdentityMatchedError):
        age.decrypt(blob, classic)


def test_post_quantum_terms_without_a_hybrid_key_are_a_config_problem(demo_home):
    from borderx.config.loader import check_config

    _edit_yaml(demo_home.config / "agreements" / f"{AGREEMENT}.yaml",
               lambda d: d["recipients"][1].update(post_quantum=True))
    problems = [str(p) for p in check_config(demo_home.root)]
    assert (f"config/agreements/{AGREEMENT}.yaml: recipients.1.agency: NA-MHAISS has no valid post-quantum (age1pq1) "
            "age key today") in problems
