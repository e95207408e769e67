"""Faults around the exchange: the S3 endpoint down at the start or in the middle, a corrupted ledger.
After recovery every file is published exactly once or quarantined, and the audit trail still verifies."""

from __future__ import annotations

import json
import socket

import pytest

from borderx.cli import main
from borderx.exchange import Runtime, run_once
from faultproxy import FaultProxy


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _signatures_per_source(s3, bucket):
    counts: dict[tuple, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("manifest.json"):
                m = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                key = (m["source"]["name"], m["recipient"])
                counts[key] = counts.get(key, 0) + 1
    return counts


def test_endpoint_down_at_start_fails_cleanly_and_loses_nothing(demo_home, s3_endpoint, bucket, s3, capsys):
    waiting = sorted(p.name for p in demo_home.intake.rglob("*.csv"))
    code = main(["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", _closed_port(), "--bucket", bucket,
                 "--settle", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "borderx:" in err and "Traceback" not in err
    assert sorted(p.name for p in demo_home.intake.rglob("*.csv")) == waiting, "every file still waits in intake"

    summary = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert len(summary.published) == 6 and len(summary.quarantined) == 3
    assert set(_signatures_per_source(s3, bucket).values()) == {1}


def test_endpoint_down_mid_run_then_back_publishes_each_file_once(demo_home, s3_endpoint, bucket, s3):
    with FaultProxy(s3_endpoint, fail_after=25) as dying:
        with pytest.raises(Exception):
            run_once(Runtime.open(demo_home.root, endpoint_url=dying.url, bucket=bucket), settle_seconds=0)
    assert dying.injected["503"] > 0
    partial = _signatures_per_source(s3, bucket)
    assert 0 < len(partial) < 6, "the endpoint went away part-way through"

    again = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    counts = _signatures_per_source(s3, bucket)
    assert len(counts) == 6 and set(counts.values()) == {1}
    assert len(again.published) == 6 - len(partial)
    assert not list(demo_home.intake.rglob("*.csv"))
    assert Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket).trail.verify()[1] is None


def test_a_corrupted_ledger_is_set_aside_and_nothing_is_published_twice(demo_home, s3_endpoint, bucket, s3):
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    assert len(run_once(rt, settle_seconds=0).published) == 6
    ledger = demo_home.state / "ledger.sqlite"
    ledger.write_bytes(b"this is not a database" * 100)
    for archived in list(demo_home.archive.rglob("*.csv")):
        agency, dataset = archived.relative_to(demo_home.archive).parts[:2]
        archived.rename(demo_home.intake / agency / dataset / archived.name)
    again = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert not again.published and len(again.already_published) == 6
    assert list(demo_home.state.glob("ledger.sqlite.corrupt-*")), "the damaged ledger is kept for inspection"
    assert set(_signatures_per_source(s3, bucket).values()) == {1}
