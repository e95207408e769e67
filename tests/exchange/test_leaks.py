"""Nothing secret leaks: no private key, identity or plaintext extract value in any log line, report, audit
event, manifest or object in the bucket, even with logging at DEBUG and files rejected."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS
from leak_scan import assert_nothing_leaks, drop_marked

BORDERX = str(Path(sys.executable).with_name("borderx"))


def test_no_secret_or_extract_value_appears_outside_the_extracts(demo_home, s3_endpoint, bucket, s3):
    flows = demo_home.intake / "ZA-DHA" / "traveller_flows"
    drop_marked(flows)
    old = dt.datetime.now().timestamp() - 60
    for path in flows.glob("marked*.csv"):
        os.utime(path, (old, old))
    env = {**os.environ, "BORDERX_S3_ENDPOINT_URL": s3_endpoint, "BORDERX_BUCKET": bucket}
    done = subprocess.run([BORDERX, "-vv", "run", "--once", "--home", str(demo_home.root)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]  # the bad extracts were rejected
    assert "DEBUG" in done.stderr, "logging really was at DEBUG"
    assert list(demo_home.quarantine.rglob("marked_bad.csv")) and list(demo_home.archive.rglob("marked.csv"))

    haystacks = {"stdout": done.stdout, "stderr": done.stderr}
    for path in demo_home.root.rglob("*"):
        rel = path.relative_to(demo_home.root)
        if not path.is_file() or rel.parts[0] in ("keys", "intake"):
            continue
        if rel.parts[0] in ("archive", "quarantine") and not path.name.endswith((".report.json", ".report.txt", ".html")):
            continue  # the extracts themselves, kept byte for byte
        if rel.parts[0] == "state" and path.suffix != ".json":
            continue
        haystacks[str(rel)] = path.read_bytes().decode("utf-8", "replace")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            haystacks[f"s3://{obj['Key']}"] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode(
                "utf-8", "replace")
    assert any(k.endswith(".report.txt") for k in haystacks) and any(k.startswith("s3://") for k in haystacks)
    assert_nothing_leaks(demo_home.root, haystacks)


def test_plaintext_temporary_files_are_private_and_removed_on_every_path(demo_home, s3_endpoint, bucket, monkeypatch):
    """The one plaintext temporary file the hub writes: the copy of a rejected extract into a quarantine on
    another file system. It is owner-only while written, and gone whether the copy succeeds or the disk fills."""
    import shutil

    from borderx.errors import BorderxError
    from borderx.exchange import Runtime, run_once
    from filesystems import small_fs

    for path in demo_home.intake.rglob("*"):
        if path.is_file():
            path.unlink()
    flows = demo_home.intake / "ZA-DHA" / "traveller_flows"
    seen = []
    real_copy = shutil.copyfileobj

    def watching_copy(src, dst, *args):
        written = Path(os.readlink(f"/proc/self/fd/{dst.fileno()}"))
        if written.is_relative_to(demo_home.quarantine):
            seen.append((written.name, os.fstat(dst.fileno()).st_mode & 0o777))
        return real_copy(src, dst, *args)

    monkeypatch.setattr(shutil, "copyfileobj", watching_copy)
    small = f"{','.join(TRAVELLER_FLOWS_COLUMNS)}\n2026-11-02,ZA-LEAK7,ENTRY\n"  # a missing column: rejected
    large = small + "2026-11-02,ZA-LEAK7,EXIT\n" * 20_000
    with small_fs(demo_home.quarantine, leave=128 << 10) as filler:
        (flows / "small.csv").write_text(small)
        os.chmod(flows / "small.csv", 0o640)
        run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
        kept = demo_home.quarantine / "ZA-DHA" / "traveller_flows" / "small.csv"
        assert kept.read_text() == small and kept.stat().st_mode & 0o777 == 0o640, "kept as it came, mode too"
        assert seen and all(mode == 0o600 for _, mode in seen), seen
        assert all(name.startswith(".") and name.endswith(".part") for name, _ in seen)

        seen.clear()
        (flows / "large.csv").write_text(large)
        with pytest.raises(BorderxError, match="quarantine folder"):
            run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
        assert seen and all(mode == 0o600 for _, mode in seen), "the copy was attempted, privately"
        holding = [p for p in demo_home.root.rglob("*") if p.is_file() and p != filler and "ZA-LEAK7" in
                   p.read_bytes().decode("utf-8", "replace")]
        assert sorted(str(p.relative_to(demo_home.root)).split("/")[0] for p in holding) == ["intake", "quarantine"]
        assert [p.name for p in holding if p.is_relative_to(demo_home.quarantine)] == ["small.csv"], \
            "no partial copy of the large file"
