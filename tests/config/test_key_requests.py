"""An agency changes its own keys: a request signed by its current key, made on its machine, accepted by the hub.

Keys are made with ssh-keygen and age-keygen, requests with `borderx keys request`, checked with `ssh-keygen -Y
verify`, and accepted with `borderx keys accept` on a demo home; every refusal leaves the config as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from borderx.agency_keys import accept_request, make_request
from borderx.agency_keys.accept import STATE_FILE
from borderx.agency_keys.agency_file import KeyChanges, edit_text
from borderx.agency_keys.request import MAX_REQUEST_BYTES, NAMESPACE
from borderx.audit.events import SCHEMA_FILE
from borderx.audit.trail import AuditTrail
from borderx.cli import main
from borderx.config.loader import check_config, load_agency_files
from borderx.crypto import sshsig

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date.today()
PRIVATE_MARKERS = (b"PRIVATE KEY", b"AGE-SECRET-KEY")


def ssh_keygen(path: Path, comment: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def age_keygen(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def current_key(home, agency: str) -> Path:
    """The demo plays every agency, so their current private keys are in the demo home's keys/ folder."""
    return home.root / "keys" / agency / "ssh_ed25519"


def agency_file(home, agency: str) -> Path:
    return home.config / "agencies" / f"{agency}.yaml"


def fingerprint_of(private: Path) -> str:
    return sshsig.fingerprint(Path(f"{private}.pub").read_text())


def files_with_private_keys(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")
            if p.is_file() and any(m in p.read_bytes() for m in PRIVATE_MARKERS)}


def request(tmp_path: Path, agency: str, sign_with: Path, *extra: str, name: str = "request.json") -> Path:
    out = tmp_path / "agency" / name
    assert main(["keys", "request", agency, "--sign-with", str(sign_with), "--out", str(out), *extra]) == 0
    return out


def accept(home, req: Path) -> int:
    return main(["keys", "accept", str(req), "--home", str(home.root)])


def edit_agency(home, agency: str, edit) -> None:
    path = agency_file(home, agency)
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_request_made_by_the_cli_is_accepted_by_the_cli(demo_home, tmp_path, capsys):
    path = agency_file(demo_home, "NA-MHAISS")
    path.write_text("# NA-MHAISS: public keys only\n" + path.read_text().replace(
        "kind: migration", "kind: migration  # receives flows and goods"))
    before = yaml.safe_load(path.read_text())
    private_before = files_with_private_keys(demo_home.root)
    new_ssh = ssh_keygen(tmp_path / "agency" / "new" / "id_ed25519", "NA-MHAISS 2027")
    new_age = age_keygen(tmp_path / "agency" / "new" / "age.key")
    signer = current_key(demo_home, "NA-MHAISS")

    req = request(tmp_path, "NA-MHAISS", signer, "--age-recipient", new_age, "--ssh-key", f"{new_ssh}.pub",
                  "--overlap-days", "21")
    out = capsys.readouterr().out
    assert fingerprint_of(signer) in out and "PRIVATE" not in out
    doc = json.loads(req.read_text())
    assert doc["agency"] == "NA-MHAISS" and doc["age_recipients"] == [new_age]
    assert not any(m.decode() in req.read_text() for m in PRIVATE_MARKERS)

    # Standard tools check the request the same way the hub does, and tell a wrong namespace apart.
    signers = tmp_path / "allowed_signers"
    signers.write_text(sshsig.allowed_signers_line("NA-MHAISS", Path(f"{signer}.pub").read_text(), NAMESPACE) + "\n")
    verify = ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "NA-MHAISS", "-s", f"{req}.sig"]
    assert subprocess.run([*verify, "-n", NAMESPACE], input=req.read_bytes(), capture_output=True).returncode == 0
    assert subprocess.run([*verify, "-n", "borderx-manifest"], input=req.read_bytes(),
                          capture_output=True).returncode != 0

    assert accept(demo_home, req) == 0
    out = capsys.readouterr().out
    assert f"added ssh key {fingerprint_of(new_ssh)}" in out and f"added age key {new_age}" in out

    text = path.read_text()
    assert text.startswith("# NA-MHAISS: public keys only\n") and "# receives flows and goods" in text
    assert "&id" not in text and "*id" not in text, "no YAML anchors in a file people edit"
    after = yaml.safe_load(text)
    assert list(after) == list(before)
    end = TODAY + dt.timedelta(days=21)
    assert after["age_recipients"] == [{**before["age_recipients"][0], "valid_to": end},
                                       {"key": new_age, "valid_from": TODAY}]
    assert after["signing_keys"][0] == {**before["signing_keys"][0], "valid_to": end}
    assert sshsig.fingerprint(after["signing_keys"][1]["key"]) == fingerprint_of(new_ssh)
    assert after["signing_keys"][1]["valid_from"] == TODAY
    agency = load_agency_files(demo_home.root)["NA-MHAISS"][1]
    assert [k.key for k in agency.usable_age_keys(end + dt.timedelta(days=1))] == [new_age]
    assert check_config(demo_home.root) == []

    event = list(AuditTrail(demo_home.audit).events())[-1]
    assert event["type"] == "keys-changed" and event["actor"] == {"hub": True, "via": "borderx keys accept"}
    assert event["details"]["agency"] == "NA-MHAISS" and event["details"]["request_id"] == doc["request_id"]
    assert event["details"]["signed_by"] == fingerprint_of(signer)
    assert event["details"]["added"] == [new_age, fingerprint_of(new_ssh)]
    assert event["details"]["ended"] == {before["age_recipients"][0]["key"]: end.isoformat(),
                                         sshsig.fingerprint(before["signing_keys"][0]["key"]): end.isoformat()}
    schema = json.loads((REPO / "docs" / "events" / SCHEMA_FILE).read_text())
    jsonschema.validate(event, schema)

    # The new key, valid now, signs the next change; nothing the hub wrote holds a private key.
    req2 = request(tmp_path, "NA-MHAISS", new_ssh, "--revoke", str(signer.with_suffix(".pub").read_text()),
                   name="second.json")
    assert accept(demo_home, req2) == 0
    revoked = yaml.safe_load(path.read_text())["signing_keys"][0]
    assert revoked["revoked"] is True and revoked["key"] == before["signing_keys"][0]["key"]
    assert check_config(demo_home.root) == []
    assert files_with_private_keys(demo_home.root) == private_before
    assert all(p.parts[0] == "keys" for p in private_before), "only the demo's stand-in agencies hold keys"


def _refused(demo_home, req: Path, capsys, *expected: str) -> str:
    files = {p: p.read_bytes() for p in (demo_home.config / "agencies").iterdir()}
    events = list(AuditTrail(demo_home.audit).events())
    assert accept(demo_home, req) == 1
    err = capsys.readouterr().err
    for words in expected:
        assert words in err, err
    assert "refused" in err
    assert {p: p.read_bytes() for p in (demo_home.config / "agencies").iterdir()} == files
    assert list(AuditTrail(demo_home.audit).events()) == events
    return err


def test_a_revoked_signing_key_is_refused(demo_home, tmp_path, capsys):
    edit_agency(demo_home, "ZA-DHA", lambda d: d["signing_keys"][0].update(revoked=True))
    signer = current_key(demo_home, "ZA-DHA")
    req = request(tmp_path, "ZA-DHA", signer, "--ssh-key", f"{ssh_keygen(tmp_path / 'n', 'ZA-DHA')}.pub")
    _refused(demo_home, req, capsys, "ZA-DHA", fingerprint_of(signer), "revoked")


def test_an_expired_or_not_yet_valid_signing_key_is_refused(demo_home, tmp_path, capsys):
    signer = current_key(demo_home, "ZA-DHA")
    new = f"{ssh_keygen(tmp_path / 'n', 'ZA-DHA')}.pub"
    edit_agency(demo_home, "ZA-DHA", lambda d: d["signing_keys"][0].update(valid_to=TODAY - dt.timedelta(days=1)))
    req = request(tmp_path, "ZA-DHA", signer, "--ssh-key", new)
    _refused(demo_home, req, capsys, "ZA-DHA", fingerprint_of(signer), f"expired on {TODAY - dt.timedelta(days=1)}")
    edit_agency(demo_home, "ZA-DHA", lambda d: d["signing_keys"][0].update(
        valid_from=TODAY + dt.timedelta(days=3), valid_to=None))
    _refused(demo_home, req, capsys, fingerprint_of(signer), f"valid only from {TODAY + dt.timedelta(days=3)}")


def test_another_agencys_key_is_refused(demo_home, tmp_path, capsys):
    other = current_key(demo_home, "ZA-SARS")
    req = request(tmp_path, "NA-MHAISS", other, "--age-recipient", age_keygen(tmp_path / "a.key"))
    _refused(demo_home, req, capsys, "NA-MHAISS", fingerprint_of(other), "a key of ZA-SARS, not of NA-MHAISS")

    # Naming the right agency's key while signing with another's does not help either.
    raw = json.loads(req.read_text())
    raw["signed_by"] = " ".join(Path(f"{current_key(demo_home, 'NA-MHAISS')}.pub").read_text().split()[:2])
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(raw))
    subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", NAMESPACE, "-f", str(other), str(forged)], check=True)
    _refused(demo_home, forged, capsys, "NA-MHAISS", "does not verify")

    stranger = ssh_keygen(tmp_path / "stranger", "nobody")
    req = request(tmp_path, "NA-MHAISS", stranger, "--age-recipient", age_keygen(tmp_path / "b.key"), name="s.json")
    _refused(demo_home, req, capsys, fingerprint_of(stranger), "not a signing key of NA-MHAISS")


def test_a_replayed_request_is_refused(demo_home, tmp_path, capsys):
    req = request(tmp_path, "BW-DIC", current_key(demo_home, "BW-DIC"), "--age-recipient",
                  age_keygen(tmp_path / "a.key"))
    assert accept(demo_home, req) == 0
    capsys.readouterr()
    request_id = json.loads(req.read_text())["request_id"]
    assert request_id in json.loads((demo_home.state / STATE_FILE).read_text())
    _refused(demo_home, req, capsys, f"request {request_id} was already accepted")


def test_a_tampered_request_is_refused_here_and_by_ssh_keygen(demo_home, tmp_path, capsys):
    signer = current_key(demo_home, "BW-DIC")
    req = request(tmp_path, "BW-DIC", signer, "--age-recipient", age_keygen(tmp_path / "a.key"))
    doc = json.loads(req.read_text())
    doc["age_recipients"] = [age_keygen(tmp_path / "attacker.key")]
    req.write_text(json.dumps(doc, indent=2) + "\n")
    _refused(demo_home, req, capsys, "BW-DIC", fingerprint_of(signer), "does not verify")
    signers = tmp_path / "allowed_signers"
    signers.write_text(sshsig.allowed_signers_line("BW-DIC", Path(f"{signer}.pub").read_text(), NAMESPACE) + "\n")
    checked = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "BW-DIC", "-n", NAMESPACE,
                              "-s", f"{req}.sig"], input=req.read_bytes(), capture_output=True)
    assert checked.returncode != 0


def test_an_oversized_or_malformed_request_is_refused(demo_home, tmp_path, capsys):
    signer = current_key(demo_home, "BW-DIC")
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * MAX_REQUEST_BYTES + b"}")
    subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", NAMESPACE, "-f", str(signer), str(big)], check=True)
    _refused_early(demo_home, big, capsys, f"larger than {MAX_REQUEST_BYTES} bytes")

    for name, body in (("text.json", b"please add my key\n"), ("list.json", b"[1, 2]"),
                       ("fields.json", json.dumps({"agency": "BW-DIC"}).encode())):
        bad = tmp_path / name
        bad.write_bytes(body)
        subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", NAMESPACE, "-f", str(signer), str(bad)], check=True)
        _refused_early(demo_home, bad, capsys, "not a valid key request")

    unsigned = request(tmp_path, "BW-DIC", signer, "--age-recipient", age_keygen(tmp_path / "a.key"))
    Path(f"{unsigned}.sig").unlink()
    _refused_early(demo_home, unsigned, capsys, "cannot be read")

    # Signed by the agency's own valid key, and still not something the hub writes into its config.
    good = json.loads(unsigned.read_text())
    new_key = Path(f"{ssh_keygen(tmp_path / 'n', 'BW-DIC')}.pub").read_text().split()
    text = json.dumps(good)
    for name, body, expected in (
        ("comment.json", json.dumps({**good, "signing_keys": [f"{new_key[0]} {new_key[1]} x\nrevoked: true"]}),
         "signing_keys.0"),
        ("twice.json", text[:-1] + ', "agency": "NA-MHAISS"}', "each field once"),
        ("upper.json", json.dumps({**good, "age_recipients": [good["age_recipients"][0].upper()]}), "age_recipients.0"),
        ("long.json", json.dumps({**good, "expires": "2099-01-01T00:00:00Z"}), "expires"),
    ):
        bad = tmp_path / name
        bad.write_text(body)
        subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", NAMESPACE, "-f", str(signer), str(bad)], check=True)
        _refused_early(demo_home, bad, capsys, expected)
    assert not (demo_home.state / STATE_FILE).exists()


def _refused_early(demo_home, req: Path, capsys, expected: str) -> None:
    before = {p: p.read_bytes() for p in (demo_home.config / "agencies").iterdir()}
    assert accept(demo_home, req) == 1
    err = capsys.readouterr().err
    assert str(req) in err and expected in err, err
    assert {p: p.read_bytes() for p in (demo_home.config / "agencies").iterdir()} == before


def test_an_expired_request_or_one_from_the_future_is_refused(demo_home, tmp_path):
    from borderx.errors import KeyRequestError

    signer = sshsig.load_private_key(current_key(demo_home, "ZA-SARS").read_bytes())
    made = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    _, raw, sig = make_request("ZA-SARS", signer, revoke=[], age_recipients=[age_keygen(tmp_path / "a.key")],
                               expires_in_days=7, now=made)
    req = tmp_path / "req.json"
    req.write_bytes(raw)
    Path(f"{req}.sig").write_text(sig)
    with pytest.raises(KeyRequestError, match="the request expired at 2026-03-08T12:00:00Z"):
        accept_request(demo_home, req, now=made + dt.timedelta(days=7, seconds=1))
    with pytest.raises(KeyRequestError, match="ahead of the hub's clock"):
        accept_request(demo_home, req, now=made - dt.timedelta(hours=1))
    assert accept_request(demo_home, req, now=made + dt.timedelta(days=6)).request.agency == "ZA-SARS"


def test_an_agency_revokes_its_own_key_but_keeps_one_to_sign_with(demo_home, tmp_path, capsys):
    signer = current_key(demo_home, "ZA-SARS")
    spare = ssh_keygen(tmp_path / "spare", "ZA-SARS spare")
    # First enrolment of a second key is by hand, as the README says.
    edit_agency(demo_home, "ZA-SARS", lambda d: d["signing_keys"].append(
        {"key": Path(f"{spare}.pub").read_text().strip(), "valid_from": TODAY}))

    alone = request(tmp_path, "ZA-SARS", signer, "--revoke", fingerprint_of(signer), "--revoke", fingerprint_of(spare))
    _refused(demo_home, alone, capsys, "without a valid ssh key", "--ssh-key")
    unknown = request(tmp_path, "ZA-SARS", signer, "--revoke", fingerprint_of(current_key(demo_home, "ZA-DHA")),
                      name="unknown.json")
    _refused(demo_home, unknown, capsys, "is not a key of ZA-SARS")

    own = request(tmp_path, "ZA-SARS", spare, "--revoke", fingerprint_of(signer), name="own.json")
    assert accept(demo_home, own) == 0
    keys = {sshsig.fingerprint(k["key"]): k for k in yaml.safe_load(agency_file(demo_home, "ZA-SARS").read_text())
            ["signing_keys"]}
    assert keys[fingerprint_of(signer)].get("revoked") is True and "revoked" not in keys[fingerprint_of(spare)]
    assert "valid_to" not in keys[fingerprint_of(spare)], "revoking alone ends no other key"
    capsys.readouterr()
    late = request(tmp_path, "ZA-SARS", signer, "--age-recipient", age_keygen(tmp_path / "a.key"), name="late.json")
    _refused(demo_home, late, capsys, fingerprint_of(signer), "revoked")


def test_keys_already_held_are_not_added_twice(demo_home, tmp_path, capsys):
    taken = Path(f"{current_key(demo_home, 'BW-BURS')}.pub").read_text().strip()
    req = request(tmp_path, "NA-MHAISS", current_key(demo_home, "NA-MHAISS"), "--ssh-key", taken)
    _refused(demo_home, req, capsys, f"{sshsig.fingerprint(taken)} is already a key of BW-BURS")


def test_the_agency_side_refuses_what_it_should_not_send(demo_home, tmp_path, capsys):
    signer = current_key(demo_home, "NA-MHAISS")
    out = tmp_path / "r.json"
    base = ["keys", "request", "NA-MHAISS", "--sign-with", str(signer), "--out", str(out)]
    assert main([*base, "--ssh-key", str(signer)]) == 1
    assert "holds a private key" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--sign-with", str(tmp_path / "nowhere"), "--age-recipient", age_keygen(tmp_path / "a.key")]) == 1
    assert "--sign-with" in capsys.readouterr().err and not out.exists()
    assert main(base) == 1
    assert "asks for nothing" in capsys.readouterr().err
    assert main([*base, "--age-recipient", "age1notakey"]) == 1
    assert "age_recipients.0" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as exited:
        main([*base, "--revoke", fingerprint_of(signer), "--overlap-days", "-1"])
    assert exited.value.code == 2


def test_without_ruamel_the_file_is_rewritten_and_still_loads(demo_home):
    path = agency_file(demo_home, "NA-MHAISS")
    path.write_text("# header kept\n" + path.read_text().replace("kind: migration", "kind: migration  # dropped"))
    old = yaml.safe_load(path.read_text())["signing_keys"][0]["key"]
    changes = KeyChanges(ended={sshsig.fingerprint(old): TODAY})
    changes.added["ssh"].append({"key": sshsig.generate_ed25519_keypair("x")[1], "valid_from": TODAY})
    text, dropped = edit_text(path.read_text(), changes, keep_comments=False)
    assert dropped and text.startswith("# header kept\n") and "# dropped" not in text and "&id" not in text
    path.write_text(text)
    assert [k.valid_to for k in load_agency_files(demo_home.root)["NA-MHAISS"][1].signing_keys] == [TODAY, None]


def test_keys_rotate_is_gone(demo_home, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["keys", "rotate", "NA-MHAISS", "--out", str(tmp_path / "k"), "--home", str(demo_home.root)])
    assert exited.value.code == 2
    assert not (tmp_path / "k").exists()


def test_a_request_signed_with_ssh_keygen_itself_is_accepted(demo_home, tmp_path, capsys):
    # A key with a passphrase, in ssh-agent or on a token: borderx writes the request, ssh-keygen signs it.
    signer = current_key(demo_home, "BW-BURS")
    out = tmp_path / "agency" / "req.json"
    new_age = age_keygen(tmp_path / "a.key")
    assert main(["keys", "request", "BW-BURS", "--age-recipient", new_age, "--sign-with", f"{signer}.pub",
                 "--out", str(out)]) == 0
    assert f"ssh-keygen -Y sign -n {NAMESPACE}" in capsys.readouterr().out
    assert out.exists() and not Path(f"{out}.sig").exists()
    _refused_early(demo_home, out, capsys, "cannot be read")
    subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", NAMESPACE, "-f", str(signer), str(out)], check=True)
    assert accept(demo_home, out) == 0
    assert new_age in agency_file(demo_home, "BW-BURS").read_text()
