"""`borderx fetch --watch` as a recipient runs it: a real process against a real bucket, deliveries appearing
while it runs, stopped with SIGTERM and started again."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from borderx.cli import main
from borderx.exchange import Runtime
from borderx.recipient import RECORD_FILE, Pace
from faultproxy import FaultProxy

BORDERX = str(Path(sys.executable).with_name("borderx"))
RECIPIENT = "NA-MHAISS"


@pytest.fixture(scope="module")
def source(published_demo) -> Runtime:
    """The demo's deliveries, published once; each test copies them into a bucket of its own as it goes."""
    return published_demo


def _prefixes(s3, bucket: str) -> list[str]:
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/")
            for o in page.get("Contents", [])]
    return sorted({k.rsplit("/", 1)[0] + "/" for k in keys if k.split("/")[2] == RECIPIENT})


def _publish(s3, src: str, dst: str, prefix: str) -> None:
    # As the hub does: the signature last, since it is what makes a delivery complete.
    for name in ("data.csv.age", "manifest.json", "manifest.json.sig"):
        s3.copy_object(Bucket=dst, Key=prefix + name, CopySource={"Bucket": src, "Key": prefix + name})


def _folder_name(prefix: str) -> str:
    _, agreement, _, dataset, yyyy, mm, dd, delivery_id = prefix.rstrip("/").split("/")
    return f"{agreement}/{dataset}/{yyyy}-{mm}-{dd}_{delivery_id}"


class Watcher:
    """`borderx fetch --watch` in its own process; its standard output read line by line as it comes."""

    def __init__(self, rt: Runtime, endpoint: str, bucket: str, out: Path, env: dict[str, str] | None = None,
                 extra: tuple[str, ...] = ("--interval", "0.1", "--max-interval", "0.4")):
        keys = rt.home.root / "keys"
        self.proc = subprocess.Popen(
            [BORDERX, "fetch", "--watch", "--recipient", RECIPIENT,
             "--identity", str(keys / RECIPIENT / "age.key"), "--hub-key", str(keys / "allowed_signers"),
             "--out", str(out), "--s3-endpoint", endpoint, "--bucket", bucket, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout} s; saw {self.seen}")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        self.seen.extend(self.proc.stdout.read().splitlines())
        return code, self.proc.stderr.read()


@pytest.fixture
def watching(source):
    """Starts watchers for this test; any still running at its end (a failed test) is killed."""
    started: list[Watcher] = []

    def start(endpoint: str, bucket: str, out: Path, env: dict[str, str] | None = None, **options) -> Watcher:
        started.append(Watcher(source, endpoint, bucket, out, env, **options))
        return started[-1]

    yield start
    for watcher in started:
        if watcher.proc.poll() is None:
            watcher.proc.kill()
            watcher.proc.wait()


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != RECORD_FILE)


def test_watch_fetches_each_delivery_once_across_restarts(source, watching, s3, s3_endpoint, tmp_path):
    src, bucket, out = source.target.bucket, f"bx-{uuid.uuid4().hex[:12]}", tmp_path / "inbox"
    s3.create_bucket(Bucket=bucket)
    first, second, third = _prefixes(s3, src)
    _publish(s3, src, bucket, first)

    watcher = watching(s3_endpoint, bucket, out)
    watcher.expect(f"fetched  {out / _folder_name(first)}")
    _publish(s3, src, bucket, second)  # appears while the watch runs
    watcher.expect(f"fetched  {out / _folder_name(second)}")
    code, err = watcher.stop()
    assert code == 0, err
    assert "stopped: 2 fetched, 0 refused, 0 revoked" in err
    assert sum("fetched  " in line for line in watcher.seen) == 2

    # The recipient moves a delivery away to work on it; a new one lands while no watch runs.
    shutil.move(out / _folder_name(first), tmp_path / "processed")
    _publish(s3, src, bucket, third)
    again = watching(s3_endpoint, bucket, out)
    again.expect(f"fetched  {out / _folder_name(third)}")
    code, err = again.stop()
    assert code == 0, err
    assert [line for line in again.seen if "fetched  " in line] == [f"fetched  {out / _folder_name(third)}  "
                                                                    f"({_rows(out, third)} rows)"]
    assert not (out / _folder_name(first)).exists(), "a delivery moved away is not fetched again"
    record = json.loads((out / RECORD_FILE).read_text())["fetched"]
    assert sorted(record) == [first, second, third]
    assert _leftovers(out) == []


def _rows(out: Path, prefix: str) -> int:
    return json.loads((out / _folder_name(prefix) / "manifest.json").read_text())["rows"]


def test_sigterm_during_a_download_leaves_nothing_half_written(source, watching, s3, s3_endpoint, tmp_path):
    src, bucket, out = source.target.bucket, f"bx-{uuid.uuid4().hex[:12]}", tmp_path / "inbox"
    s3.create_bucket(Bucket=bucket)
    first = _prefixes(s3, src)[0]
    _publish(s3, src, bucket, first)
    # The data file never comes: the watch is stopped while it waits for it, inside its temporary folder.
    with FaultProxy(s3_endpoint, hold_paths="data.csv.age", hold_seconds=60) as proxy:
        watcher = watching(proxy.url, bucket, out)
        deadline = time.monotonic() + 15
        while not (out.is_dir() and any(p.name.startswith(".borderx-fetch-") for p in out.iterdir())):
            assert time.monotonic() < deadline, "the watch never started on the delivery"
            time.sleep(0.05)
        while not proxy.injected["hold"]:
            assert time.monotonic() < deadline, "the watch never asked for the data file"
            time.sleep(0.05)
        code, err = watcher.stop()
    assert code == 0, err
    assert "stopped: 0 fetched" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [], "no temporary folder, no delivery folder, no record"


def test_a_refused_delivery_is_reported_once_per_watch(source, watching, s3, s3_endpoint, tmp_path):
    src, bucket, out = source.target.bucket, f"bx-{uuid.uuid4().hex[:12]}", tmp_path / "inbox"
    s3.create_bucket(Bucket=bucket)
    first, second, third = _prefixes(s3, src)
    _publish(s3, src, bucket, first)
    # Another delivery's data under the first one's signed manifest.
    s3.copy_object(Bucket=bucket, Key=first + "data.csv.age",
                   CopySource={"Bucket": src, "Key": second + "data.csv.age"})
    watcher = watching(s3_endpoint, bucket, out)
    watcher.expect("REFUSED  ")
    _publish(s3, src, bucket, third)
    watcher.expect(f"fetched  {out / _folder_name(third)}")
    _publish(s3, src, bucket, second)  # one more look at least: the refused one is still there, and not told again
    watcher.expect(f"fetched  {out / _folder_name(second)}")
    code, err = watcher.stop()
    assert code == 0, err
    assert "stopped: 2 fetched, 1 refused, 0 revoked" in err
    refused = [line for line in watcher.seen if line.startswith("REFUSED  ")]
    assert len(refused) == 1 and "data-hash" in refused[0]
    assert not (out / _folder_name(first)).exists()


def test_watch_waits_for_a_bucket_that_cannot_be_reached_for_a_while(source, watching, s3, s3_endpoint, tmp_path):
    src, bucket, out = source.target.bucket, f"bx-{uuid.uuid4().hex[:12]}", tmp_path / "inbox"
    s3.create_bucket(Bucket=bucket)
    first = _prefixes(s3, src)[0]
    _publish(s3, src, bucket, first)
    with FaultProxy(s3_endpoint, fail_after=0, fail_with="503") as proxy:
        watcher = watching(proxy.url, bucket, out, env={"BORDERX_S3_MAX_ATTEMPTS": "1"})
        deadline = time.monotonic() + 15
        while proxy.injected["503"] < 3:  # several looks failed, each waited for
            assert time.monotonic() < deadline and watcher.proc.poll() is None, watcher.proc.stderr.read()
            time.sleep(0.05)
        with proxy._lock:
            proxy.fail_after, proxy.every = None, 10**9  # the endpoint answers again
        watcher.expect(f"fetched  {out / _folder_name(first)}")
        code, err = watcher.stop()
    assert code == 0, err
    assert err.count(f"s3://{bucket}: InternalError; looking again in") >= 3, err


def test_an_announcement_on_the_recipients_queue_brings_the_next_look_forward(source, watching, s3, s3_endpoint,
                                                                              tmp_path):
    src, bucket, out = source.target.bucket, f"bx-{uuid.uuid4().hex[:12]}", tmp_path / "inbox"
    s3.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"{bucket}-{RECIPIENT}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
        "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "deliveries/"}]}}}]})
    first, second = _prefixes(s3, src)[:2]
    _publish(s3, src, bucket, first)
    # Looks scheduled 60 s apart: after the first, within the 15 s a line is waited for, only an announcement
    # can bring the second delivery.
    watcher = watching(s3_endpoint, bucket, out, extra=("--interval", "60", "--max-interval", "60", "--queue", url))
    watcher.expect(f"fetched  {out / _folder_name(first)}")
    _publish(s3, src, bucket, second)
    watcher.expect(f"fetched  {out / _folder_name(second)}")
    code, err = watcher.stop()
    assert code == 0, err
    assert "looking at the bucket on schedule instead" not in err


@pytest.mark.parametrize(("previous", "found", "expected"), [
    (1.0, True, 1.0), (1.0, False, 2.0), (4.0, False, 5.0), (5.0, True, 1.0), (0.0, False, 2.0),
])
def test_pace_doubles_while_nothing_comes_up_to_its_longest(previous, found, expected):
    assert Pace(interval=1.0, longest=5.0).after(previous, found) == expected


def test_watch_options_without_watch_are_wrong_usage(tmp_path, capsys):
    assert main(["fetch", "--recipient", RECIPIENT, "--identity", str(tmp_path / "age.key"), "--out",
                 str(tmp_path / "inbox"), "--interval", "5", "--queue", "https://sqs.example.org/1/q"]) == 2
    assert capsys.readouterr().err == "borderx: --interval, --queue: only with --watch\n"
    assert not (tmp_path / "inbox").exists()
