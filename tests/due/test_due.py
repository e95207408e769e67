"""Late extracts end to end: real exchanges record when extracts were taken in; `borderx due` and the due
check read the trail; a late one is recorded once and its provider and the operators are told by mail; the
audit report shows each provider's punctuality."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from notice_servers import OPERATOR, PROVIDER, set_notices

from borderx.audit import report as audit_report
from borderx.audit.trail import AuditTrail
from borderx.dev import samples
from borderx.due import check, period_at, record_overdue
from borderx.exchange import Runtime, run_once

BORDERX = str(Path(sys.executable).with_name("borderx"))
HOUR = dt.timedelta(hours=1)


def _status(rows, provider: str) -> list[tuple[str, str]]:
    return [(r.due_by, r.status) for r in rows if r.provider == provider]


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_received_due_late_recorded_once_told_and_reported(demo_home, s3_endpoint, bucket, smtp_server, plain_smtp):
    set_notices(demo_home, smtp_server.port, None)
    now = dt.datetime.now(dt.timezone.utc)
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket, clock=lambda: now)
    rule = rt.config.agreements["DSA-2026-001"].due_rules[0]
    assert (rule.every, rule.by_day, rule.grace) == ("month", 5, "2d"), "the demo's agreement as in config/"
    run_once(rt, settle_seconds=0)  # ZA-DHA's and BW-DIC's traveller_flows taken in now
    this = period_at(rule, now)
    due_by = lambda p: p.due_by.isoformat().replace("+00:00", "Z")  # noqa: E731
    rows = check(rt.config, rt.trail.events(), now)
    assert _status(rows, "ZA-DHA")[-1] == (due_by(this), "received")
    assert [r.received_at for r in rows if r.provider == "ZA-DHA"][-1][:19] == now.isoformat()[:19]

    # The next period: this one's extract came, the next is due; one after that, it is late.
    following = period_at(rule, this.late_after)
    assert _status(check(rt.config, rt.trail.events(), this.late_after + HOUR), "ZA-DHA") == [
        (due_by(this), "received"), (due_by(following), "due")]
    later = following.late_after + HOUR
    assert ("ZA-DHA", due_by(following), "late") in [(r.provider, r.due_by, r.status)
                                                     for r in check(rt.config, rt.trail.events(), later)]

    # `borderx due` as the operator reads it, at that moment: read-only, exit 1 because something is late.
    before = _files(demo_home.root)
    done = subprocess.run([BORDERX, "due", "--home", str(demo_home.root), "--format", "json", "--at",
                           later.isoformat()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    listed = json.loads(done.stdout)
    assert {(r["provider"], r["status"]) for r in listed if r["due_by"] == due_by(following)} == {
        ("ZA-DHA", "late"), ("BW-DIC", "late")}
    assert _files(demo_home.root) == before, "borderx due writes nothing"

    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket, clock=lambda: later)
    newly = record_overdue(rt)
    assert sorted(r.provider for r in newly) == ["BW-DIC", "ZA-DHA"]
    assert record_overdue(rt) == [], "checked again, nothing recorded twice"
    overdue = [e for e in AuditTrail(demo_home.audit).events() if e["type"] == "overdue"]
    assert sorted(e["details"]["provider"] for e in overdue) == ["BW-DIC", "ZA-DHA"]
    assert all(e["details"]["due_by"] == due_by(following) for e in overdue)

    from borderx import notices

    notices.drain(rt)
    told = [m for m in smtp_server.to(PROVIDER) if m["notice"] == "overdue"]
    assert len(told) == 1 and "traveller_flows extract of ZA-DHA overdue" in told[0]["subject"]
    assert len([m for m in smtp_server.to(OPERATOR) if m["notice"] == "overdue"]) == 2

    # ZA-DHA's extract comes late after all: the report says so.
    flows = demo_home.intake / "ZA-DHA" / "traveller_flows"
    samples.write_csv(flows / "late.csv", samples.TRAVELLER_FLOWS_COLUMNS,
                      samples.traveller_flows_rows(["ZA-BEI"], later.date() - dt.timedelta(days=3), 2, seed=9))
    old = dt.datetime.now().timestamp() - 60
    os.utime(flows / "late.csv", (old, old))
    run_once(rt, settle_seconds=0)
    report = audit_report.build(AuditTrail(demo_home.audit).events())
    punctual = {r["provider"]: r for r in report.punctuality}
    assert (punctual["ZA-DHA"]["overdue"], punctual["ZA-DHA"]["came_late"], punctual["ZA-DHA"]["still_missing"]) \
        == (1, 1, 0)
    assert (punctual["BW-DIC"]["overdue"], punctual["BW-DIC"]["still_missing"]) == (1, 1)
    table = audit_report.as_table(report)
    assert "ZA-DHA: 2 taken in; 1 overdue: 1 came late, 0 still missing" in table
    assert "Punctuality of providers" in audit_report.as_html(report)


def test_borderx_due_without_rules_says_how_to_add_one(tmp_path):
    from borderx.dev.demo import prepare_home

    home = prepare_home(tmp_path / "home", dt.date.today())
    for path in (home.config / "agreements").glob("*.yaml"):
        path.write_text("\n".join(l for l in path.read_text().splitlines()
                                  if not l.startswith(("due:", "  every:", "  by_day:", "  grace:"))) + "\n")
    done = subprocess.run([BORDERX, "due", "--home", str(home.root)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "add due: to an agreement" in done.stdout
    helped = subprocess.run([BORDERX, "due", "--help"], capture_output=True, text=True, timeout=60)
    assert "received" in helped.stdout and "late_after" in helped.stdout and "--record" in helped.stdout


def test_every_period_missed_while_no_check_ran_is_recorded_once(demo_home, s3_endpoint, bucket):
    now = dt.datetime.now(dt.timezone.utc)
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket, clock=lambda: now)
    rule = rt.config.agreements["DSA-2026-001"].due_rules[0]
    run_once(rt, settle_seconds=0)  # the trail begins; this period's extracts are taken in
    periods = [period_at(rule, now)]
    for _ in range(4):
        periods.append(period_at(rule, periods[-1].late_after))
    due_by = [p.due_by.isoformat().replace("+00:00", "Z") for p in periods]
    # No check ran until well into the fifth period: the second, third and fourth were all missed.
    later = periods[4].start + HOUR
    assert _status(check(rt.config, rt.trail.events(), later), "ZA-DHA") == [
        (due_by[1], "late"), (due_by[2], "late"), (due_by[3], "late"), (due_by[4], "due")]

    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket, clock=lambda: later)
    newly = record_overdue(rt)
    assert sorted((r.provider, r.due_by) for r in newly) == sorted(
        (provider, d) for provider in ("BW-DIC", "ZA-DHA") for d in due_by[1:4])
    assert record_overdue(rt) == [], "checked again, nothing recorded twice"
    # Once recorded, the older ones leave the list; the period just past stays, as always.
    rows = [r for r in check(rt.config, rt.trail.events(), later) if r.provider == "ZA-DHA"]
    assert [(r.due_by, r.status, r.recorded) for r in rows] == [(due_by[3], "late", True), (due_by[4], "due", False)]
    # A period that began before the trail did is not judged: its extract may have come before the hub began.
    before_trail = [r for r in check(rt.config, rt.trail.events(), later) if r.due_by < due_by[0]]
    assert before_trail == []
