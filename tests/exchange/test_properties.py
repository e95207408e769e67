"""Property-based tests and fuzzing of every parser that reads untrusted bytes: each either succeeds or fails
with its own clean error, never with a crash."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from borderx.delivery import manifest as mf
from borderx.audit.trail import AuditTrail
from borderx.config.loader import check_config
from borderx.crypto import age, sshsig
from borderx.validation import validate_extract

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30),
                         st.dates())
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


@pytest.fixture(scope="module")
def config_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("cfg")
    shutil.copytree(REPO / "config", root / "config")
    shutil.copytree(REPO / "expectations", root / "expectations")
    return root


@FUZZ
@given(field=st.sampled_from(["id", "name", "country", "kind", "age_recipients", "signing_keys", "intake", "extra"]),
       value=yaml_values)
def test_config_loader_reports_any_agency_value_as_a_problem_or_accepts_it(config_home, field, value):
    path = config_home / "config" / "agencies" / "ZA-DHA.yaml"
    original = path.read_text()
    try:
        data = yaml.safe_load(original)
        data[field] = value
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        problems = check_config(config_home, today=dt.date(2026, 11, 28))
        assert all(str(p).count(": ") >= 2 for p in problems)
    finally:
        path.write_text(original)


@FUZZ
@given(text=st.text(max_size=300))
def test_config_loader_survives_any_file_content(config_home, text):
    path = config_home / "config" / "agreements" / "DSA-2026-001.yaml"
    original = path.read_text()
    try:
        path.write_text(text)
        problems = check_config(config_home, today=dt.date(2026, 11, 28))
        assert isinstance(problems, list)
    finally:
        path.write_text(original)


@pytest.fixture(scope="module")
def trail_bytes(tmp_path_factory):
    trail = AuditTrail(tmp_path_factory.mktemp("audit"))
    for i in range(6):
        trail.append("received", provider="ZA-DHA", source_sha256=f"{i:064x}", size=i * 10)
    return trail.path.read_bytes()


@FUZZ
@given(data=st.data())
def test_any_changed_byte_of_the_audit_trail_is_caught(tmp_path_factory, trail_bytes, data):
    position = data.draw(st.integers(0, len(trail_bytes) - 1))
    replacement = data.draw(st.integers(0, 255))
    assume(trail_bytes[position] != replacement)
    mutated = bytearray(trail_bytes)
    mutated[position] = replacement
    trail = AuditTrail(tmp_path_factory.mktemp("mutated"))
    trail.path.write_bytes(bytes(mutated))
    try:
        # The trail is read line by line on "\n" alone, as the hub writes it.
        parsed_same = [json.loads(line) for line in bytes(mutated).decode().split("\n") if line.strip()] == [
            json.loads(line) for line in trail_bytes.decode().split("\n") if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        parsed_same = False
    try:
        count, broken = trail.verify()
    except UnicodeDecodeError:
        return  # not text at all: the trail is plainly damaged
    assert (broken is None) == parsed_same


@FUZZ
@given(rows=st.integers(0, 10**9), columns=st.lists(st.text(min_size=1, max_size=20), max_size=5),
       name=st.text(max_size=40), suppressed=st.integers(0, 1000))
def test_manifest_encodes_to_json_that_reads_back_the_same(rows, columns, name, suppressed):
    location = mf.DeliveryLocation("DSA-1", "ZA-SARS", "traveller_flows", "2026-11-28", "a" * 32)
    manifest = mf.build_manifest(
        location=location, provider="ZA-DHA", schema_version="1", rows=rows, columns=columns,
        source_sha256="0" * 64, source_name=name, published_sha256="1" * 64, published_size=1,
        suppressed={"rows": suppressed}, validation={"success": True}, recipient_keys=["age1x"],
        hub_key_fingerprint="SHA256:x", airflow=None, created_at="2026-11-28T00:00:00Z")
    assert json.loads(mf.encode(manifest)) == manifest


@pytest.fixture(scope="module")
def age_pair():
    identity, recipient = age.generate_x25519_identity()
    blob = age.encrypt(b"period,travellers\n2026-11-01,17\n" * 50, [age.X25519Recipient.parse(recipient)])
    return age.X25519Identity.parse(identity), blob


@FUZZ
@given(data=st.data())
def test_age_decryption_of_damaged_files_fails_cleanly(age_pair, data):
    identity, blob = age_pair
    mutated = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    try:
        age.decrypt(bytes(mutated[:cut]), [identity])
    except age.AgeError:
        return
    assert bytes(mutated[:cut]) == blob  # only the untouched file decrypts


@FUZZ
@given(noise=st.binary(max_size=400))
def test_age_decryption_of_noise_fails_cleanly(age_pair, noise):
    identity, _ = age_pair
    with pytest.raises(age.AgeError):
        age.decrypt(noise, [identity])


@pytest.fixture(scope="module")
def signed():
    pem, public = sshsig.generate_ed25519_keypair("hub")
    key = sshsig.load_private_key(pem)
    message = b'{"delivery_id": "x"}\n'
    return public, message, sshsig.sign(key, message, "borderx-manifest")


@FUZZ
@given(data=st.data())
def test_ssh_signature_verification_of_damaged_signatures_fails_cleanly(signed, data):
    public, message, signature = signed
    mutated = list(signature)
    position = data.draw(st.integers(0, len(mutated) - 1))
    mutated[position] = data.draw(st.characters(codec="ascii"))
    mutated = "".join(mutated)
    try:
        sshsig.verify(public, message, mutated, "borderx-manifest")
    except sshsig.SignatureError:
        return
    # Only a change the armor ignores (line breaks, padding-free whitespace) may still verify.
    assert mutated.split() == signature.split() or "".join(mutated.split()) == "".join(signature.split())


@FUZZ
@given(noise=st.binary(max_size=600))
def test_ssh_signature_verification_of_noise_fails_cleanly(signed, noise):
    public, message, _ = signed
    with pytest.raises(sshsig.SignatureError):
        sshsig.verify(public, message, noise, "borderx-manifest")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8"))))
def test_the_csv_reader_returns_an_outcome_for_any_bytes(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("csv") / "x.csv"
    path.write_bytes(b"period,border_point,direction,nationality,age_band,sex,travel_mode,traveller_category,travellers\n"
                     + body)
    outcome = validate_extract(path, REPO / "expectations" / "traveller_flows.json")
    assert outcome.success in (True, False)
    assert outcome.error is None or "x.csv" in outcome.error
