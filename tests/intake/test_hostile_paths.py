"""An agency with write access to its own intake or export folder, or to its S3 prefix, tries to make the hub
read, move or copy what lies elsewhere through links, and to jam the copy-in with names that cannot exist.

Each test is the attack as it was tried: real folders, real links, a real moto bucket, `borderx run --once`
and `borderx check` through the CLI. The hub must refuse the linked folder, record the refusal in the audit
trail, name it in `borderx check`, and leave what lies behind the link exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from borderx.audit import report as audit_report
from borderx.audit.trail import AuditTrail
from borderx.config.loader import load_config
from borderx.intake.sources.pull import pull

from intake_drops import (  # noqa: F401
    FLOWS, SECRET, check, empty_intake, holding, old, private_folder, refusals, run_once, set_pull, snapshot,
)


@pytest.fixture
def umask_000():
    before = os.umask(0o000)
    yield
    os.umask(before)


# -- intake folders ------------------------------------------------------------------------------------------


def test_a_dataset_folder_linked_to_a_private_folder_is_refused_by_run(demo_home, s3_endpoint, bucket, capsys,
                                                                        caplog, tmp_path):
    empty_intake(demo_home)
    private = private_folder(tmp_path / "hub-private")
    dataset = demo_home.intake / "ZA-DHA" / "traveller_flows"
    dataset.rmdir()
    dataset.symlink_to(private)
    before = snapshot(private)

    assert run_once(demo_home, s3_endpoint, bucket) == 0
    assert run_once(demo_home, s3_endpoint, bucket) == 0  # a second sweep: refused again, recorded once

    assert snapshot(private) == before, "nothing behind the link was moved or changed"
    assert holding(demo_home.root, SECRET) == [], "nothing behind the link was copied into the home"
    assert not list(demo_home.quarantine.rglob("*")) and not list(demo_home.archive.rglob("*"))
    assert dataset.is_symlink() and not (private / ".inflight").exists()
    assert refusals(demo_home) == [{"reason": "linked-folder", "path": "intake/ZA-DHA/traveller_flows",
                                    "target": str(private), "provider": "ZA-DHA", "dataset": "traveller_flows"}]
    assert "intake/ZA-DHA/traveller_flows is a symbolic link" in caplog.text
    # The auditor's report says so too.
    assert [(r["reason"], r["what"]) for r in audit_report.build(AuditTrail(demo_home.audit).events()).refusals] == [
        ("linked-folder", "intake/ZA-DHA/traveller_flows")]
    assert AuditTrail(demo_home.audit).verify()[1] is None

    code, out = check(demo_home, capsys)
    assert code == 1
    assert f"intake.folder: {dataset} is a symbolic link (to {private})" in out


def test_an_agency_folder_linked_elsewhere_is_refused_by_run(demo_home, s3_endpoint, bucket, capsys, tmp_path):
    empty_intake(demo_home)
    elsewhere = private_folder(tmp_path / "elsewhere")
    agency = demo_home.intake / "ZA-DHA"
    shutil.rmtree(agency)
    agency.symlink_to(elsewhere)
    before = snapshot(elsewhere)

    assert run_once(demo_home, s3_endpoint, bucket) == 0

    assert snapshot(elsewhere) == before
    assert holding(demo_home.root, SECRET) == []
    assert [(r["reason"], r["path"]) for r in refusals(demo_home)] == [("linked-folder", "intake/ZA-DHA")]
    code, out = check(demo_home, capsys)
    assert code == 1 and f"{agency} is a symbolic link (to {elsewhere})" in out


def test_the_intake_trigger_announces_nothing_behind_a_linked_folder(demo_home, tmp_path):
    from borderx.intake.watch import IntakeWatch

    empty_intake(demo_home)
    private = private_folder(tmp_path / "hub-private")
    dataset = demo_home.intake / "ZA-DHA" / "traveller_flows"
    dataset.rmdir()
    dataset.symlink_to(private)
    old(demo_home.intake / "ZA-SARS" / "goods_crossings" / "real.csv", b"declaration_ref\nT1\n")
    watch = IntakeWatch(demo_home.root, settle_seconds=0)
    try:
        assert [p["name"] for p in watch.poll()] == ["real.csv"]
    finally:
        watch.close()


def test_a_dataset_folder_swapped_for_a_link_after_the_scan_is_not_taken_from(demo_home, tmp_path):
    from borderx.exchange import Runtime, receive
    from borderx.folders import LinkedFolder
    from borderx.intake import scan

    empty_intake(demo_home)
    dataset = demo_home.intake / "ZA-DHA" / "traveller_flows"
    old(dataset / "secret.csv", FLOWS)
    rt = Runtime.open(demo_home.root)
    [found] = scan(rt.config, rt.home, settle_seconds=0)
    private = private_folder(tmp_path / "hub-private")
    shutil.rmtree(dataset)
    dataset.symlink_to(private)  # between the scan and the take, the folder is now a link
    before = snapshot(private)

    with pytest.raises(LinkedFolder):
        receive(rt, found)
    assert snapshot(private) == before


def test_a_hand_off_folder_swapped_for_a_link_to_the_hub_keys_is_not_read_or_moved(demo_home):
    from borderx.exchange import Runtime
    from borderx.folders import LinkedFolder
    from borderx.intake import Owner, hash_taken, scan, take
    from borderx.quarantine import QuarantineError, Reason, quarantine

    empty_intake(demo_home)
    dataset = demo_home.intake / "ZA-DHA" / "traveller_flows"
    old(dataset / "ssh_ed25519", FLOWS)  # named like the hub's signing key
    rt = Runtime.open(demo_home.root)
    [found] = scan(rt.config, rt.home, settle_seconds=0)
    held = take(Path(found.path), dataset, Owner.for_process(), found.size, root=demo_home.root)
    # The agency may rename what lies in its own folder: the hub's hand-off folder is put aside, and a folder
    # of the agency's own takes its place, with the taken file's folder linked to the hub's keys.
    keys = demo_home.root / "keys" / "hub"
    os.rename(dataset / ".inflight", dataset / ".aside")
    (dataset / ".inflight" / held.parent.parent.name).mkdir(parents=True)
    held.parent.symlink_to(keys)
    before = snapshot(keys)

    with pytest.raises(LinkedFolder):
        hash_taken(held)
    with pytest.raises(QuarantineError, match="symbolic link"):
        quarantine(rt.home, source=held, agency="ZA-DHA", dataset="traveller_flows", sha256=None,
                   reasons=[Reason("changed-while-read", "changed")])
    assert snapshot(keys) == before
    assert holding(demo_home.quarantine, (keys / "ssh_ed25519").read_bytes()) == []


# -- pull sources --------------------------------------------------------------------------------------------


def test_a_pull_dataset_folder_linked_to_the_hub_keys_is_not_copied(demo_home, tmp_path, capsys):
    keys = demo_home.root / "keys" / "hub"
    exports = tmp_path / "exports" / "ZA-DHA"
    exports.mkdir(parents=True)
    (exports / "traveller_flows").symlink_to(keys)
    set_pull(demo_home, "ZA-DHA", {"folder": str(exports)})
    hub_key = (keys / "ssh_ed25519").read_bytes()
    before = snapshot(keys)

    config = load_config(demo_home.root)
    assert pull(config, demo_home, "ZA-DHA").outcomes == []
    assert pull(config, demo_home, "ZA-DHA").outcomes == []

    assert snapshot(keys) == before
    assert holding(demo_home.intake, hub_key) == [] and not list((demo_home.intake / "ZA-DHA").rglob("ssh_*"))
    assert refusals(demo_home) == [{"reason": "linked-folder", "path": str(exports / "traveller_flows"),
                                    "target": str(keys), "provider": "ZA-DHA", "dataset": "traveller_flows"}]
    code, out = check(demo_home, capsys)
    assert code == 1
    assert f"pull.folder: {exports / 'traveller_flows'} is a symbolic link (to {keys})" in out


def test_a_link_in_the_middle_of_a_pull_path_is_not_followed(demo_home, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    old(elsewhere / "ZA-DHA" / "traveller_flows" / "dha.csv", FLOWS)
    (demo_home.root / "exports").symlink_to(elsewhere)  # the pull folder is exports/ZA-DHA, relative to the home
    set_pull(demo_home, "ZA-DHA", {"folder": "exports/ZA-DHA"})
    intake = demo_home.intake / "ZA-DHA" / "traveller_flows"
    waiting = {p.name for p in intake.iterdir()}

    assert pull(load_config(demo_home.root), demo_home, "ZA-DHA").outcomes == []

    assert {p.name for p in intake.iterdir()} == waiting
    assert [(r["reason"], r["path"]) for r in refusals(demo_home)] == [("linked-folder", "exports")]
    code, out = check(demo_home, capsys)
    assert code == 1 and f"pull.folder: {demo_home.root / 'exports'} is a symbolic link (to {elsewhere})" in out


def test_a_linked_file_in_a_pull_folder_is_not_copied(demo_home, tmp_path):
    exports = tmp_path / "exports" / "ZA-DHA"
    old(exports / "traveller_flows" / "dha.csv", FLOWS)
    (exports / "traveller_flows" / "key.csv").symlink_to(demo_home.root / "keys" / "hub" / "ssh_ed25519")
    set_pull(demo_home, "ZA-DHA", {"folder": str(exports)})

    assert pull(load_config(demo_home.root), demo_home, "ZA-DHA").to_dict()["copied"] == ["dha.csv"]
    assert not (demo_home.intake / "ZA-DHA" / "traveller_flows" / "key.csv").exists()


def test_a_pull_into_a_linked_intake_folder_writes_nothing_behind_the_link(demo_home, tmp_path):
    exports = tmp_path / "exports" / "ZA-DHA"
    old(exports / "traveller_flows" / "dha.csv", FLOWS)
    set_pull(demo_home, "ZA-DHA", {"folder": str(exports)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dataset = demo_home.intake / "ZA-DHA" / "traveller_flows"
    shutil.rmtree(dataset)
    dataset.symlink_to(elsewhere)
    config = load_config(demo_home.root)

    assert [o.status for o in pull(config, demo_home, "ZA-DHA").outcomes] == ["refused"]
    assert list(elsewhere.iterdir()) == []
    assert [(r["reason"], r["path"]) for r in refusals(demo_home)] == [
        ("linked-folder", "intake/ZA-DHA/traveller_flows")]

    dataset.unlink()  # a real folder again: the extract is copied now
    assert pull(config, demo_home, "ZA-DHA").to_dict()["copied"] == ["dha.csv"]


# -- names that cannot be copied in --------------------------------------------------------------------------


@pytest.fixture
def s3_pull(demo_home, s3, bucket):
    """ZA-SARS exports to the hub's S3 endpoint, under exports/borderx/DATASET/NAME."""
    s3.create_bucket(Bucket=bucket)
    set_pull(demo_home, "ZA-SARS", {"s3": f"s3://{bucket}/exports/borderx"})
    return "exports/borderx/goods_crossings/"


def test_a_key_too_long_for_the_file_system_is_refused_once(demo_home, s3, bucket, s3_pull):
    too_long = "g" * 252 + ".csv"  # 256 bytes: one more than a file name may have
    s3.put_object(Bucket=bucket, Key=s3_pull + too_long, Body=b"declaration_ref\nT1\n")
    config = load_config(demo_home.root)

    assert [o.status for o in pull(config, demo_home, "ZA-SARS", s3).outcomes] == ["refused"]
    assert pull(config, demo_home, "ZA-SARS", s3).outcomes == [], "not tried again on the next sweep"

    [refused] = refusals(demo_home)
    assert refused["reason"] == "name-too-long" and refused["name_bytes"] == 256
    assert refused["source_uri"] == f"s3://{bucket}/{s3_pull}{too_long}"
    intake = demo_home.intake / "ZA-SARS" / "goods_crossings"
    assert not [p for p in intake.iterdir() if p.name.startswith(".")], "no temporary file left behind"


def test_a_name_at_the_limit_is_copied_whatever_its_temporary_name(demo_home, s3, bucket, s3_pull):
    longest = "g" * 251 + ".csv"  # 255 bytes: the old NAME.UUID.part temporary name could not exist
    s3.put_object(Bucket=bucket, Key=s3_pull + longest, Body=b"declaration_ref\nT1\n")

    outcome = pull(load_config(demo_home.root), demo_home, "ZA-SARS", s3)
    assert outcome.to_dict()["copied"] == [longest]
    assert (demo_home.intake / "ZA-SARS" / "goods_crossings" / longest).read_bytes() == b"declaration_ref\nT1\n"
    assert refusals(demo_home) == []


def test_a_folder_marker_key_is_no_file_and_no_retry(demo_home, s3, bucket, s3_pull):
    s3.put_object(Bucket=bucket, Key=s3_pull, Body=b"")  # what consoles create for "a new folder"
    config = load_config(demo_home.root)
    intake = demo_home.intake / "ZA-SARS" / "goods_crossings"
    before = snapshot(intake)

    assert pull(config, demo_home, "ZA-SARS", s3).outcomes == []
    assert pull(config, demo_home, "ZA-SARS", s3).outcomes == []
    assert snapshot(intake) == before


def test_the_s3_intake_route_refuses_a_long_key_once(demo_home, s3, sqs_bucket):
    from borderx.exchange import Runtime
    from borderx.intake.sources.s3_uploads import copy_object, waiting_objects

    bucket, prefix = sqs_bucket
    too_long = "g" * 300 + ".csv"
    s3.put_object(Bucket=bucket, Key=prefix + "goods_crossings/" + too_long, Body=b"declaration_ref\nT1\n")
    rt = Runtime.open(demo_home.root)

    [obj] = waiting_objects(rt)
    assert copy_object(rt, obj).status == "refused"
    assert waiting_objects(rt) == [] and copy_object(rt, obj).status == "seen"
    assert [r["reason"] for r in refusals(demo_home)] == ["name-too-long"]


@pytest.fixture
def sqs_bucket(demo_home, s3, bucket, s3_endpoint, monkeypatch):
    """ZA-SARS uploads to intake/ZA-SARS/DATASET/NAME in the hub's own bucket."""
    path = demo_home.config / "agencies" / "ZA-SARS.yaml"
    data = yaml.safe_load(path.read_text())
    data["intake"] = {"s3_prefix": "intake/ZA-SARS"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("BORDERX_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("BORDERX_BUCKET", bucket)
    s3.create_bucket(Bucket=bucket)
    return bucket, "intake/ZA-SARS/"


def test_receipts_beside_the_dataset_folders_are_never_taken(demo_home, s3_endpoint, bucket, capsys):
    empty_intake(demo_home)
    receipt = old(demo_home.intake / "ZA-DHA" / "receipts" / "traveller_flows" / "x.csv.receipt.json", b"{}\n")
    stray = old(demo_home.intake / "ZA-DHA" / "receipts" / "x.csv", FLOWS)
    before = snapshot(demo_home.intake / "ZA-DHA" / "receipts")

    assert run_once(demo_home, s3_endpoint, bucket) == 0
    assert snapshot(demo_home.intake / "ZA-DHA" / "receipts") == before and receipt.exists() and stray.exists()

    dataset = demo_home.config / "datasets" / "receipts.yaml"
    data = yaml.safe_load((demo_home.config / "datasets" / "traveller_flows.yaml").read_text())
    dataset.write_text(yaml.safe_dump({**data, "id": "receipts"}, sort_keys=False))
    code, out = check(demo_home, capsys)
    assert code == 1 and "datasets/receipts.yaml: id: 'receipts' is reserved" in out


# -- what the hub creates is private, whatever the umask -----------------------------------------------------


def modes_created(home, before: set[str], originals: set[str]) -> dict[str, str]:
    """{path: mode} of everything under the hub's folders that did not exist before, but the extracts the
    agencies dropped (moved, not created, by the hub)."""
    found = {}
    for name in ("intake", "quarantine", "archive", "state", "work"):
        for p in [home.root / name, *(home.root / name).rglob("*")]:
            if str(p) in before or p.name in originals:
                continue
            found[str(p.relative_to(home.root))] = oct(stat.S_IMODE(p.lstat().st_mode))
    return found


def test_everything_the_hub_creates_is_private_under_umask_000(umask_000, demo_home, s3_endpoint, bucket,
                                                               tmp_path):
    originals = {p.name for p in demo_home.intake.rglob("*") if p.is_file()}
    for name in ("quarantine", "archive", "state", "work"):
        shutil.rmtree(demo_home.root / name)
    exports = tmp_path / "exports" / "ZA-DHA"
    old(exports / "traveller_flows" / "pulled.csv", FLOWS)
    set_pull(demo_home, "ZA-DHA", {"folder": str(exports)})
    originals.add("pulled.csv")  # its copy in intake is the hub's, checked below before the run takes it
    before = {str(p) for p in demo_home.root.rglob("*")} | {str(demo_home.intake)}

    pull(load_config(demo_home.root), demo_home, "ZA-DHA")
    copied = demo_home.intake / "ZA-DHA" / "traveller_flows" / "pulled.csv"
    assert oct(stat.S_IMODE(copied.stat().st_mode)) == "0o600"
    run_once(demo_home, s3_endpoint, bucket)

    created = modes_created(demo_home, before, originals)
    assert any(p.startswith("quarantine/") and p.endswith(".report.json") for p in created)
    assert any(p.startswith("archive/") for p in created) and "state/ledger.sqlite" in created
    assert any(p.startswith("intake/") and ".inflight" in p for p in created)
    assert any("/receipts/" in p for p in created)

    def expected(p: str) -> str:
        # Receipts alone are opened, read-only, to the agency folder's group (see borderx.intake.receipts).
        shared = p.split("/")[2:3] == ["receipts"]
        return ("0o750" if shared else "0o700") if (demo_home.root / p).is_dir() else ("0o640" if shared else "0o600")

    wrong = {p: mode for p, mode in created.items() if mode != expected(p)}
    assert wrong == {}
