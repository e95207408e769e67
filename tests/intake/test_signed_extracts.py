"""Providers' signatures: NAME.sig made with the real `ssh-keygen -Y sign -n borderx-extract` (or `borderx sign`)
dropped beside NAME is taken with it, checked against the agency's valid signing keys, and recorded in the manifest
and the receipt; a bad signature, or a missing one where one is required, quarantines the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from borderx.cli import main
from borderx.crypto import sshsig

from intake_drops import empty_intake, old, run_once

AGENCY = "ZA-DHA"


def flows(home) -> Path:
    return home.intake / AGENCY / "traveller_flows"


def agency_key(home, agency: str = AGENCY) -> Path:
    return home.root / "keys" / agency / "ssh_ed25519"


def fingerprint_of(key: Path) -> str:
    return sshsig.fingerprint(key.with_name(key.name + ".pub").read_text())


def good_extract(home, name: str = "signed.csv") -> Path:
    """The demo's good ZA-DHA extract, alone in the intake folder under `name`, an hour old."""
    kept = home.root / "good-extract.csv"
    if not kept.exists():
        shutil.copy(next(flows(home).glob("za-dha_flows_*[0-9].csv")), kept)
    content = kept.read_bytes()
    empty_intake(home)
    return old(flows(home) / name, content)


def ssh_sign(key: Path, file: Path) -> Path:
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "borderx-extract", "-f", str(key), str(file)], check=True,
                   capture_output=True)
    sig = file.with_name(file.name + ".sig")
    os.utime(sig, (file.stat().st_mtime,) * 2)
    return sig


def receipt(home, name: str) -> dict:
    return json.loads((home.intake / AGENCY / "receipts" / "traveller_flows" / f"{name}.receipt.json").read_text())


def quarantine_report(home, name: str) -> dict:
    return json.loads((home.quarantine / AGENCY / "traveller_flows" / f"{name}.report.json").read_text())


def manifests(s3, bucket: str) -> list[dict]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/").get("Contents", [])
            if o["Key"].endswith("/manifest.json")]
    return [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]


def set_field(home, kind: str, name: str, **fields) -> None:
    path = home.config / kind / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(fields)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_valid_signature_travels_into_the_manifest_receipt_and_archive(demo_home, s3_endpoint, bucket, s3,
                                                                         capsys):
    extract = good_extract(demo_home)
    sig = ssh_sign(agency_key(demo_home), extract)
    signature = sig.read_text()
    assert run_once(demo_home, s3_endpoint, bucket) == 0
    assert "1 file(s) found" in capsys.readouterr().out  # the .sig is no extract of its own

    key = fingerprint_of(agency_key(demo_home))
    found = manifests(s3, bucket)
    assert found and all(m["provider_signature"] == {"namespace": "borderx-extract", "key": key,
                                                     "signature": signature} for m in found)
    got = receipt(demo_home, extract.name)
    assert got["outcome"] == "accepted" and got["provider_signature"]["status"] == "valid"
    assert got["provider_signature"]["key"] == key
    archived = list((demo_home.archive / AGENCY / "traveller_flows").rglob("signed.csv*"))
    assert sorted(p.name for p in archived) == ["signed.csv", "signed.csv.sig"]
    assert next(p for p in archived if p.name.endswith(".sig")).read_text() == signature
    assert not sig.exists() and not extract.exists()


def test_unsigned_manifests_carry_no_provider_fields(demo_home, s3_endpoint, bucket, s3):
    good_extract(demo_home)
    assert run_once(demo_home, s3_endpoint, bucket) == 0
    found = manifests(s3, bucket)
    assert found and all("provider_signature" not in m for m in found)


def test_a_signature_of_other_bytes_quarantines_the_file_naming_the_key(demo_home, s3_endpoint, bucket, s3):
    extract = good_extract(demo_home)
    ssh_sign(agency_key(demo_home), extract)
    extract.write_bytes(extract.read_bytes().replace(b"ENTRY", b"EXIT", 1))  # one cell changed after signing
    os.utime(extract, (time.time() - 3600,) * 2)
    assert run_once(demo_home, s3_endpoint, bucket) == 1
    key = fingerprint_of(agency_key(demo_home))
    report = quarantine_report(demo_home, extract.name)
    assert report["reasons"][0]["rule"] == "signature-invalid" and key in report["reasons"][0]["message"]
    assert (demo_home.quarantine / AGENCY / "traveller_flows" / "signed.csv.sig").is_file()
    got = receipt(demo_home, extract.name)
    assert got["outcome"] == "quarantined" and got["provider_signature"]["status"] == "invalid"
    assert got["provider_signature"]["key"] == key
    assert manifests(s3, bucket) == []


def test_another_agencys_key_and_a_revoked_key_do_not_vouch(demo_home, s3_endpoint, bucket):
    extract = good_extract(demo_home)
    ssh_sign(agency_key(demo_home, "BW-DIC"), extract)
    assert run_once(demo_home, s3_endpoint, bucket) == 1
    message = quarantine_report(demo_home, extract.name)["reasons"][0]["message"]
    assert fingerprint_of(agency_key(demo_home, "BW-DIC")) in message and "not a signing key of ZA-DHA" in message

    path = demo_home.config / "agencies" / f"{AGENCY}.yaml"
    data = yaml.safe_load(path.read_text())
    data["signing_keys"][0]["revoked"] = True
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    again = good_extract(demo_home, "again.csv")
    ssh_sign(agency_key(demo_home), again)
    assert run_once(demo_home, s3_endpoint, bucket) == 1
    message = quarantine_report(demo_home, again.name)["reasons"][0]["message"]
    assert "revoked" in message and fingerprint_of(agency_key(demo_home)) in message


def test_required_signatures_quarantine_unsigned_files(demo_home, s3_endpoint, bucket):
    set_field(demo_home, "agencies", AGENCY, require_signed_extracts=True)
    extract = good_extract(demo_home)
    assert run_once(demo_home, s3_endpoint, bucket) == 1
    assert quarantine_report(demo_home, extract.name)["reasons"][0]["rule"] == "signature-missing"
    assert receipt(demo_home, extract.name)["provider_signature"]["status"] == "missing"

    signed = good_extract(demo_home, "signed.csv")
    ssh_sign(agency_key(demo_home), signed)
    assert run_once(demo_home, s3_endpoint, bucket) == 0


def test_an_agreement_can_require_signatures_too(demo_home, s3_endpoint, bucket):
    from borderx.config.loader import load_config

    config = load_config(demo_home.root)
    covering = [a.id for a in config.agreements.values() if AGENCY in a.providers and "traveller_flows" in a.datasets]
    set_field(demo_home, "agreements", covering[0], require_signed_extracts=True)
    extract = good_extract(demo_home)
    assert run_once(demo_home, s3_endpoint, bucket) == 1
    assert quarantine_report(demo_home, extract.name)["reasons"][0]["rule"] == "signature-missing"


def test_a_signature_dropped_after_the_file_within_the_settle_time_is_taken_with_it(demo_home, s3_endpoint,
                                                                                     bucket, s3):
    extract = good_extract(demo_home)
    os.utime(extract, None)  # just dropped
    settle = ["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket,
              "--settle", "2"]
    assert main(settle) == 0 and extract.exists()  # still settling: not taken
    time.sleep(1)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "borderx-extract", "-f", str(agency_key(demo_home)),
                    str(extract)], check=True, capture_output=True)
    time.sleep(1.2)
    # The file has settled, its signature not yet: the two wait together.
    assert main(settle) == 0 and extract.exists()
    time.sleep(1.2)
    assert main(settle) == 0 and not extract.exists()
    assert receipt(demo_home, extract.name)["provider_signature"]["status"] == "valid"
    assert all(m["provider_signature"]["key"] == fingerprint_of(agency_key(demo_home)) for m in manifests(s3, bucket))


def test_a_signature_without_its_file_is_left_alone(demo_home, s3_endpoint, bucket):
    empty_intake(demo_home)
    lonely = old(flows(demo_home) / "never-came.csv.sig", b"-----BEGIN SSH SIGNATURE-----\n")
    before = lonely.read_bytes()
    assert run_once(demo_home, s3_endpoint, bucket) == 0
    assert lonely.read_bytes() == before
    assert not list(demo_home.quarantine.rglob("never-came*"))
    assert not (demo_home.intake / AGENCY / "receipts").exists()


def test_hostile_signature_files_are_refused_before_parsing(demo_home, s3_endpoint, bucket, tmp_path):
    big = good_extract(demo_home, "big.csv")
    old(big.with_name("big.csv.sig"), b"A" * (1 << 20))
    assert run_once(demo_home, s3_endpoint, bucket) == 1
    reason = quarantine_report(demo_home, "big.csv")["reasons"][0]
    assert reason["rule"] == "signature-invalid" and "larger than 16384 bytes" in reason["message"]

    secret = tmp_path / "secret.sig"
    secret.write_text("not for the hub")
    linked = good_extract(demo_home, "linked.csv")
    os.symlink(secret, linked.with_name("linked.csv.sig"))
    os.utime(linked.with_name("linked.csv.sig"), (time.time() - 3600,) * 2, follow_symlinks=False)
    assert run_once(demo_home, s3_endpoint, bucket) == 1
    reason = quarantine_report(demo_home, "linked.csv")["reasons"][0]
    assert reason["rule"] == "signature-invalid" and "symbolic link" in reason["message"]
    assert secret.read_text() == "not for the hub"
    assert (demo_home.quarantine / AGENCY / "traveller_flows" / "linked.csv.sig").is_symlink()


def test_borderx_sign_makes_what_ssh_keygen_makes(demo_home, tmp_path, capsys):
    extract = tmp_path / "a" / "flows.csv"
    extract.parent.mkdir()
    extract.write_bytes(b"period,travellers\n2026-11-01,12\n")
    twin = tmp_path / "b" / "flows.csv"
    twin.parent.mkdir()
    shutil.copy(extract, twin)
    key = agency_key(demo_home)
    assert main(["sign", str(extract), "--key", str(key)]) == 0
    assert fingerprint_of(key) in capsys.readouterr().out
    ssh_sign(key, twin)
    assert extract.with_name("flows.csv.sig").read_bytes() == twin.with_name("flows.csv.sig").read_bytes()
    # Never overwrites: a second run fails naming the file.
    assert main(["sign", str(extract), "--key", str(key)]) == 1
    assert "flows.csv.sig" in capsys.readouterr().err


def test_an_s3_upload_and_its_signature_are_copied_in_and_taken_together(demo_home, s3_endpoint, bucket, s3,
                                                                         monkeypatch):
    from borderx.bucket.publish import ensure_bucket
    from borderx.exchange import Runtime
    from borderx.intake.sources.s3_uploads import copy_object, waiting_objects

    extract = good_extract(demo_home)
    sig = ssh_sign(agency_key(demo_home), extract)
    set_field(demo_home, "agencies", AGENCY, intake={"s3_prefix": "intake/ZA-DHA"})
    ensure_bucket(s3, bucket)
    for path in (extract, sig):
        s3.put_object(Bucket=bucket, Key=f"intake/ZA-DHA/traveller_flows/{path.name}", Body=path.read_bytes())
        path.unlink()
    monkeypatch.setenv("BORDERX_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("BORDERX_BUCKET", bucket)
    rt = Runtime.open(demo_home.root)
    waiting = waiting_objects(rt)
    assert sorted(o["name"] for o in waiting) == ["signed.csv", "signed.csv.sig"]
    for obj in waiting:
        copy_object(rt, obj)
    for path in (extract, sig):
        os.utime(path, (time.time() - 3600,) * 2)
    assert run_once(demo_home, s3_endpoint, bucket) == 0
    assert all(m["provider_signature"]["key"] == fingerprint_of(agency_key(demo_home)) for m in manifests(s3, bucket))
    body = s3.get_object(Bucket=bucket, Key="intake/ZA-DHA/receipts/traveller_flows/signed.csv.receipt.json")
    assert json.loads(body["Body"].read())["provider_signature"]["status"] == "valid"
