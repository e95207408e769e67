"""Someone who can write to the bucket but has no hub key, trying what a review tried: copied and restored
tombstones, objects of hundreds of megabytes where a few hundred bytes belong, and keys of any shape. Each
attack runs against a real moto server, through the commands a recipient, an operator and an auditor use."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from borderx.audit.anchors import close_if_new
from borderx.bucket.deliveries import list_deliveries, read_tombstone
from borderx.bucket.objects import MAX_HEAD_BYTES, MAX_TOMBSTONE_BYTES, read_capped
from borderx.bucket.retention import apply_retention
from borderx.cli import main
from borderx.dev.demo import drop_samples, prepare_home
from borderx.errors import BucketObjectError
from borderx.exchange import Runtime, run_once

BORDERX = str(Path(sys.executable).with_name("borderx"))
RECIPIENT = "NA-MHAISS"  # three deliveries in the demo
# A process that had read a 200 MB object would have at least that much more resident memory than this.
PEAK_RSS_LIMIT = 200 << 20


@pytest.fixture(scope="module")
def published(tmp_path_factory, s3_endpoint):
    """One exchange of the demo's extracts; each test copies what it needs into a bucket of its own."""
    home = prepare_home(tmp_path_factory.mktemp("hostile") / "home", dt.date.today())
    drop_samples(home, dt.date.today())
    rt = Runtime.open(home.root, endpoint_url=s3_endpoint, bucket=f"bx-{uuid.uuid4().hex[:12]}")
    assert len(run_once(rt, settle_seconds=0).published) == 6
    return rt


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


def _copy(s3, rt: Runtime, *prefixes: str) -> str:
    """A new bucket holding a copy of what the exchange put under `prefixes`."""
    bucket = f"bx-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for prefix in prefixes:
        for key in _keys(s3, rt.target.bucket, prefix):
            s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": rt.target.bucket, "Key": key})
    return bucket


def _delivery_prefixes(s3, bucket: str, recipient: str = RECIPIENT) -> list[str]:
    return sorted({k.rsplit("/", 1)[0] + "/" for k in _keys(s3, bucket, "deliveries/") if k.split("/")[2] == recipient})


def _home_args(rt: Runtime, bucket: str) -> list[str]:
    return ["--home", str(rt.home.root), "--s3-endpoint", rt.target.endpoint_url, "--bucket", bucket]


def _fetch_args(rt: Runtime, bucket: str, out: Path) -> list[str]:
    return ["fetch", "--recipient", RECIPIENT, "--identity", str(rt.home.root / "keys" / RECIPIENT / "age.key"),
            "--out", str(out), "--hub-key", str(rt.home.root / "keys" / "allowed_signers"),
            "--s3-endpoint", rt.target.endpoint_url, "--bucket", bucket]


def _revoke(rt: Runtime, bucket: str, prefix: str, reason: str = "sent under the wrong agreement") -> None:
    delivery_id = prefix.rstrip("/").rsplit("/", 1)[1]
    assert main(["deliveries", "revoke", delivery_id, "--reason", reason, *_home_args(rt, bucket)]) == 0


def _folder(out: Path, prefix: str) -> Path:
    _, agreement, _, dataset, yyyy, mm, dd, delivery_id = prefix.rstrip("/").split("/")
    return out / agreement / dataset / f"{yyyy}-{mm}-{dd}_{delivery_id}"


# The command line as the `borderx` script runs it, reporting its own high-water mark of resident memory.
# VmHWM starts afresh at exec; getrusage would count the pytest process the child was forked from.
MEASURED = """
import sys
from borderx.cli import main
try:
    code = main(sys.argv[1:])
finally:
    status = open("/proc/self/status").read()
    print("VmHWM", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
sys.exit(code)
"""


def _run(args: list[str]) -> tuple[int, str, str, int]:
    """Runs `borderx ARGS` as its own process: (exit code, stdout, stderr, peak resident bytes)."""
    done = subprocess.run([sys.executable, "-c", MEASURED, *args], capture_output=True, text=True, timeout=300)
    peak_kb = int(done.stderr.rsplit("VmHWM ", 1)[1].split()[0])
    return done.returncode, done.stdout, done.stderr, peak_kb * 1024


def _big_object(s3, bucket: str, key: str, size: int, tmp_path: Path) -> None:
    """Uploads `size` zero bytes from a sparse file, so the test itself never holds them."""
    sparse = tmp_path / f"sparse-{size}"
    with open(sparse, "wb") as fh:
        fh.truncate(size)
    with open(sparse, "rb") as fh:
        s3.put_object(Bucket=bucket, Key=key, Body=fh)
    sparse.unlink()


# -- tombstones -----------------------------------------------------------------------------------


def _tombstone_copied_beside_another(s3, rt: Runtime) -> tuple[str, str, str]:
    """A bucket in which one delivery was revoked and its tombstone copied beside another: (bucket, revoked, other)."""
    bucket = _copy(s3, rt, "deliveries/")
    revoked, other, _ = _delivery_prefixes(s3, bucket)
    _revoke(rt, bucket, revoked)
    for name in ("tombstone.json", "tombstone.json.sig"):
        s3.copy_object(Bucket=bucket, Key=other + name, CopySource={"Bucket": bucket, "Key": revoked + name})
    return bucket, revoked, other


def test_a_tombstone_copied_beside_another_delivery_revokes_nothing(published, s3, tmp_path, capsys, caplog):
    rt = published
    bucket, revoked, other = _tombstone_copied_beside_another(s3, rt)
    capsys.readouterr()

    out = tmp_path / "inbox"
    with caplog.at_level(logging.WARNING):
        assert main(_fetch_args(rt, bucket, out)) == 0
    [revocation] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("REVOKED")]
    assert revoked.split("/")[7] in revocation
    assert (_folder(out, other) / "data.csv").is_file(), "the other delivery is fetched as usual"
    assert not _folder(out, revoked).exists()
    assert any(other + "tombstone.json" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)
    with pytest.raises(BucketObjectError, match="not the one in its folder"):
        read_tombstone(s3, bucket, other, rt.config.settings.hub.signing_public_key)

    # The operator's list does not take the copy for the hub's own tombstone, and can still revoke it.
    assert main(["deliveries", "list", "--format", "json", *_home_args(rt, bucket)]) == 0
    states = {d["prefix"]: d["state"] for d in json.loads(capsys.readouterr().out)}
    assert (states[revoked], states[other]) == ("revoked", "complete")
    _revoke(rt, bucket, other, reason="really revoked")
    assert read_tombstone(s3, bucket, other, rt.config.settings.hub.signing_public_key)["reason"] == "really revoked"


def test_files_put_back_beside_a_tombstone_are_never_fetched(published, s3, tmp_path, capsys, caplog):
    rt = published
    bucket = _copy(s3, rt, "deliveries/")
    prefix = _delivery_prefixes(s3, bucket)[0]
    saved = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in _keys(s3, bucket, prefix)}
    _revoke(rt, bucket, prefix)
    for key, body in saved.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    capsys.readouterr()

    out = tmp_path / "inbox"
    with caplog.at_level(logging.WARNING):
        assert main(_fetch_args(rt, bucket, out)) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("REVOKED") == 1 and stdout.count("fetched  ") == 2
    assert prefix.split("/")[7] not in "".join(line for line in stdout.splitlines() if line.startswith("fetched"))
    assert not _folder(out, prefix).exists()
    assert any("back beside its tombstone" in r.getMessage() for r in caplog.records)

    # Nor verified or decrypted one at a time.
    hub_key = str(rt.home.root / "keys" / "allowed_signers")
    source = f"s3://{bucket}/{prefix}"
    assert main(["verify", source, "--hub-key", hub_key, *_home_args(rt, bucket)]) == 1
    assert f"REFUSED  {source}: revoked: revoked " in capsys.readouterr().out
    assert main(["decrypt", source, "--identity", str(rt.home.root / "keys" / RECIPIENT / "age.key"),
                 "--out", str(tmp_path / "one.csv"), "--hub-key", hub_key, *_home_args(rt, bucket)]) == 1
    assert not (tmp_path / "one.csv").exists()


def test_a_300_mb_tombstone_is_refused_without_being_read(published, s3, tmp_path):
    rt = published
    bucket = _copy(s3, rt, "deliveries/")
    prefix = _delivery_prefixes(s3, bucket)[0]
    _big_object(s3, bucket, prefix + "tombstone.json", 300 << 20, tmp_path)

    code, stdout, stderr, peak = _run(_fetch_args(rt, bucket, tmp_path / "inbox"))
    print(f"borderx fetch beside a 300 MB tombstone: peak RSS {peak >> 20} MiB")
    assert code == 0 and "Traceback" not in stderr
    assert f"{prefix}tombstone.json" in stderr and f"more than the {MAX_TOMBSTONE_BYTES} allowed" in stderr
    assert stdout.count("fetched  ") == 3, "the delivery beside it is checked and fetched as usual"
    assert peak < PEAK_RSS_LIMIT


def test_a_tombstone_just_over_the_cap_is_refused_and_one_at_the_cap_is_read(published, s3, tmp_path):
    rt = published
    bucket = _copy(s3, rt, "deliveries/")
    prefix = _delivery_prefixes(s3, bucket)[0]
    key = prefix + "tombstone.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b" " * (MAX_TOMBSTONE_BYTES + 1))
    with pytest.raises(BucketObjectError, match=f"{MAX_TOMBSTONE_BYTES + 1} bytes, more than the {MAX_TOMBSTONE_BYTES}"):
        read_tombstone(s3, bucket, prefix, rt.config.settings.hub.signing_public_key)
    s3.put_object(Bucket=bucket, Key=key, Body=b" " * MAX_TOMBSTONE_BYTES)
    assert len(read_capped(s3, bucket, key, MAX_TOMBSTONE_BYTES)) == MAX_TOMBSTONE_BYTES
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    assert read_capped(s3, bucket, key, MAX_TOMBSTONE_BYTES) == b""


# -- audit heads ----------------------------------------------------------------------------------


def test_a_200_mb_junk_head_is_refused_without_being_read_and_the_anchor_still_signs(published, s3, tmp_path, caplog):
    rt = published
    bucket = _copy(s3, rt, "deliveries/", "audit/heads/")
    junk = "audit/heads/999999999999.json"
    _big_object(s3, bucket, junk, 200 << 20, tmp_path)

    code, stdout, stderr, peak = _run(["audit", "verify", *_home_args(rt, bucket)])
    print(f"borderx audit verify beside a 200 MB head: peak RSS {peak >> 20} MiB")
    assert code == 1 and "Traceback" not in stderr
    assert f"s3://{bucket}/{junk}" in stdout and f"more than the {MAX_HEAD_BYTES} allowed" in stdout
    assert peak < PEAK_RSS_LIMIT

    # The hourly anchor takes the newest head the hub signed, and goes on signing.
    rt.trail.append("config-changed", files={})
    hostile = Runtime.open(rt.home.root, endpoint_url=rt.target.endpoint_url, bucket=bucket)
    with caplog.at_level(logging.WARNING):
        closing = close_if_new(hostile.trail, hostile.signing_key, hostile.hub_fingerprint,
                               hostile.config.settings.hub.signing_public_key, hostile.s3, bucket)
    assert closing.head is not None and closing.previous_seq is not None
    assert any(junk in r.getMessage() for r in caplog.records)


# -- junk keys ------------------------------------------------------------------------------------

JUNK_DELIVERY_KEYS = [
    "deliveries/X/Y/Z/2026/13/99/junk/manifest.json.sig",
    "deliveries/junk",
    "deliveries/DSA-2026-001/NA-MHAISS/traveller_flows/2026/01/01/id/too/deep",
    "deliveries/DSA-2026-001/NA-MHAISS/traveller_flows/2026/1/01/id/manifest.json.sig",
    "deliveries/DSA-2026-001/NA-MHAISS/../2026/01/01/id/manifest.json.sig",
]
JUNK_HEAD_KEYS = ["audit/heads/junk.json", "audit/heads/12.json", "audit/heads/zzzzzzzzzzzz.json"]


def test_junk_keys_are_skipped_with_a_warning_by_list_verify_fetch_and_retention(published, s3, tmp_path, caplog):
    rt = published
    bucket = _copy(s3, rt, "deliveries/", "audit/heads/")
    for key in JUNK_DELIVERY_KEYS + JUNK_HEAD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"junk")

    code, stdout, stderr, _ = _run(["deliveries", "list", *_home_args(rt, bucket)])
    assert code == 0 and "Traceback" not in stderr and len(stdout.splitlines()) == 6
    for key in JUNK_DELIVERY_KEYS:
        assert f"s3://{bucket}/{key}" in stderr

    code, stdout, stderr, _ = _run(["audit", "verify", *_home_args(rt, bucket)])
    assert code == 0 and "Traceback" not in stderr and stdout.startswith("ok: ")
    for key in JUNK_HEAD_KEYS:
        assert f"s3://{bucket}/{key}" in stderr

    code, stdout, stderr, _ = _run(_fetch_args(rt, bucket, tmp_path / "inbox"))
    assert code == 0 and stdout.count("fetched  ") == 3 and "Traceback" not in stderr
    assert f"s3://{bucket}/{JUNK_DELIVERY_KEYS[2]}" in stderr

    # Retention still runs, so nothing outlives its agreement because of a stray key.
    hostile = Runtime.open(rt.home.root, endpoint_url=rt.target.endpoint_url, bucket=bucket)
    with caplog.at_level(logging.WARNING):
        summary = apply_retention(hostile, today=dt.date.today() + dt.timedelta(days=366 * 6))
    assert len(summary.deleted) == 6
    assert any(JUNK_DELIVERY_KEYS[0] in r.getMessage() for r in caplog.records)
    assert list_deliveries(s3, bucket) == []


def test_retention_deletes_files_beside_a_copied_tombstone(published, s3, tmp_path):
    rt = published
    bucket, revoked, other = _tombstone_copied_beside_another(s3, rt)
    hostile = Runtime.open(rt.home.root, endpoint_url=rt.target.endpoint_url, bucket=bucket)
    summary = apply_retention(hostile, today=dt.date.today() + dt.timedelta(days=366 * 6))
    assert other.split("/")[7] in {d["delivery_id"] for d in summary.deleted}
    assert revoked.split("/")[7] not in {d["delivery_id"] for d in summary.deleted}
    assert sorted(k.rsplit("/", 1)[1] for k in _keys(s3, bucket, other)) == ["tombstone.json", "tombstone.json.sig"]
