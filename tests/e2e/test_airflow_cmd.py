"""`borderx airflow` as a user runs it: a real `airflow standalone` and local S3 endpoint, one extract dropped
and published, receipts for a signed and a bad drop soon after, then Ctrl-C, after which nothing it started is
left running."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import psutil
import pytest
import yaml

from airflow_procs import free_port
from borderx.crypto import sshsig
from borderx.dev import samples
from borderx.cli.parser import build_parser

BORDERX = str(Path(sys.executable).with_name("borderx"))
START_DEADLINE = 300
STOP_DEADLINE = 180
RECEIPT_DEADLINE = 120
PUBLISH_DEADLINE = 120


def test_help_says_what_it_starts_and_where_the_login_is():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["airflow"].format_help()
    for words in ("airflow standalone", "--port", "--home", "borderx_uploads", "Ctrl-C",
                  "simple_auth_manager_passwords.json.generated", "demo"):
        assert words in text, words


def _read(out: Path) -> str:
    return out.read_text(errors="replace") if out.exists() else ""


def _wait(what: str, check, proc: subprocess.Popen, out: Path, deadline: float, seen: set):
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert proc.poll() is None, f"borderx airflow exited with {proc.returncode} waiting for {what}\n{_read(out)}"
        with contextlib.suppress(psutil.NoSuchProcess):
            seen.update(psutil.Process(proc.pid).children(recursive=True))
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{_read(out)[-5000:]}")


def _api_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as response:
            return response.status == 200 and "scheduler" in json.loads(response.read())
    except OSError:
        return False


def _signed_for(s3, bucket: str, sha256: str) -> list[dict]:
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/").get("Contents", [])
    except s3.exceptions.NoSuchBucket:
        return []
    found = []
    for obj in listed:
        if obj["Key"].endswith("manifest.json.sig"):
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"].removesuffix(".sig"))["Body"].read())
            if manifest["source"]["sha256"] == sha256:
                found.append(manifest)
    return found


def test_borderx_airflow_publishes_a_dropped_file_and_ctrl_c_stops_everything(tmp_path):
    home = tmp_path / "home"  # not there yet: the command makes a demo home
    port = free_port()
    out = tmp_path / "borderx-airflow.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BORDERX_", "AIRFLOW"))}
    seen: set[psutil.Process] = set()
    with open(out, "wb") as sink:
        proc = subprocess.Popen([BORDERX, "airflow", "--home", str(home), "--port", str(port)], env=env,
                                stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + START_DEADLINE
        _wait("the ready banner", lambda: "drop extracts into:" in _read(out), proc, out, deadline, seen)
        text = _read(out)
        assert _api_answers(port), text
        assert f"http://127.0.0.1:{port}" in text
        password_file = home / "airflow" / "simple_auth_manager_passwords.json.generated"
        assert str(password_file) in text and "admin" in json.loads(password_file.read_text())
        endpoint = re.search(r"S3 endpoint:\s+(http://127\.0\.0\.1:\d+)", text).group(1)
        intake = home.resolve() / "intake" / "ZA-DHA" / "traveller_flows"
        assert f"  {intake}\n" in text

        db = home / "airflow" / "airflow.db"
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
            dags = dict(conn.execute("SELECT dag_id, is_paused FROM dag").fetchall())
            pool = conn.execute("SELECT slots FROM slot_pool WHERE pool = 'borderx_uploads'").fetchall()
        assert dags and all(d.startswith("borderx_") for d in dags), "no example DAGs"
        assert not any(dags.values()), f"every borderx DAG unpaused: {dags}"
        assert pool == [(4,)]

        # Dropped as transfer tools do: written under a .part name, then renamed into place.
        partial = intake / "za-dha_flows_drop.csv.part"
        samples.write_csv(partial, samples.TRAVELLER_FLOWS_COLUMNS,
                          samples.traveller_flows_rows(["ZA-BEI"], dt.date.today() - dt.timedelta(days=9), 2, seed=5))
        sha256 = hashlib.sha256(partial.read_bytes()).hexdigest()
        os.replace(partial, intake / "za-dha_flows_drop.csv")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="borderx-local",
                          aws_secret_access_key="borderx-local")
        manifests = _wait("the extract's signed manifests", lambda: len(_signed_for(s3, "borderx-demo", sha256)) == 2
                          and _signed_for(s3, "borderx-demo", sha256), proc, out,
                          time.monotonic() + PUBLISH_DEADLINE, seen)
        assert {m["recipient"] for m in manifests} == {"NA-MHAISS", "ZA-SARS"}
        # The event-driven run and the sweep (unpaused at start, so it runs at once) are both correct ways in;
        # which one takes the file first is a race the test must not depend on.
        assert {m["airflow"]["dag_id"] for m in manifests} <= {"borderx_exchange", "borderx_sweep"}
        assert len({m["airflow"]["run_id"] for m in manifests}) == 1, "published by one run"
        _receipts_come_soon_after_a_drop(home, intake, tmp_path, proc, out, seen)
        with contextlib.suppress(psutil.NoSuchProcess):
            seen.update(psutil.Process(proc.pid).children(recursive=True))
        assert len(seen) >= 5, f"standalone and its components ran below the command: {seen}"

        proc.send_signal(signal.SIGINT)
        # Standalone stops its components one by one, each given a grace period; on a busy machine that is slow.
        assert proc.wait(timeout=STOP_DEADLINE) == 0, _read(out)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        left = [p for p in seen if _alive(p)]
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
    assert not left, f"still running after Ctrl-C: {[(p.pid, p.name()) for p in left]}"
    assert "stopped" in _read(out)
    assert not _api_answers(port)
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint, timeout=2)  # the local S3 endpoint is down too


def _verify_receipt(home: Path, receipt: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    settings = yaml.safe_load((home / "config" / "settings.yaml").read_text())
    signers = tmp_path / "allowed_signers"
    signers.write_text(sshsig.allowed_signers_line("hub", settings["hub"]["signing_public_key"],
                                                   "borderx-receipt") + "\n")
    return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "hub", "-n", "borderx-receipt",
                           "-s", str(receipt) + ".sig"], stdin=receipt.open("rb"), capture_output=True)


def _receipts_come_soon_after_a_drop(home: Path, intake: Path, tmp_path: Path, proc, out: Path, seen: set) -> None:
    """A signed drop and a bad drop each get a hub-signed receipt in the agency's receipts folder."""
    receipts = intake.parent / "receipts" / intake.name
    start = dt.date.today() - dt.timedelta(days=11)
    # Signed before it is dropped: the signature lies in the folder first, as an officer would do it.
    staged = tmp_path / "signed_drop.csv"
    samples.write_csv(staged, samples.TRAVELLER_FLOWS_COLUMNS, samples.traveller_flows_rows(["ZA-BEI"], start, 2, seed=7))
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "borderx-extract", "-f",
                    str(home / "keys" / "ZA-DHA" / "ssh_ed25519"), str(staged)], check=True, capture_output=True)
    os.replace(staged.with_name("signed_drop.csv.sig"), intake / "signed_drop.csv.sig")
    dropped = time.monotonic()
    os.replace(staged, intake / "signed_drop.csv")
    bad = list(samples.traveller_flows_rows(["ZA-BEI"], start, 2, seed=8))
    bad[1][2] = "SIDEWAYS"
    samples.write_csv(intake / "bad_drop.csv.part", samples.TRAVELLER_FLOWS_COLUMNS, bad)
    os.replace(intake / "bad_drop.csv.part", intake / "bad_drop.csv")

    names = ("za-dha_flows_drop.csv", "signed_drop.csv", "bad_drop.csv")
    _wait("the receipts", lambda: all((receipts / f"{n}.receipt.json.sig").exists() for n in names),
          proc, out, time.monotonic() + RECEIPT_DEADLINE, seen)
    print(f"receipts {time.monotonic() - dropped:.1f} s after the drop")

    signed = json.loads((receipts / "signed_drop.csv.receipt.json").read_text())
    assert signed["outcome"] == "accepted" and len(signed["deliveries"]) == 2
    assert signed["provider_signature"]["status"] == "valid"
    rejected = json.loads((receipts / "bad_drop.csv.receipt.json").read_text())
    assert rejected["outcome"] == "quarantined" and rejected["reasons"]
    assert "SIDEWAYS" not in (receipts / "bad_drop.csv.receipt.txt").read_text()
    for name in names:
        result = _verify_receipt(home, receipts / f"{name}.receipt.json", tmp_path)
        assert result.returncode == 0, result.stderr


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
