"""Transient S3 failures (500, 503, throttling, reset connections, answers that never come, connects that
hang) are retried and the exchange completes; an endpoint that stays hung fails fast and says where."""

from __future__ import annotations

import subprocess
import time

import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from faultproxy import FaultProxy, hung_endpoint

from borderx.cli import main
from borderx.config.models import S3Settings
from borderx.errors import PublishError
from borderx.exchange import Runtime, TransientError, is_transient, run_once
from borderx.delivery.manifest import DeliveryLocation
from borderx.bucket.client import Patience
from borderx.bucket.publish import Target, publish_delivery

# Short enough that the tests stay fast, long enough for a loaded 2-core machine to answer in time.
QUICK = {"BORDERX_S3_CONNECT_TIMEOUT": "0.3", "BORDERX_S3_READ_TIMEOUT": "0.6"}


def _impatient(monkeypatch, **more: str) -> None:
    for name, value in {**QUICK, **more}.items():
        monkeypatch.setenv(name, value)


def _retried(client) -> list[type]:
    """The exceptions botocore's retry handler met on `client`, in order."""
    seen: list[type] = []

    def record(caught_exception=None, **_):
        if caught_exception is not None:
            seen.append(type(caught_exception))

    client.meta.events.register("needs-retry.s3", record)
    return seen


def _all_published(rt: Runtime, summary, s3, bucket: str, demo_home) -> None:
    assert len(summary.published) == 6
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]]
    assert len(keys) == 18
    data = next(k for k in keys if "/ZA-SARS/" in k and k.endswith("data.csv.age"))
    plain = subprocess.run(["age", "-d", "-i", str(demo_home.root / "keys" / "ZA-SARS" / "age.key")],
                           input=s3.get_object(Bucket=bucket, Key=data)["Body"].read(), capture_output=True, check=True)
    assert plain.stdout.count(b"\n") > 10
    assert rt.trail.verify()[1] is None


def test_transient_faults_are_retried_until_everything_is_published(demo_home, s3_endpoint, bucket, s3):
    with FaultProxy(s3_endpoint, every=3) as proxy:
        rt = Runtime.open(demo_home.root, endpoint_url=proxy.url, bucket=bucket)
        summary = run_once(rt, settle_seconds=0)
    assert set(proxy.injected) == set(FaultProxy.FAULTS), proxy.injected
    assert sum(proxy.injected.values()) >= 10
    _all_published(rt, summary, s3, bucket, demo_home)


def test_answers_that_never_come_and_hung_connects_are_retried(demo_home, s3_endpoint, bucket, s3, monkeypatch):
    _impatient(monkeypatch, BORDERX_S3_MAX_ATTEMPTS="8")
    with FaultProxy(s3_endpoint, every=4, faults=("hold", "hang"), hold_seconds=1.5, hang_seconds=1.0) as proxy:
        rt = Runtime.open(demo_home.root, endpoint_url=proxy.url, bucket=bucket)
        retried = _retried(rt.s3)
        started = time.monotonic()
        summary = run_once(rt, settle_seconds=0)
        took = time.monotonic() - started
    assert proxy.injected["hold"] >= 3 and proxy.injected["hang"] >= 3, proxy.injected
    # Each held answer cost the client its read timeout, each hang at least one connect timeout.
    assert retried.count(ReadTimeoutError) >= proxy.injected["hold"], retried
    assert ConnectTimeoutError in retried, retried
    _all_published(rt, summary, s3, bucket, demo_home)
    print(f"{sum(proxy.injected.values())} timeouts injected, exchange took {took:.1f} s")


def test_a_hung_endpoint_fails_soon_naming_the_bucket_and_the_endpoint(demo_home, bucket, monkeypatch, capsys):
    _impatient(monkeypatch, BORDERX_S3_MAX_ATTEMPTS="3")
    with hung_endpoint() as url:
        rt = Runtime.open(demo_home.root, endpoint_url=url, bucket=bucket)
        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            run_once(rt, settle_seconds=0)
        took = time.monotonic() - started
        message = str(caught.value)
        assert bucket in message and url in message and "ConnectTimeoutError" in message, message
        assert "3 attempts" in message
        assert is_transient(caught.value)
        # Three connects of 0.3 s and botocore's short backoff between them, not forever.
        assert took < 8, took

        assert main(["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", url, "--bucket", bucket]) == 1
        err = capsys.readouterr().err.splitlines()[-1]
        assert err.startswith("borderx: ") and bucket in err and url in err, err


def test_an_endpoint_that_stops_answering_fails_the_upload_clearly(tmp_path, s3_endpoint, bucket, s3, monkeypatch):
    s3.create_bucket(Bucket=bucket)
    _impatient(monkeypatch, BORDERX_S3_MAX_ATTEMPTS="2")
    data = tmp_path / "data.csv.age"
    data.write_bytes(b"age-encryption.org/v1\n" + b"\0" * 1024)
    location = DeliveryLocation("DSA-2026-001", "BW-DIC", "traveller_flows", "2026-11-28", "f" * 32)
    with FaultProxy(s3_endpoint, fail_after=0, fail_with="hold", hold_seconds=10) as proxy:
        target = Target.resolve(S3Settings(bucket=bucket), endpoint_url=proxy.url)
        client = target.client()
        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            publish_delivery(client, target, location, data, b"{}", b"sig")
        took = time.monotonic() - started
    message = str(caught.value)
    assert f"s3://{bucket}/{location.prefix}" in message and proxy.url in message, message
    assert "ReadTimeoutError" in message and "read 0.6 s" in message, message
    assert proxy.injected["hold"] == 2 and proxy.forwarded == 0
    assert took < 5, took
    # The exchange retries the task later rather than calling the delivery refused.
    assert is_transient(caught.value) and issubclass(TransientError, PublishError)
    assert not s3.list_objects_v2(Bucket=bucket).get("Contents")


def test_timeouts_and_retries_come_from_settings_and_environment(monkeypatch):
    for name in ("BORDERX_S3_CONNECT_TIMEOUT", "BORDERX_S3_READ_TIMEOUT", "BORDERX_S3_MAX_ATTEMPTS",
                 "BORDERX_S3_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    config = Target.resolve(S3Settings(), endpoint_url="http://127.0.0.1:9").client().meta.config
    assert (config.connect_timeout, config.read_timeout) == (10, 60)
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}

    monkeypatch.setenv("BORDERX_S3_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("BORDERX_S3_RETRY_MODE", "adaptive")
    config = Target.resolve(S3Settings(), endpoint_url="http://127.0.0.1:9").client().meta.config
    assert config.read_timeout == 2.5 and config.retries["mode"] == "adaptive"

    class WithPatience:
        connect_timeout, read_timeout, max_attempts, mode = 4, 30, 7, "standard"

    assert Patience.resolve(WithPatience(), {}) == Patience(4.0, 30.0, 7, "standard")
    assert Patience.resolve(WithPatience(), {"BORDERX_S3_MAX_ATTEMPTS": "3"}).max_attempts == 3
    for variable, bad in (("BORDERX_S3_READ_TIMEOUT", "soon"), ("BORDERX_S3_READ_TIMEOUT", "0"),
                          ("BORDERX_S3_MAX_ATTEMPTS", "0"), ("BORDERX_S3_RETRY_MODE", "legacy")):
        with pytest.raises(PublishError, match="timeout|max_attempts|retry mode"):
            Patience.resolve(None, {variable: bad})
