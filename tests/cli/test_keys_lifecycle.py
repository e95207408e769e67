"""Agency keys over their life: listed with their status, changed on the agency's signed request with an overlap
both identities can read."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
import yaml

from borderx import keys as keymod
from borderx.agency_keys import accept_request, make_request
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


def _request(home, agency: str, tmp_path, **asked):
    """A request signed by the agency's current key; the demo home holds it, as the demo plays every agency."""
    signer = sshsig.load_private_key((home.root / "keys" / agency / "ssh_ed25519").read_bytes())
    _, raw, signature = make_request(agency, signer, **asked)
    path = tmp_path / f"{agency}-request.json"
    path.write_bytes(raw)
    path.with_name(path.name + ".sig").write_text(signature)
    return path


def test_a_key_change_then_a_delivery_opens_with_the_old_and_the_new_identity(demo_home, s3_endpoint, bucket, s3,
                                                                             tmp_path, capsys):
    path = _agency_file(demo_home, "NA-MHAISS")
    before = yaml.safe_load(path.read_text())
    old_recipient, old_ssh = before["age_recipients"][0]["key"], before["signing_keys"][0]["key"]
    text = path.read_text().replace("kind: migration", "kind: migration  # receives flows and goods")
    path.write_text("# yaml-language-server: $schema=../schema/agency.schema.json\n# NA's keys\n" + text)

    # The agency makes its new keys on its own machine, and asks for them with its current key.
    new_dir = tmp_path / "agency-machine" / "new-keys"
    assert main(["keys", "generate", "NA-MHAISS", "--out", str(new_dir)]) == 0
    new_identity = new_dir / "age.key"
    new_recipient = age.parse_identities(new_identity.read_text())[0].recipient().string
    request = tmp_path / "agency-machine" / "request.json"
    assert main(["keys", "request", "NA-MHAISS", "--age-recipient", new_recipient, "--ssh-key",
                 str(new_dir / "ssh_ed25519.pub"), "--sign-with", str(demo_home.root / "keys" / "NA-MHAISS" / "ssh_ed25519"),
                 "--out", str(request)]) == 0
    capsys.readouterr()
    assert main(["keys", "accept", str(request), "--home", str(demo_home.root)]) == 0
    out = capsys.readouterr().out
    end = TODAY + dt.timedelta(days=30)
    assert f"added age key {new_recipient} valid from {TODAY}" in out
    assert f"key {old_recipient}: valid_to -> {end}" in out
    assert f"key {sshsig.fingerprint(old_ssh)}: valid_to -> {end}" in out
    assert "SECRET" not in out and "PRIVATE" not in out
    for name in ("age.key", "ssh_ed25519"):
        assert (new_dir / name).stat().st_mode & 0o777 == 0o600

    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/agency.schema.json\n# NA's keys\n")
    assert "# receives flows and goods" in text
    after = yaml.safe_load(text)
    assert list(after) == list(before), "the fields keep their order"
    assert after["age_recipients"] == [
        {"key": old_recipient, "valid_from": before["age_recipients"][0]["valid_from"], "valid_to": end},
        {"key": new_recipient, "valid_from": TODAY},
    ]
    new_ssh = (new_dir / "ssh_ed25519.pub").read_text().strip()
    assert sshsig.fingerprint(after["signing_keys"][1]["key"]) == sshsig.fingerprint(new_ssh)
    assert after["signing_keys"][1]["valid_from"] == TODAY
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
    # The key change, recorded before the run, is anchored with it.
    assert main(["audit", "verify", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint,
                 "--bucket", bucket]) == 0


def test_a_key_change_leaves_other_keys_alone(demo_home, tmp_path):
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

    new = _age_key()
    acceptance = accept_request(demo_home, _request(demo_home, "BW-BURS", tmp_path, age_recipients=[new],
                                                    overlap_days=14))
    by_key = {k["key"]: k for k in yaml.safe_load(path.read_text())["age_recipients"]}
    assert by_key[agency["age_recipients"][0]["key"]]["valid_to"] == TODAY + dt.timedelta(days=14)
    assert by_key[ending]["valid_to"] == soon, "an earlier end is never pushed back"
    assert by_key[revoked] == {"key": revoked, "valid_from": TODAY - dt.timedelta(days=10), "revoked": True}
    assert by_key[expired]["valid_to"] == dt.date(2021, 1, 1)
    assert "valid_to" not in by_key[pq], "a hybrid key is not replaced by the new classic one"
    assert by_key[new] == {"key": new, "valid_from": TODAY}
    assert list(acceptance.changes.ended) == [agency["age_recipients"][0]["key"]]
    signing = yaml.safe_load(path.read_text())["signing_keys"]
    assert len(signing) == 1 and "valid_to" not in signing[0], "no new ssh key, so the current one does not end"
    assert not acceptance.comments_dropped


def test_accept_refuses_what_it_cannot_do_and_changes_nothing(demo_home, tmp_path, capsys):
    path = _agency_file(demo_home, "ZA-DHA")
    original = path.read_text()
    home = ["--home", str(demo_home.root)]
    request = _request(demo_home, "ZA-DHA", tmp_path, age_recipients=[_age_key()])
    other = demo_home.root.parent / "other-home"
    (other / "config" / "agencies").mkdir(parents=True)
    assert main(["keys", "accept", str(request), "--home", str(other)]) == 1
    assert "no agency ZA-DHA" in capsys.readouterr().err

    agency_side = tmp_path / "agency"
    taken = agency_side / "request.json"
    taken.parent.mkdir()
    taken.write_text("keep me")
    signer = str(demo_home.root / "keys" / "ZA-DHA" / "ssh_ed25519")
    assert main(["keys", "request", "ZA-DHA", "--age-recipient", _age_key(), "--sign-with", signer,
                 "--out", str(taken)]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert taken.read_text() == "keep me" and not (agency_side / "request.json.sig").exists()

    with pytest.raises(SystemExit) as exited:
        main(["keys", "request", "ZA-DHA", "--age-recipient", _age_key(), "--sign-with", signer,
              "--out", str(agency_side / "b.json"), "--overlap-days", "-1"])
    assert exited.value.code == 2
    assert path.read_text() == original
    assert main(["keys", "accept", str(request), *home]) == 0
