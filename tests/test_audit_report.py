"""The auditor's questions, answered from the trail in one command."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from borderx.cli import main
from borderx.exchange import run_once


def _report(home, capsys, *extra):
    assert main(["audit", "report", "--home", str(home.root), *extra]) == 0
    return capsys.readouterr().out


def test_report_answers_who_shared_what_with_whom(runtime, capsys):
    summary = run_once(runtime, settle_seconds=0)
    data = json.loads(_report(runtime.home, capsys, "--format", "json"))
    lines = {(l["agreement"], l["provider"], l["recipient"]): l for l in data["lines"]}
    assert len(lines) == len(summary.published)
    for published in summary.published:
        line = lines[(published["agreement"], next(
            e["details"]["provider"] for e in runtime.trail.events()
            if e["details"].get("delivery_id") == published["delivery_id"]), published["recipient"])]
        assert published["delivery_id"] in line["delivery_ids"]
        assert line["rows"] == published["rows"] and line["suppressed_rows"] == published["suppressed_rows"]
    assert len(data["quarantines"]) == len(summary.quarantined)
    assert sum(data["volume_by_day"].values()) == sum(p["rows"] for p in summary.published)


def test_report_filters_and_formats(runtime, capsys):
    run_once(runtime, settle_seconds=0)
    rows = list(csv.DictReader(io.StringIO(_report(runtime.home, capsys, "--format", "csv", "--recipient", "BW-BURS"))))
    assert [(r["agreement"], r["dataset"]) for r in rows] == [("DSA-2026-002", "goods_crossings")]
    table = _report(runtime.home, capsys, "--provider", "ZA-DHA")
    assert "ZA-DHA" in table and "BW-DIC  " not in table
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    empty = json.loads(_report(runtime.home, capsys, "--format", "json", "--from", tomorrow))
    assert empty["lines"] == [] and empty["quarantines"] == []
    page = _report(runtime.home, capsys, "--format", "html")
    assert page.startswith("<!doctype html>") and "<svg" in page and "DSA-2026-001" in page


def test_show_traces_one_delivery_from_intake_to_bucket(runtime, capsys):
    summary = run_once(runtime, settle_seconds=0)
    delivery = summary.published[0]["delivery_id"]
    assert main(["audit", "show", "--home", str(runtime.home.root), delivery]) == 0
    steps = [line.split()[2] for line in capsys.readouterr().out.splitlines()]
    assert steps[:2] == ["received", "validated"]
    for step in ("minimised", "encrypted", "signed", "published"):
        assert step in steps
    assert main(["audit", "show", "--home", str(runtime.home.root), "0" * 32]) == 1


def test_verify_command_checks_the_bucket(runtime, capsys):
    run_once(runtime, settle_seconds=0)
    args = ["audit", "verify", "--home", str(runtime.home.root), "--s3-endpoint", runtime.target.endpoint_url,
            "--bucket", runtime.target.bucket]
    assert main(args) == 0
    assert "1 signed head(s)" in capsys.readouterr().out
    lines = runtime.trail.path.read_text().splitlines(keepends=True)
    runtime.trail.path.write_text("".join(lines[:-1]))
    assert main(args) == 1
    assert "tail cut" in capsys.readouterr().out
