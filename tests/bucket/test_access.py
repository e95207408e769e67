"""Bucket access from config, checked against an endpoint that enforces it, and the compose file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from borderx.bucket.access import HUB_USER, agency_user, user_policies
from borderx.cli import main
from borderx.config.loader import load_config

REPO = Path(__file__).resolve().parents[2]
BUCKET = "borderx"


def test_shipped_minio_policies_are_current(tmp_path):
    assert main(["access", "policy", "--home", str(REPO), "--out", str(tmp_path), "--bucket", BUCKET]) == 0
    shipped = sorted(p.name for p in (REPO / "docker" / "policies").glob("*.json"))
    assert shipped == sorted(p.name for p in tmp_path.glob("*.json"))
    for name in shipped:
        assert (REPO / "docker" / "policies" / name).read_text() == (tmp_path / name).read_text(), name


def test_compose_file_follows_the_compose_specification():
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def enforcing_s3(tmp_path):
    """A moto server of its own whose IAM checks are switched on once users and policies exist."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(service, url, keys=None):
    creds = {"aws_access_key_id": keys[0], "aws_secret_access_key": keys[1]} if keys else {
        "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", **creds)


def _allowed(call) -> bool:
    try:
        call()
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("AccessDenied", "403"):
            return False
        raise


def test_each_agency_reads_only_its_deliveries_and_writes_only_its_intake(enforcing_s3):
    config = load_config(REPO)
    iam, s3 = _client("iam", enforcing_s3), _client("s3", enforcing_s3)
    s3.create_bucket(Bucket=BUCKET)
    for key in ("deliveries/DSA-2026-001/ZA-SARS/traveller_flows/2026/11/28/abc/manifest.json",
                "deliveries/DSA-2026-001/NA-MHAISS/traveller_flows/2026/11/28/def/manifest.json",
                "intake/ZA-SARS/receipts/goods_crossings/x.csv.receipt.json",
                "intake/ZA-DHA/receipts/traveller_flows/y.csv.receipt.json"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
    keys = {}
    for user, policy in user_policies(config, BUCKET).items():
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="borderx", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = (k["AccessKeyId"], k["SecretAccessKey"])
    urllib.request.urlopen(urllib.request.Request(f"{enforcing_s3}/moto-api/reset-auth", data=b"0", method="POST",
                                                  headers={"Content-Type": "text/plain"}))

    sars = _client("s3", enforcing_s3, keys[agency_user("ZA-SARS")])
    own = "deliveries/DSA-2026-001/ZA-SARS/traveller_flows/2026/11/28/abc/manifest.json"
    other = "deliveries/DSA-2026-001/NA-MHAISS/traveller_flows/2026/11/28/def/manifest.json"
    assert _allowed(lambda: sars.get_object(Bucket=BUCKET, Key=own))
    assert not _allowed(lambda: sars.get_object(Bucket=BUCKET, Key=other))
    assert not _allowed(lambda: sars.put_object(Bucket=BUCKET, Key=own, Body=b"forged"))
    # ZA-SARS also provides goods_crossings: it may write its own intake prefix, nobody else's.
    assert _allowed(lambda: sars.put_object(Bucket=BUCKET, Key="intake/ZA-SARS/goods_crossings/x.csv", Body=b"a"))
    assert not _allowed(lambda: sars.put_object(Bucket=BUCKET, Key="intake/ZA-DHA/traveller_flows/x.csv", Body=b"a"))
    # Its receipts it reads and cannot write; another agency's it cannot read.
    receipt = "intake/ZA-SARS/receipts/goods_crossings/x.csv.receipt.json"
    assert _allowed(lambda: sars.get_object(Bucket=BUCKET, Key=receipt))
    assert not _allowed(lambda: sars.put_object(Bucket=BUCKET, Key=receipt, Body=b"forged"))
    assert not _allowed(lambda: sars.get_object(Bucket=BUCKET,
                                                Key="intake/ZA-DHA/receipts/traveller_flows/y.csv.receipt.json"))

    na = _client("s3", enforcing_s3, keys[agency_user("NA-MHAISS")])
    assert _allowed(lambda: na.get_object(Bucket=BUCKET, Key=other))
    assert not _allowed(lambda: na.get_object(Bucket=BUCKET, Key=own))
    assert not _allowed(lambda: na.put_object(Bucket=BUCKET, Key="intake/NA-MHAISS/traveller_flows/x.csv", Body=b"a"))

    hub = _client("s3", enforcing_s3, keys[HUB_USER])
    assert _allowed(lambda: hub.put_object(Bucket=BUCKET, Key="deliveries/x/ZA-SARS/y", Body=b"a"))
    assert _allowed(lambda: hub.get_object(Bucket=BUCKET, Key=other))
    stranger = _client("s3", enforcing_s3, ("AKIAUNKNOWN000000000", "nope"))
    with pytest.raises(ClientError):
        stranger.get_object(Bucket=BUCKET, Key=own)
