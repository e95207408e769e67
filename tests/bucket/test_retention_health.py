"""Retention deletes what outlived its agreement, signature first and audited; daily checks warn in time."""

from __future__ import annotations

import datetime as dt

import yaml

from borderx.exchange import run_once
from borderx.health import daily_checks
from borderx.bucket.retention import apply_retention


def _deliveries(s3, bucket) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/").get("Contents", []):
        prefix, name = o["Key"].rsplit("/", 1)
        out.setdefault(prefix, []).append(name)
    return out


class _Recording:
    """Passes calls through to the real client, noting the order of deletions."""

    def __init__(self, client):
        self._client, self.deleted = client, []

    def delete_object(self, **kw):
        self.deleted.append(kw["Key"])
        return self._client.delete_object(**kw)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_retention_deletes_only_what_outlived_its_agreement_signature_first(runtime, s3, bucket):
    run_once(runtime, settle_seconds=0)
    before = _deliveries(s3, bucket)
    assert len(before) == 6
    today = runtime.clock().date()

    assert apply_retention(runtime, today=today).deleted == []

    # DSA-2026-003 keeps deliveries 365 days, the others 730 and 1825: a year and a day on, only its goes.
    recording = _Recording(runtime.s3)
    runtime.__dict__["s3"] = recording
    summary = apply_retention(runtime, today=today + dt.timedelta(days=366))
    assert [d["agreement"] for d in summary.deleted] == ["DSA-2026-003"] and summary.kept == 5
    gone = summary.deleted[0]
    assert [k.rsplit("/", 1)[1] for k in recording.deleted] == ["manifest.json.sig", "manifest.json", "data.csv.age"]
    after = _deliveries(s3, bucket)
    assert len(after) == 5 and not any(gone["delivery_id"] in p for p in after)
    assert apply_retention(runtime, today=today + dt.timedelta(days=365)).deleted == []

    events = [e for e in runtime.trail.events() if e["type"] == "deleted"]
    assert len(events) == 1
    assert events[0]["details"]["delivery_id"] == gone["delivery_id"]
    assert events[0]["details"]["reason"] == "retention" and events[0]["details"]["retention_days"] == 365
    assert runtime.trail.verify()[1] is None

    everything = apply_retention(runtime, today=today + dt.timedelta(days=1826))
    assert len(everything.deleted) == 5 and _deliveries(s3, bucket) == {}


def test_retention_keeps_deliveries_of_an_agreement_no_longer_configured(runtime, s3, bucket):
    run_once(runtime, settle_seconds=0)
    (runtime.home.config / "agreements" / "DSA-2026-003.yaml").unlink()
    from borderx.exchange import Runtime

    rt = Runtime.open(runtime.home.root, endpoint_url=runtime.target.endpoint_url, bucket=bucket)
    summary = apply_retention(rt, today=rt.clock().date() + dt.timedelta(days=5000))
    assert len(summary.unknown_agreement) == 1 and len(summary.deleted) == 5
    assert len(_deliveries(s3, bucket)) == 1


def test_retention_on_an_empty_bucket_does_nothing(runtime):
    assert apply_retention(runtime).deleted == []


def _edit(path, **changes):
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_daily_checks_warn_of_expiring_keys_and_reviews_due(demo_home):
    today = dt.date.today()
    assert daily_checks(demo_home.root, today=today).ok

    agency = demo_home.config / "agencies" / "ZA-SARS.yaml"
    data = yaml.safe_load(agency.read_text())
    data["signing_keys"][0]["valid_to"] = today + dt.timedelta(days=10)
    agency.write_text(yaml.safe_dump(data, sort_keys=False))
    _edit(demo_home.config / "agreements" / "DSA-2026-002.yaml", review_date=today + dt.timedelta(days=30))
    _edit(demo_home.config / "agreements" / "DSA-2026-003.yaml", review_date=today - dt.timedelta(days=3))
    _edit(demo_home.config / "agreements" / "DSA-2026-001.yaml", review_date=today + dt.timedelta(days=31))

    report = daily_checks(demo_home.root, today=today)
    assert report.ok, report.errors
    lines = [str(w) for w in report.warnings]
    assert len(lines) == 3, lines
    assert any(line.startswith("agency ZA-SARS: signing_keys.0") and "in 10 days" in line and "keys request" in line
               for line in lines)
    assert any(line.startswith("agreement DSA-2026-002") and "in 30 days" in line for line in lines)
    assert any(line.startswith("agreement DSA-2026-003") and "3 days overdue" in line for line in lines)
    assert report.to_dict()["warnings"] == lines


def test_daily_checks_report_a_broken_config_as_errors(demo_home):
    _edit(demo_home.config / "agreements" / "DSA-2026-001.yaml", retention_days=0)
    report = daily_checks(demo_home.root)
    assert not report.ok
    assert any("DSA-2026-001" in str(e) and "retention_days" in str(e) for e in report.errors)
