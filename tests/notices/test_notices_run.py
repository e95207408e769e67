"""Notices through a real `borderx run`: a real SMTP server and a webhook receiver on 127.0.0.1 get what the
provider, the recipient and the operators are told, and no message holds a key or an extract value."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from notice_servers import OPERATOR, PROVIDER, RECIPIENT, set_notices
from leak_scan import assert_nothing_leaks, drop_marked

from airflow_procs import free_port
from borderx.audit.trail import AuditTrail
from borderx.exchange import Runtime, run_once

BORDERX = str(Path(sys.executable).with_name("borderx"))


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _events(home, kind: str) -> list[dict]:
    return [e for e in AuditTrail(home.audit).events() if e["type"] == kind]


def test_a_run_tells_provider_and_recipient_by_mail_and_webhook_and_leaks_nothing(
        demo_home, s3_endpoint, bucket, smtp_server, webhook_receiver, plain_smtp):
    set_notices(demo_home, smtp_server.port, webhook_receiver.url)
    drop_marked(demo_home.intake / "ZA-DHA" / "traveller_flows")
    env = {**os.environ, "BORDERX_S3_ENDPOINT_URL": s3_endpoint, "BORDERX_BUCKET": bucket}
    done = subprocess.run([BORDERX, "-vv", "run", "--once", "--settle", "0", "--home", str(demo_home.root)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]  # bad extracts were quarantined

    provider = {m["subject"]: m for m in smtp_server.to(PROVIDER)}
    accepted = next(m for s, m in provider.items() if "marked.csv accepted" in s)
    quarantined = next(m for s, m in provider.items() if "marked_bad.csv QUARANTINED" in s)
    assert accepted["notice"] == "accepted" and accepted["from"] == "hub@hub.test"
    receipts = demo_home.intake / "ZA-DHA" / "receipts" / "traveller_flows"
    assert accepted["text"].strip() == (receipts / "marked.csv.receipt.txt").read_text().strip()
    assert quarantined["text"].strip() == (receipts / "marked_bad.csv.receipt.txt").read_text().strip()
    assert "problem(s), nothing was delivered" in quarantined["text"]

    delivered = [m for m in smtp_server.to(RECIPIENT) if m["notice"] == "delivered"]
    assert delivered, [m["subject"] for m in smtp_server.messages]
    for m in delivered:
        assert f"s3://{bucket}/deliveries/DSA-2026-001/ZA-SARS/traveller_flows/" in m["text"]
        assert "rows: " in m["text"] and "validation_success: True" in m["text"]
    assert not smtp_server.to(OPERATOR), "nothing failed: the operators hear nothing"

    hooks = webhook_receiver.at("/ZA-DHA?token=hook")
    assert {p["json"]["notice"] for p in hooks} == {"accepted", "quarantined"}
    assert all(p["type"] == "application/json" for p in webhook_receiver.posts)
    sars = [p["json"] for p in webhook_receiver.at("/ZA-SARS?token=hook") if p["json"]["notice"] == "delivered"]
    assert len(sars) == len(delivered) and all(p["location"].startswith(f"s3://{bucket}/deliveries/") for p in sars)
    assert all(isinstance(p["rows"], int) for p in sars)

    sent = _events(demo_home, "notice-sent")
    assert len(sent) == len(smtp_server.messages) + len(webhook_receiver.posts)
    assert not _events(demo_home, "notice-failed")
    assert not list((demo_home.state / "outbox").glob("*.json")), "nothing left waiting"

    haystacks = {f"mail {i}": m["raw"] for i, m in enumerate(smtp_server.messages)}
    haystacks.update({f"webhook {i}": p["raw"] for i, p in enumerate(webhook_receiver.posts)})
    haystacks.update({"stdout": done.stdout, "stderr": done.stderr})
    assert_nothing_leaks(demo_home.root, haystacks)

    # A second run over the same files sends nothing new: each notice is sent once.
    before = len(smtp_server.messages)
    subprocess.run([BORDERX, "run", "--once", "--settle", "0", "--home", str(demo_home.root)],
                   capture_output=True, text=True, env=env, timeout=300)
    assert len(smtp_server.messages) == before


def test_a_mail_server_that_is_down_holds_up_no_delivery_and_gets_its_notices_later(
        demo_home, s3_endpoint, bucket, smtp_server, plain_smtp):
    set_notices(demo_home, free_port(), None)  # nothing listens there
    clock = Clock(dt.datetime.now(dt.timezone.utc))
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket, clock=clock)
    summary = run_once(rt, settle_seconds=0)
    assert summary.published, "published although no notice could be sent"
    waiting = sorted((demo_home.state / "outbox").glob("*.json"))
    assert len(waiting) >= 3
    # One try at the dead server in a pass, not one per notice: the others wait untried.
    assert summary.notices == {"sent": 0, "failed": 1, "given_up": 0, "waiting": len(waiting) - 1}
    [failed] = _events(demo_home, "notice-failed")
    assert "ConnectionRefusedError" in failed["details"]["problem"] and not failed["details"]["given_up"]

    set_notices(demo_home, smtp_server.port, None)  # the server is back
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket, clock=clock)
    run_once(rt, settle_seconds=0)
    assert len(smtp_server.messages) == len(waiting) - 1, "the one tried waits out its backoff"
    clock.now += dt.timedelta(seconds=61)
    run_once(rt, settle_seconds=0)
    assert len(smtp_server.messages) == len(waiting)
    retried = [e for e in _events(demo_home, "notice-sent") if e["details"]["notice_id"] == failed["details"][
        "notice_id"]]
    assert [e["details"]["attempts"] for e in retried] == [2]
    assert not list((demo_home.state / "outbox").glob("*.json"))


def test_the_operators_hear_of_a_bucket_outage_once_per_outage(demo_home, smtp_server, plain_smtp, monkeypatch,
                                                               s3_endpoint, bucket):
    import pytest

    monkeypatch.setenv("BORDERX_S3_CONNECT_TIMEOUT", "0.3")
    monkeypatch.setenv("BORDERX_S3_MAX_ATTEMPTS", "1")
    set_notices(demo_home, smtp_server.port, None)
    dead = f"http://127.0.0.1:{free_port()}"
    for _ in range(2):
        with pytest.raises(Exception):
            run_once(Runtime.open(demo_home.root, endpoint_url=dead, bucket=bucket), settle_seconds=0)
    outages = [m for m in smtp_server.to(OPERATOR) if m["notice"] == "outage"]
    assert len(outages) == 1 and "S3 bucket does not answer" in outages[0]["subject"]
    assert "EndpointConnectionError" in outages[0]["text"] or "ConnectionError" in outages[0]["text"]

    run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    (demo_home.intake / "ZA-DHA" / "traveller_flows" / "late.csv").write_text("period\n")
    with pytest.raises(Exception):
        run_once(Runtime.open(demo_home.root, endpoint_url=dead, bucket=bucket), settle_seconds=0)
    assert len([m for m in smtp_server.to(OPERATOR) if m["notice"] == "outage"]) == 2, "a new outage, told anew"
    assert json.loads((demo_home.state / "notices" / "outages.json").read_text())["s3"]


def test_the_operators_hear_once_that_the_time_stamping_authority_is_down(demo_home, s3_endpoint, bucket,
                                                                          smtp_server, plain_smtp, tmp_path):
    import shutil

    import yaml

    from borderx.dev.tsa import make_authority

    set_notices(demo_home, smtp_server.port, None)
    authority = make_authority(tmp_path / "tsa")
    shutil.copyfile(authority.ca_certificate, demo_home.root / "keys" / "tsa-ca.pem")
    settings_file = demo_home.config / "settings.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    down = f"http://127.0.0.1:{free_port()}/tsa"
    settings["audit"] = {"tsa": {"url": down, "ca_certificate": "keys/tsa-ca.pem", "timeout_seconds": 2}}
    settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))

    summary = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert summary.published, "a TSA that is down defers time stamps; exchanges go on"
    (demo_home.intake / "ZA-DHA" / "traveller_flows" / "again.csv").write_text("period\n")
    run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    [outage] = [m for m in smtp_server.to(OPERATOR) if m["notice"] == "outage"]
    assert "time-stamping authority does not answer" in outage["subject"] and down in outage["text"]
