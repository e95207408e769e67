"""Transient S3 failures (500, 503, throttling, reset connections) are retried and the exchange completes."""

from __future__ import annotations

import subprocess

from faultproxy import FaultProxy

from borderx.exchange import Runtime, run_once


def test_transient_faults_are_retried_until_everything_is_published(demo_home, s3_endpoint, bucket, s3):
    with FaultProxy(s3_endpoint, every=3) as proxy:
        rt = Runtime.open(demo_home.root, endpoint_url=proxy.url, bucket=bucket)
        summary = run_once(rt, settle_seconds=0)
    assert set(proxy.injected) == set(FaultProxy.FAULTS), proxy.injected
    assert sum(proxy.injected.values()) >= 10
    assert len(summary.published) == 6
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]]
    assert len(keys) == 18
    data = next(k for k in keys if "/ZA-SARS/" in k and k.endswith("data.csv.age"))
    plain = subprocess.run(["age", "-d", "-i", str(demo_home.root / "keys" / "ZA-SARS" / "age.key")],
                           input=s3.get_object(Bucket=bucket, Key=data)["Body"].read(), capture_output=True, check=True)
    assert plain.stdout.count(b"\n") > 10
    assert rt.trail.verify()[1] is None
