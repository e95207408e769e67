"""The command line as people use it: real processes, real keys, a real S3 endpoint."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import yaml

from borderx.cli import main
from borderx.crypto import age, sshsig

BORDERX = str(Path(sys.executable).with_name("borderx"))


def test_help_teaches_and_bad_usage_exits_2():
    done = subprocess.run([BORDERX, "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for command in ("check", "keys", "run", "demo", "audit"):
        assert command in done.stdout
    assert "exit codes" in done.stdout
    assert subprocess.run([BORDERX, "frobnicate"], capture_output=True).returncode == 2
    assert subprocess.run([BORDERX, "run"], capture_output=True).returncode == 2


def test_keys_generate_writes_tool_compatible_keys(tmp_path):
    out = tmp_path / "keys"
    done = subprocess.run([BORDERX, "keys", "generate", "ZA-DHA", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    identity_file, private, public = out / "age.key", out / "ssh_ed25519", out / "ssh_ed25519.pub"
    assert oct(identity_file.stat().st_mode & 0o777) == "0o600" and oct(private.stat().st_mode & 0o777) == "0o600"
    lines = identity_file.read_text().splitlines()
    assert lines[0].startswith("# created: ") and lines[1].startswith("# public key: age1")
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    recipient = subprocess.run(["age-keygen", "-y", str(identity_file)], capture_output=True, text=True, check=True)
    assert recipient.stdout.strip() == lines[1].removeprefix("# public key: ")
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(private)], capture_output=True, text=True, check=True)
    assert sshsig.fingerprint(public.read_text()) in fingerprint.stdout
    # The printed part is ready to paste into config/ and carries no private material.
    snippet = yaml.safe_load(done.stdout)
    assert snippet["age_recipients"][0]["key"] == recipient.stdout.strip()
    assert snippet["signing_keys"][0]["key"] == public.read_text().strip()
    assert "SECRET" not in done.stdout and "PRIVATE" not in done.stdout
    again = subprocess.run([BORDERX, "keys", "generate", "ZA-DHA", "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr


def test_run_once_then_again_publishes_nothing_new(demo_home, s3_endpoint, bucket, s3):
    args = ["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket,
            "--settle", "0"]
    assert main(args) == 1  # two of the demo's extracts are rejected
    first = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"])
    assert len(first) == 18  # six deliveries of three objects
    assert main(args) == 0
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]) == first


def test_signing_key_can_come_from_the_environment(demo_home, s3_endpoint, bucket, s3, monkeypatch):
    settings_path = demo_home.config / "settings.yaml"
    settings = yaml.safe_load(settings_path.read_text())
    settings["hub"]["signing_key"] = {"env": "BORDERX_TEST_HUB_KEY"}
    settings_path.write_text(yaml.safe_dump(settings))
    key_file = demo_home.root / "keys" / "hub" / "ssh_ed25519"
    monkeypatch.setenv("BORDERX_TEST_HUB_KEY", key_file.read_text())
    key_file.unlink()
    base = ["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket,
            "--settle", "0"]
    assert main(base) == 1
    sig_key = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"] if o["Key"].endswith(".sig"))
    signature = s3.get_object(Bucket=bucket, Key=sig_key)["Body"].read().decode()
    manifest = s3.get_object(Bucket=bucket, Key=sig_key.removesuffix(".sig"))["Body"].read()
    sshsig.verify(settings["hub"]["signing_public_key"], manifest, signature, "borderx-manifest")


def test_missing_signing_key_is_a_clear_error(demo_home, s3_endpoint, bucket, capsys):
    (demo_home.root / "keys" / "hub" / "ssh_ed25519").unlink()
    assert main(["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket,
                 "--settle", "0"]) == 1
    err = capsys.readouterr().err
    assert "hub signing key file" in err and "cannot be read" in err


def test_demo_on_a_given_endpoint_leaves_everything_a_recipient_needs(tmp_path, s3_endpoint, bucket):
    home = tmp_path / "demo"
    env = {**os.environ, "BORDERX_BUCKET": bucket}
    done = subprocess.run([BORDERX, "demo", "--home", str(home), "--s3-endpoint", s3_endpoint],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "published: 6 delivery(ies)" in out and "quarantined: 3 file(s)" in out
    assert "chain intact" in out
    assert "ssh-keygen -Y verify" in out and "age -d -i" in out

    # The data stays on the endpoint, and the home holds the keys and allowed_signers to open it.
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    data_key = next(k for k in keys if k.endswith("data.csv.age") and "/NA-MHAISS/" in k)
    prefix = data_key.removesuffix("data.csv.age")
    work = tmp_path / "fetched"
    work.mkdir()
    for name in ("data.csv.age", "manifest.json", "manifest.json.sig"):
        s3.download_file(bucket, prefix + name, str(work / name))
    with open(work / "manifest.json", "rb") as manifest:
        subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(home / "keys" / "allowed_signers"), "-I", "hub",
                        "-n", "borderx-manifest", "-s", str(work / "manifest.json.sig")], stdin=manifest, check=True,
                       capture_output=True)
    plain = subprocess.run(["age", "-d", "-i", str(home / "keys" / "NA-MHAISS" / "age.key"), str(work / "data.csv.age")],
                           capture_output=True, check=True).stdout
    assert plain.splitlines()[0].decode().replace('"', "").split(",")[0] == "period"
    assert json.loads((work / "manifest.json").read_text())["rows"] == len(plain.splitlines()) - 1

    # The commands the summary prints work as printed.
    for line in out.splitlines():
        if line.strip().startswith("cd "):
            folder = line.strip().removeprefix("cd ")
            break
    verify_line = next(line.strip() for line in out.splitlines() if line.strip().startswith("ssh-keygen"))
    decrypt_line = next(line.strip() for line in out.splitlines() if line.strip().startswith("age -d"))
    for command in (verify_line, decrypt_line):
        subprocess.run(command, shell=True, cwd=folder, check=True, capture_output=True)
    assert (Path(folder) / "data.csv").stat().st_size > 0


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--home", str(tmp_path)]) == 1
    assert "not made by `borderx demo`" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
