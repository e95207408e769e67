"""Time stamps of the signed heads: a head waits while the TSA is down, exchanges go on for the accepted wait
and stop after it, and a token is checked for exactly the bytes it was asked for."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from audit_fixtures import tsa  # noqa: F401 (a fixture)
from borderx.audit.anchors import anchor, check_publishing
from borderx.audit.timestamps import Stamping, request_token, verify_token
from borderx.audit.trail import AuditTrail
from borderx.config.models import AuditSettings, TsaSettings
from borderx.errors import TimestampError, TimestampingStopped, is_transient
from borderx.crypto import sshsig
from airflow_procs import free_port

START = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


def _stamping(tmp_path, url, ca, clock, trail):
    settings = AuditSettings(tsa=TsaSettings(url=url, ca_certificate=str(ca), timeout_seconds=2))
    return Stamping(settings, tmp_path, tmp_path / "state", trail, clock)


def test_exchanges_go_on_for_the_accepted_wait_then_stop_until_the_tsa_answers(tmp_path, tsa):  # noqa: F811
    url, authority = tsa
    clock = Clock()
    trail = AuditTrail(tmp_path / "audit", clock=clock)
    trail.append("config-changed", files={})
    key = sshsig.load_private_key(sshsig.generate_ed25519_keypair()[0])
    down = f"http://127.0.0.1:{free_port()}/tsa"
    stamping = _stamping(tmp_path, down, authority.ca_certificate, clock, trail)
    head = anchor(trail, key, "fp", stamping=stamping)
    assert not (trail.folder / "heads" / f"{head.seq:012d}.json.tsr").exists()
    assert stamping.pending() == [head.seq]
    assert [e["type"] for e in trail.events()][-1] == "timestamp-deferred"

    clock.now = START + dt.timedelta(hours=3, minutes=59)
    check_publishing(trail, stamping)  # within the accepted four hours
    clock.now = START + dt.timedelta(hours=4, minutes=1)
    with pytest.raises(TimestampingStopped, match="publishing stopped: 1 signed audit head") as stopped:
        check_publishing(trail, stamping)
    assert is_transient(stopped.value) and down in str(stopped.value)
    assert [e["type"] for e in trail.events()].count("publishing-stopped") == 1

    answering = _stamping(tmp_path, url, authority.ca_certificate, clock, trail)
    check_publishing(trail, answering)
    token = (trail.folder / "heads" / f"{head.seq:012d}.json.tsr").read_bytes()
    body = (trail.folder / "heads" / f"{head.seq:012d}.json").read_bytes()
    verify_token(token, body, authority.ca_certificate.read_bytes(), authority.policy)
    resumed = list(trail.events())[-1]
    assert resumed["type"] == "timestamp-resumed" and resumed["details"]["stamped"] == 1
    assert json.loads((tmp_path / "state" / "timestamps.json").read_text()) == {
        "failing_since": None, "pending": [], "stopped": False}


def test_a_token_vouches_for_its_own_bytes_under_its_own_ca_only(tmp_path, tsa):  # noqa: F811
    url, authority = tsa
    ca = authority.ca_certificate.read_bytes()
    settings = TsaSettings(url=url, ca_certificate=str(authority.ca_certificate), policy=authority.policy)
    token = request_token(settings, ca, b"head bytes\n")
    assert verify_token(token, b"head bytes\n", ca, authority.policy).tzinfo is not None
    with pytest.raises(TimestampError, match="not a valid time stamp"):
        verify_token(token, b"other bytes\n", ca)
    with pytest.raises(TimestampError, match="not a valid time stamp"):
        verify_token(token, b"head bytes\n", ca, "1.2.3.4")
    from borderx.dev.tsa import make_authority

    other = make_authority(tmp_path / "other").ca_certificate.read_bytes()
    with pytest.raises(TimestampError, match="not a valid time stamp"):
        verify_token(token, b"head bytes\n", other)
    with pytest.raises(TimestampError):
        verify_token(b"\x30\x03junk", b"head bytes\n", ca)


def test_a_tsa_whose_ca_cannot_be_read_is_a_config_error(demo_home, tsa):  # noqa: F811
    from audit_fixtures import use_tsa
    from borderx.config.loader import check_config

    url, authority = tsa
    ca = use_tsa(demo_home.root, url, authority, max_unanchored_age="PT2H")
    assert check_config(demo_home.root) == []
    ca.write_text("not a certificate\n")
    [problem] = check_config(demo_home.root)
    assert (problem.file, problem.field) == ("config/settings.yaml", "audit.tsa.ca_certificate")
    assert "not a PEM certificate" in problem.message
    ca.unlink()
    [problem] = check_config(demo_home.root)
    assert "No such file" in problem.message
