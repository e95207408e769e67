"""Agency keys over their life: listed with their status, rotated with an overlap both identities can read."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
import yaml

from borderx import keys as keymod
from borderx.cli import main
from borderx.config.loader import check_config, load_config
from borderx.crypto import age, sshsig
from borderx.exchange import Runtime, run_once

TODAY = dt.date.today()


def _agency_file(home, agency: str):
    return home.config / "agencies" / f"{agency}.yaml"


def _age_key() -> str:
    return age.generate_x25519_identity()[1]


def _ssh_key(comment: str) -> str:
    return sshsig.generate_ed25519_keypair(comment)[1]


def test_keys_list_shows_every_key_with_its_status(demo_home, capsys):
    path = _agency_file(demo_home, "NA-MHAISS")
    agency = yaml.safe_load(path.read_text())
    current = agency["age_recipients"][0]["key"]
    keys = {
        "expiring": {"key": _age_key(), "valid_from": TODAY - dt.timedelta(days=300), "valid_to": TODAY + dt.timedelta(days=10)},
        "last day": {"key": _age_key(), "valid_from": TODAY - dt.timedelta(days=300), "valid_to": TODAY},
        "edge": {"key": _age_key(), "valid_from": TODAY, "valid_to": TODAY + dt.timedelta(days=30)},
        "beyond": {"key": _age_key(), "valid_from": TODAY, "valid_to": TODAY + dt.timedelta(days=31)},
        "expired": {"key": _age_key(), "valid_from": TODAY - dt.timedelta(days=300), "valid_to": TODAY - dt.timedelta(days=1)},
        "not yet": {"key": _age_key(), "valid_from": TODAY + dt.timedelta(days=5)},
        "revoked": {"key": _age_key(), "valid_from": TODAY - dt.timedelta(days=300), "revoked": True},
    }
    agency["age_recipients"] += list(keys.values())
    old_ssh = _ssh_key("NA-MHAISS")
    agency["signing_keys"].append({"key": old_ssh, "valid_from": dt.date(2020, 1, 1), "valid_to": dt.date(2021, 1, 1)})
    path.write_text(yaml.safe_dump(agency, sort_keys=False))

    rows = {r.key: r for r in keymod.list_keys(demo_home.root, TODAY) if r.agency == "NA-MHAISS"}
    assert rows[current].status == "current"
    expected = {"expiring": "expiring", "last day": "expiring", "edge": "expiring", "beyond": "current",
                "expired": "expired", "not yet": "not yet valid", "revoked": "revoked"}
    for name, status in expected.items():
        assert rows[keys[name]["key"]].status == status, name
    assert rows[keys["expiring"]["key"]].days_left == 10
    assert rows[old_ssh].status == "expired" and rows[old_ssh].kind == "ssh"

    assert main(["keys", "list", "--home", str(demo_home.root)]) == 0
    out = capsys.readouterr().out
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["AGENCY", "KIND", "KEY"] and "STATUS" in header
    mine = [line for line in lines if line.startswith("NA-MHAISS")]
    assert len(mine) == 1 + len(keys) + 2
    assert any("expiring (10 days left)" in line for line in mine)
    assert any(sshsig.fingerprint(old_ssh) in line and line.rstrip().endswith("expired") for line in mine)
    assert any("not yet valid" in line for line in mine) and any(" yes " in line and "revoked" in line for line in mine)
    assert {line.split()[0] for line in lines} == {"BW-BURS", "BW-DIC", "NA-MHAISS", "ZA-DHA", "ZA-SARS"}
    assert "SECRET" not in out


def test_keys_list_works_when_keys_ran_out(demo_home, capsys):
    path = _agency_file(demo_home, "ZA-SARS")
    agency = yaml.safe_load(path.read_text())
    agency["age_recipients"][0]["valid_to"] = TODAY - dt.timedelta(days=1)
    path.write_text(yaml.safe_dump(agency, sort_keys=False))
    assert any("no valid age key" in str(p) for p in check_config(demo_home.root))
    assert main(["keys", "list", "--home", str(demo_home.root)]) == 0
    za_sars = [line for line in capsys.readouterr().out.splitlines() if line.split()[:2] == ["ZA-SARS", "age"]]
    assert za_sars and za_sars[0].rstrip().endswith("expired")


def test_rotate_then_a_delivery_opens_with_the_old_and_the_new_identity(demo_home, s3_endpoint, bucket, s3, tmp_path,
                                                                        capsys):
    path = _agency_file(demo_home, "NA-MHAISS")
    before = yaml.safe_load(path.read_text())
    old_recipient, old_ssh = before["age_recipients"][0]["key"], before["signing_keys"][0]["key"]
    text = path.read_text().replace("kind: migration", "kind: migration  # receives flows and goods")
    path.write_text("# yaml-language-server: $schema=../schema/agency.schema.json\n# NA's keys\n" + text)

    new_dir = tmp_path / "new-keys"
    assert main(["keys", "rotate", "NA-MHAISS", "--out", str(new_dir), "--home", str(demo_home.root)]) == 0
    out = capsys.readouterr().out
    end = TODAY + dt.timedelta(days=30)
    new_identity = new_dir / "age.key"
    new_recipient = age.parse_identities(new_identity.read_text())[0].recipient().string
    assert f"added age key {new_recipient} valid from {TODAY}" in out
    assert f"age key {old_recipient}: valid_to (none) -> {end}" in out
    assert f"ssh key {sshsig.fingerprint(old_ssh)}: valid_to (none) -> {end}" in out
    assert "comments inside the file were not kept" in out
    assert "SECRET" not in out and "PRIVATE" not in out
    for name in ("age.key", "ssh_ed25519"):
        assert (new_dir / name).stat().st_mode & 0o777 == 0o600

    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/agency.schema.json\n# NA's keys\n")
    after = yaml.safe_load(text)
    assert list(after) == list(before), "the fields keep their order"
    assert after["age_recipients"] == [
        {"key": old_recipient, "valid_from": before["age_recipients"][0]["valid_from"], "valid_to": end},
        {"key": new_recipient, "valid_from": TODAY},
    ]
    assert after["signing_keys"][1] == {"key": (new_dir / "ssh_ed25519.pub").read_text().strip(), "valid_from": TODAY}
    assert after["signing_keys"][0]["valid_to"] == end
    assert check_config(demo_home.root) == []
    statuses = {r.key: r.status for r in keymod.list_keys(demo_home.root, TODAY)}
    assert statuses[old_recipient] == "expiring" and statuses[new_recipient] == "current"
    later = load_config(demo_home.root).agencies["NA-MHAISS"]
    assert [k.key for k in later.usable_age_keys(end + dt.timedelta(days=1))] == [new_recipient]

    # During the overlap the exchange encrypts to both keys.
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    summary = run_once(rt, settle_seconds=0)
    mine = [d for d in summary.published if d["recipient"] == "NA-MHAISS"]
    assert len(mine) == 3
    fetched = {}
    for name, identity in (("old", demo_home.root / "keys" / "NA-MHAISS" / "age.key"), ("new", new_identity)):
        inbox = tmp_path / f"inbox-{name}"
        assert main(["fetch", "--recipient", "NA-MHAISS", "--identity", str(identity), "--out", str(inbox),
                     "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket]) == 0
        fetched[name] = {p.relative_to(inbox): p.read_bytes() for p in inbox.rglob("data.csv")}
    assert len(fetched["new"]) == 3 and fetched["new"] == fetched["old"]
    for manifest in (tmp_path / "inbox-new").rglob("manifest.json"):
        assert set(json.loads(manifest.read_text())["keys"]["recipients"]) == {old_recipient, new_recipient}
    # And stock age agrees.
    key = next(k["Key"] for k in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/DSA-2026-003/NA-MHAISS/")["Contents"]
               if k["Key"].endswith(".age"))
    plain = subprocess.run(["age", "-d", "-i", str(new_identity)], input=s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
                           capture_output=True, check=True).stdout
    assert plain in fetched["new"].values()


def test_rotate_leaves_other_keys_alone(demo_home, tmp_path):
    path = _agency_file(demo_home, "BW-BURS")
    agency = yaml.safe_load(path.read_text())
    soon = TODAY + dt.timedelta(days=5)
    pq = age.generate_hybrid_identity()[1]
    agency["age_recipients"] += [
        {"key": (ending := _age_key()), "valid_from": TODAY - dt.timedelta(days=10), "valid_to": soon},
        {"key": (revoked := _age_key()), "valid_from": TODAY - dt.timedelta(days=10), "revoked": True},
        {"key": (expired := _age_key()), "valid_from": dt.date(2020, 1, 1), "valid_to": dt.date(2021, 1, 1)},
        {"key": pq, "valid_from": TODAY - dt.timedelta(days=10)},
    ]
    path.write_text(yaml.safe_dump(agency, sort_keys=False))

    rotation = keymod.rotate_keys(demo_home.root, "BW-BURS", tmp_path / "k", overlap_days=14)
    by_key = {k["key"]: k for k in yaml.safe_load(path.read_text())["age_recipients"]}
    assert by_key[agency["age_recipients"][0]["key"]]["valid_to"] == TODAY + dt.timedelta(days=14)
    assert by_key[ending]["valid_to"] == soon, "an earlier end is never pushed back"
    assert by_key[revoked] == {"key": revoked, "valid_from": TODAY - dt.timedelta(days=10), "revoked": True}
    assert by_key[expired]["valid_to"] == dt.date(2021, 1, 1)
    assert "valid_to" not in by_key[pq], "a hybrid key is not replaced by the new classic one"
    assert [e[1] for e in rotation.ended if e[0] == "age"] == [agency["age_recipients"][0]["key"]]
    assert not rotation.comments_dropped


def test_rotate_refuses_what_it_cannot_do_and_changes_nothing(demo_home, tmp_path, capsys):
    path = _agency_file(demo_home, "ZA-DHA")
    original = path.read_text()
    home = ["--home", str(demo_home.root)]
    assert main(["keys", "rotate", "XX-NOPE", "--out", str(tmp_path / "a"), *home]) == 1
    assert "no agency XX-NOPE" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "age.key").write_text("keep me")
    assert main(["keys", "rotate", "ZA-DHA", "--out", str(taken), *home]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert path.read_text() == original and (taken / "age.key").read_text() == "keep me"

    with pytest.raises(SystemExit) as exited:
        main(["keys", "rotate", "ZA-DHA", "--out", str(tmp_path / "b"), "--overlap-days", "-1", *home])
    assert exited.value.code == 2
    assert path.read_text() == original
