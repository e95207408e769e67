"""Receipts: every file the hub takes in, accepted or quarantined, gets a hub-signed receipt where its agency can
read it, checked with the real `ssh-keygen -Y verify`; S3 intake agencies find theirs under their prefix."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from borderx.audit.trail import AuditTrail
from borderx.crypto import sshsig
from borderx.intake.receipts import NAMESPACE
from borderx.intake.sources.s3_uploads import setup_notifications

from intake_drops import FLOWS, empty_intake, old, run_once

AGENCY = "ZA-DHA"


def flows(home) -> Path:
    return home.intake / AGENCY / "traveller_flows"


def receipts_of(home, agency: str, dataset: str) -> Path:
    return home.intake / agency / "receipts" / dataset


def hub_signers(home, tmp_path: Path) -> Path:
    settings = yaml.safe_load((home.config / "settings.yaml").read_text())
    path = tmp_path / "allowed_signers"
    path.write_text(sshsig.allowed_signers_line("hub", settings["hub"]["signing_public_key"], NAMESPACE) + "\n")
    return path


def ssh_verify(signers: Path, body: bytes, signature: Path, namespace: str = NAMESPACE) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "hub", "-n", namespace,
                           "-s", str(signature)], input=body, capture_output=True)


def read_receipt(folder: Path, stem: str) -> tuple[dict, bytes]:
    body = (folder / f"{stem}.receipt.json").read_bytes()
    return json.loads(body), body


def test_accepted_and_quarantined_files_get_signed_receipts_the_agency_can_read(demo_home, s3_endpoint, bucket,
                                                                                tmp_path):
    good = next(flows(demo_home).glob("za-dha_flows_*[0-9].csv"))
    bad = next(flows(demo_home).glob("*_resent.csv"))
    sha_good, size_good = hashlib.sha256(good.read_bytes()).hexdigest(), good.stat().st_size
    sha_bad = hashlib.sha256(bad.read_bytes()).hexdigest()
    run_once(demo_home, s3_endpoint, bucket)

    folder = receipts_of(demo_home, AGENCY, "traveller_flows")
    signers = hub_signers(demo_home, tmp_path)
    accepted, body = read_receipt(folder, good.name)
    assert ssh_verify(signers, body, folder / f"{good.name}.receipt.json.sig").returncode == 0
    assert accepted["outcome"] == "accepted"
    assert accepted["file"] == {"name": good.name, "sha256": sha_good, "size": size_good}
    assert accepted["reasons"] == [] and accepted["provider_signature"]["status"] == "unsigned"
    published = [e["details"] for e in AuditTrail(demo_home.audit).events()
                 if e["type"] == "published" and e["details"]["source_sha256"] == sha_good]
    assert published and sorted(d["delivery_id"] for d in accepted["deliveries"]) == sorted(
        p["delivery_id"] for p in published)
    assert {(d["agreement"], d["recipient"]) for d in accepted["deliveries"]} == {
        (p["agreement"], p["recipient"]) for p in published}

    rejected, body = read_receipt(folder, bad.name)
    assert ssh_verify(signers, body, folder / f"{bad.name}.receipt.json.sig").returncode == 0
    assert rejected["outcome"] == "quarantined" and rejected["file"]["sha256"] == sha_bad
    assert rejected["deliveries"] == [] and rejected["reasons"]
    report = json.loads(next((demo_home.quarantine / AGENCY / "traveller_flows").glob("*.report.json")).read_text())
    assert rejected["reasons"] == report["reasons"]
    # Value-free: the wrong values of the rejected file are not in what the agency reads back.
    text = (folder / f"{bad.name}.receipt.txt").read_text()
    assert "QUARANTINED" in text and "ssh-keygen -Y verify" in text
    assert all(v not in body.decode() + text for v in ("INBOUND", "South Africa"))

    # A receipt tampered with, or checked in another namespace, does not verify.
    assert ssh_verify(signers, body.replace(b"quarantined", b"accepted"),
                      folder / f"{bad.name}.receipt.json.sig").returncode != 0
    assert ssh_verify(signers, body, folder / f"{bad.name}.receipt.json.sig", "borderx-manifest").returncode != 0

    # Readable by the agency folder's group, never by others; the folders likewise.
    agency_gid = (demo_home.intake / AGENCY).stat().st_gid
    for p in [folder.parent, folder, *folder.iterdir()]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o750 if p.is_dir() else 0o640), (p, oct(mode))
        assert p.stat().st_gid == agency_gid

    issued = [e["details"] for e in AuditTrail(demo_home.audit).events() if e["type"] == "receipt-issued"]
    assert {(d["source_name"], d["outcome"]) for d in issued} >= {(good.name, "accepted"), (bad.name, "quarantined")}
    mine = next(d for d in issued if d["source_name"] == good.name)
    assert mine["receipt_sha256"] == hashlib.sha256(read_receipt(folder, good.name)[1]).hexdigest()


def test_a_duplicate_keeps_the_first_receipt_and_gets_its_own(demo_home, s3_endpoint, bucket, tmp_path):
    empty_intake(demo_home)
    first = old(flows(demo_home) / "x.csv", FLOWS)
    run_once(demo_home, s3_endpoint, bucket)
    folder = receipts_of(demo_home, AGENCY, "traveller_flows")
    before = (folder / "x.csv.receipt.json").read_bytes()
    old(first, FLOWS)
    run_once(demo_home, s3_endpoint, bucket)
    assert (folder / "x.csv.receipt.json").read_bytes() == before
    tag = hashlib.sha256(FLOWS).hexdigest()[:12]
    second, body = read_receipt(folder, f"x.csv.{tag}")
    assert second["outcome"] == "quarantined" and second["reasons"][0]["rule"] == "duplicate"
    assert ssh_verify(hub_signers(demo_home, tmp_path), body,
                      folder / f"x.csv.{tag}.receipt.json.sig").returncode == 0


def test_a_duplicate_of_another_agencys_file_names_neither_that_agency_nor_its_file(demo_home, s3_endpoint, bucket):
    empty_intake(demo_home)
    old(flows(demo_home) / "za-dha-secret-name.csv", FLOWS)
    run_once(demo_home, s3_endpoint, bucket)
    old(demo_home.intake / "BW-DIC" / "traveller_flows" / "mine.csv", FLOWS)
    run_once(demo_home, s3_endpoint, bucket)

    theirs, body = read_receipt(receipts_of(demo_home, "BW-DIC", "traveller_flows"), "mine.csv")
    assert theirs["outcome"] == "quarantined" and theirs["reasons"][0]["rule"] == "duplicate"
    assert "another agency" in theirs["reasons"][0]["message"]
    text = (receipts_of(demo_home, "BW-DIC", "traveller_flows") / "mine.csv.receipt.txt").read_text()
    for told in (body.decode(), text):
        assert "za-dha-secret-name" not in told and AGENCY not in told


def test_a_name_too_long_for_its_receipt_gets_a_fixed_length_one(demo_home, s3_endpoint, bucket, tmp_path):
    good = next(flows(demo_home).glob("za-dha_flows_*[0-9].csv"))
    content = good.read_bytes()
    empty_intake(demo_home)
    # Room for the quarantine's NAME.report.json, none for NAME.receipt.json.sig.
    name = "n" * 237 + ".csv"
    old(flows(demo_home) / name, content)
    assert run_once(demo_home, s3_endpoint, bucket) == 0
    folder = receipts_of(demo_home, AGENCY, "traveller_flows")
    stem = "sha256-" + hashlib.sha256(content).hexdigest()[:32]
    receipt, body = read_receipt(folder, stem)
    assert receipt["file"]["name"] == name and receipt["outcome"] == "accepted" and receipt["deliveries"]
    assert sorted(p.name for p in folder.iterdir()) == [f"{stem}.receipt.json", f"{stem}.receipt.json.sig",
                                                         f"{stem}.receipt.txt"]
    assert ssh_verify(hub_signers(demo_home, tmp_path), body, folder / f"{stem}.receipt.json.sig").returncode == 0


def test_a_link_dropped_as_a_file_gets_a_receipt_without_a_hash(demo_home, s3_endpoint, bucket, tmp_path):
    empty_intake(demo_home)
    os.symlink("/etc/passwd", flows(demo_home) / "link.csv")
    run_once(demo_home, s3_endpoint, bucket)
    receipt, _ = read_receipt(receipts_of(demo_home, AGENCY, "traveller_flows"), "link.csv")
    assert receipt["file"]["sha256"] is None and receipt["reasons"][0]["rule"] == "symlink"


def test_a_receipts_folder_that_is_a_link_is_never_written_through(demo_home, s3_endpoint, bucket, tmp_path):
    empty_intake(demo_home)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, demo_home.intake / AGENCY / "receipts")
    old(flows(demo_home) / "x.csv", FLOWS)
    run_once(demo_home, s3_endpoint, bucket)
    assert list(elsewhere.iterdir()) == []
    issued = [e["details"] for e in AuditTrail(demo_home.audit).events() if e["type"] == "receipt-issued"]
    assert len(issued) == 1 and issued[0]["receipt"] is None


def test_s3_intake_receipts_go_under_the_agency_prefix(demo_home, s3_endpoint, bucket, s3, tmp_path, monkeypatch):
    import boto3

    path = demo_home.config / "agencies" / "ZA-SARS.yaml"
    data = yaml.safe_load(path.read_text())
    data["intake"] = {"s3_prefix": "intake/ZA-SARS"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
    setup_notifications(s3, sqs, bucket, {"ZA-SARS": "intake/ZA-SARS/"})
    goods = demo_home.intake / "ZA-SARS" / "goods_crossings"
    names = sorted(p.name for p in goods.iterdir())
    for p in goods.iterdir():
        s3.put_object(Bucket=bucket, Key=f"intake/ZA-SARS/goods_crossings/{p.name}", Body=p.read_bytes())
        p.unlink()
    monkeypatch.setenv("BORDERX_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("BORDERX_BUCKET", bucket)
    from borderx.exchange import Runtime
    from borderx.intake.sources.s3_uploads import copy_object, waiting_objects

    rt = Runtime.open(demo_home.root)
    for obj in waiting_objects(rt):
        copy_object(rt, obj)
    run_once(demo_home, s3_endpoint, bucket)

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="intake/ZA-SARS/receipts/goods_crossings/")
    keys = sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", []))
    assert keys == sorted(f"{n}{s}" for n in names for s in (".receipt.json", ".receipt.json.sig", ".receipt.txt"))
    signers = hub_signers(demo_home, tmp_path)
    outcomes = {}
    for name in names:
        base = f"intake/ZA-SARS/receipts/goods_crossings/{name}"
        body = s3.get_object(Bucket=bucket, Key=base + ".receipt.json")["Body"].read()
        sig = tmp_path / "r.sig"
        sig.write_bytes(s3.get_object(Bucket=bucket, Key=base + ".receipt.json.sig")["Body"].read())
        assert ssh_verify(signers, body, sig).returncode == 0
        outcomes[name] = json.loads(body)["outcome"]
    assert sorted(outcomes.values()) == ["accepted", "quarantined"]
    # The S3 intake never takes its own receipts back in as extracts.
    assert waiting_objects(Runtime.open(demo_home.root)) == []


@pytest.mark.parametrize("length", [240, 250, 255])
def test_a_name_at_the_file_systems_limit_is_kept_and_told_not_taken_again_forever(demo_home, s3_endpoint, bucket,
                                                                                   length):
    good = next(flows(demo_home).glob("za-dha_flows_*[0-9].csv"))
    content = good.read_bytes()
    empty_intake(demo_home)
    name = "n" * (length - 4) + ".csv"
    old(flows(demo_home) / name, content)  # accepted: archived
    bad = "b" * (length - 4) + ".csv"
    old(flows(demo_home) / bad, FLOWS)  # rejected: quarantined

    assert run_once(demo_home, s3_endpoint, bucket) == 1
    assert not list(flows(demo_home).rglob("*.csv")), "nothing waits to be taken again"

    [archived] = [p for p in demo_home.archive.rglob("*") if p.is_file()]
    assert archived.read_bytes() == content and archived.name.startswith("long-name-") and archived.suffix == ".csv"
    [kept] = [p for p in (demo_home.quarantine / AGENCY / "traveller_flows").iterdir() if p.suffix == ".csv"]
    assert kept.read_bytes() == FLOWS and kept.name.startswith("long-name-")
    report = json.loads(kept.with_name(kept.name + ".report.json").read_text())
    assert report["original_name"] == bad and report["file"] == kept.name
    assert kept.with_name(kept.name + ".validation.html").exists(), "its Data Docs page kept beside it"
    archived_event = next(e["details"] for e in AuditTrail(demo_home.audit).events() if e["type"] == "archived")
    assert archived_event["source_name"] == name and archived_event["file"] == str(archived)
    folder = receipts_of(demo_home, AGENCY, "traveller_flows")
    outcomes = {}
    for path in folder.glob("*.receipt.json"):
        body = json.loads(path.read_text())
        outcomes[body["file"]["name"]] = body["outcome"]
    assert outcomes == {name: "accepted", bad: "quarantined"}
