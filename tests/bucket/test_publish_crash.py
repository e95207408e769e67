"""Publishing never half-happens: kill the publishing process at each step, run again, find one complete delivery."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from borderx.exchange import Runtime, run_once
from borderx.dev.samples import AGE_BANDS, CATEGORIES, MODES, NATIONALITIES, SEXES, TRAVELLER_FLOWS_COLUMNS, write_csv

CRASH = textwrap.dedent("""
    import os, signal, sys
    from borderx.exchange import Runtime, run_once
    home, endpoint, bucket, step = sys.argv[1:5]
    rt = Runtime.open(home, endpoint_url=endpoint, bucket=bucket)
    client = rt.s3
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    def when(name, condition):
        real = getattr(client, name)
        calls = []
        def wrapper(*args, **kwargs):
            calls.append(1)
            if condition(len(calls), kwargs):
                die()
            return real(*args, **kwargs)
        setattr(client, name, wrapper)
    if step == "before-data":
        when("upload_file", lambda n, kw: True)
    elif step == "during-data":
        when("upload_part", lambda n, kw: n == 2)
    elif step == "after-data":
        when("put_object", lambda n, kw: kw["Key"].endswith("manifest.json"))
    elif step == "before-signature":
        when("put_object", lambda n, kw: kw["Key"].endswith("manifest.json.sig"))
    run_once(rt, settle_seconds=0)
    sys.exit(3)  # the crash did not happen
""")


def _big_extract(home):
    """About 10 MB, so its encrypted copy goes up in several multipart parts."""
    for path in home.intake.rglob("*"):
        if path.is_file():
            path.unlink()
    combos = itertools.product(range(240), ["ZA-BEI", "ZA-LEB"], ["ENTRY", "EXIT"], NATIONALITIES, AGE_BANDS[:4], SEXES)
    rows = ([f"2026-{1 + d // 28:02d}-{1 + d % 28:02d}", bp, di, nat, age, sex, MODES[d % 5], CATEGORIES[d % 6],
             str(5 + (d * 7) % 900)] for d, bp, di, nat, age, sex in combos)
    return write_csv(home.intake / "ZA-DHA" / "traveller_flows" / "big.csv", TRAVELLER_FLOWS_COLUMNS, rows)


@pytest.mark.parametrize("step", ["before-data", "during-data", "after-data", "before-signature"])
def test_a_crash_at_any_step_ends_in_exactly_one_complete_delivery(demo_home, s3_endpoint, bucket, s3, step):
    settings = demo_home.config / "settings.yaml"
    data = yaml.safe_load(settings.read_text())
    data["s3"]["multipart_threshold_mb"] = 5
    settings.write_text(yaml.safe_dump(data))
    source = _big_extract(demo_home)
    assert source.stat().st_size > 8 << 20

    crashed = subprocess.run([sys.executable, "-c", CRASH, str(demo_home.root), s3_endpoint, bucket, step],
                             capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    if step == "during-data":
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the crash left a multipart upload behind"

    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    summary = run_once(rt, settle_seconds=0)
    assert not summary.quarantined

    objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]]
    prefixes = {k.rsplit("/", 1)[0] for k in objects}
    assert len(prefixes) == 2  # one delivery for each recipient of DSA-2026-001, no more
    for prefix in prefixes:
        assert sorted(k for k in objects if k.startswith(prefix + "/")) == [
            f"{prefix}/data.csv.age", f"{prefix}/manifest.json", f"{prefix}/manifest.json.sig"]
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.json")["Body"].read())
        head = s3.head_object(Bucket=bucket, Key=f"{prefix}/data.csv.age", ChecksumMode="ENABLED")
        assert head["ContentLength"] == manifest["published"]["size"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert rt.trail.verify()[1] is None
    assert list(demo_home.archive.rglob("big.csv")) and not list(demo_home.intake.rglob("big.csv"))


KILL_AFTER_EVENT = textwrap.dedent("""
    import os, signal, sys
    from borderx.audit.trail import AuditTrail
    from borderx.exchange import Runtime, run_once
    home, endpoint, bucket, event_type = sys.argv[1:5]
    real = AuditTrail.append
    def append(self, type_, *args, **kwargs):
        event = real(self, type_, *args, **kwargs)
        if type_ == event_type:
            os.kill(os.getpid(), signal.SIGKILL)
        return event
    AuditTrail.append = append
    run_once(Runtime.open(home, endpoint_url=endpoint, bucket=bucket), settle_seconds=0)
    sys.exit(3)  # the crash did not happen
""")


@pytest.mark.parametrize("event_type", ["received", "validated", "quarantined", "encrypted", "signed", "published",
                                        "archived"])
def test_a_kill_after_any_step_of_a_run_loses_nothing_and_publishes_once(demo_home, s3_endpoint, bucket, s3,
                                                                          event_type):
    """The demo's 6 extracts (3 good, 3 bad); the run is killed -9 right after its first event of one type."""
    crashed = subprocess.run([sys.executable, "-c", KILL_AFTER_EVENT, str(demo_home.root), s3_endpoint, bucket,
                              event_type], capture_output=True, text=True, timeout=300)
    assert crashed.returncode == -9, crashed.stderr[-2000:]

    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    run_once(rt, settle_seconds=0)

    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/")
            for o in page.get("Contents", [])]
    deliveries = {k.rsplit("/", 1)[0] for k in keys}
    assert len(deliveries) == 6
    for prefix in deliveries:
        assert sorted(k for k in keys if k.startswith(prefix + "/")) == [
            f"{prefix}/data.csv.age", f"{prefix}/manifest.json", f"{prefix}/manifest.json.sig"]
    manifests = [json.loads(s3.get_object(Bucket=bucket, Key=f"{d}/manifest.json")["Body"].read())
                 for d in deliveries]
    assert len({(m["source"]["sha256"], m["recipient"]) for m in manifests}) == 6
    assert len({m["source"]["sha256"] for m in manifests}) == 3
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")

    # Every extract ended in exactly one place, and nothing waits or hangs in a hand-off folder.
    assert len(list(demo_home.archive.rglob("*.csv"))) == 3
    assert len(list(demo_home.quarantine.rglob("*.csv"))) == 3
    assert not list(demo_home.intake.rglob("*.csv"))

    # The trail is whole, and says each delivery was published once.
    events = list(rt.trail.events())
    assert rt.trail.verify() == (len(events), None)
    published = [e["details"]["delivery_id"] for e in events if e["type"] == "published"]
    assert sorted(published) == sorted(m["delivery_id"] for m in manifests)
