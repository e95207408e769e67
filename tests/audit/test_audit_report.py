"""The auditor's questions, answered from the trail in one command, each validation linked to its Data Docs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from borderx.audit import report as audit_report
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


class _Anchors(HTMLParser):
    """The Data Docs links of a report page, in order."""

    def __init__(self):
        super().__init__()
        self.docs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("class") == "bx-docs":
            self.docs.append(attrs["href"])


def _docs_links(page: str) -> list[str]:
    parser = _Anchors()
    parser.feed(page)
    return parser.docs


def test_html_report_links_every_validation_to_its_data_docs(runtime, capsys):
    summary = run_once(runtime, settle_seconds=0)
    validated = [e for e in runtime.trail.events() if e["type"] == "validated"]
    page = _report(runtime.home, capsys, "--format", "html")
    links = _docs_links(page)
    # One per validation, and one more beside each quarantined extract's reasons.
    assert len(links) == len(validated) + len(summary.quarantined)
    paths = [Path(urllib.request.url2pathname(urllib.parse.urlparse(link).path)) for link in links]
    assert all(link.startswith("file:///") for link in links)
    assert all(p.is_file() and p.name.endswith(".validation.html") for p in paths), paths
    quarantined = {Path(q["file"]).name + ".validation.html" for q in summary.quarantined}
    assert {p.name for p in paths if p.is_relative_to(runtime.home.quarantine)} == quarantined
    assert len({p for p in paths if p.is_relative_to(runtime.home.datadocs)}) == len(validated) - len(quarantined)
    data = json.loads(_report(runtime.home, capsys, "--format", "json"))
    assert {v["outcome"] for v in data["validations"]} == {"accepted", "quarantined"}
    assert all(Path(v["data_docs"]).is_file() for v in data["validations"])


def test_an_html_report_names_a_page_it_could_not_render(runtime, capsys):
    run_once(runtime, settle_seconds=0)
    accepted = sorted(runtime.home.datadocs.rglob("*.validation.json"))
    assert accepted and not list(runtime.home.datadocs.rglob("*.validation.html")), "passing files' pages wait"
    accepted[0].write_text("{not json", encoding="utf-8")
    assert main(["audit", "report", "--home", str(runtime.home.root), "--format", "html"]) == 0
    err = capsys.readouterr().err
    assert f"{accepted[0].name}: a Data Docs page source that is not JSON" in err
    assert [p.name for p in runtime.home.datadocs.rglob("*.validation.json")] == [accepted[0].name]
    assert len(list(runtime.home.datadocs.rglob("*.validation.html"))) == len(accepted) - 1


def test_a_written_report_links_data_docs_relative_to_itself(runtime, tmp_path):
    run_once(runtime, settle_seconds=0)
    report = audit_report.build(runtime.trail.events())
    out = runtime.home.root / "reports" / "2026-11.html"
    out.parent.mkdir()
    # Passing files' pages are rendered from their sources, as `borderx audit report --format html` does.
    assert not audit_report.render_pages(report, runtime.home)
    out.write_text(audit_report.render(report, "html", out), encoding="utf-8")
    links = _docs_links(out.read_text(encoding="utf-8"))
    assert links and all(link.startswith("../") and "://" not in link for link in links)
    # The home moved, the report with it: every link still opens its page.
    moved = tmp_path / "elsewhere"
    shutil.move(runtime.home.root, moved)
    for link in links:
        assert (moved / "reports" / urllib.request.url2pathname(link)).resolve().is_file(), link
    assert audit_report.render(report, "html") == audit_report.as_html(report)


def _event(seq, type_, **details):
    return {"seq": seq, "time": f"2026-11-2{seq % 10}T10:00:00Z", "type": type_, "details": details}


def test_data_docs_pages_are_followed_into_quarantine():
    extract = {"provider": "ZA-DHA", "dataset": "traveller_flows", "source_sha256": "a" * 64, "source_name": "f.csv"}
    events = [
        _event(1, "validated", **extract, suite="traveller_flows", success=False, data_docs="/h/datadocs/Z/t/aaa/f.csv"
                                                                                          ".validation.html"),
        _event(2, "quarantined", **extract, reasons=["x"], file="/h/quarantine/Z/t/f.csv"),
        # The same content again: quarantined as a duplicate before any validation, so it has no page.
        _event(3, "quarantined", **extract, reasons=["duplicate"], file="/h/quarantine/Z/t/f.aaaaaaaaaaaa.csv"),
        # A file GX could not read has no page either.
        _event(4, "validated", **{**extract, "source_sha256": "b" * 64}, suite="s", success=False, data_docs=None),
        _event(5, "quarantined", **{**extract, "source_sha256": "b" * 64}, reasons=["unreadable"],
               file="/h/quarantine/Z/t/f.bbbbbbbbbbbb.csv"),
        # A quarantined event that names its page itself is believed.
        _event(6, "quarantined", **{**extract, "source_sha256": "c" * 64}, reasons=["x"], file="/h/q/g.csv",
               data_docs="/h/q/g.csv.validation.html"),
    ]
    report = audit_report.build(events)
    assert [q["data_docs"] for q in report.quarantines] == [
        "/h/quarantine/Z/t/f.csv.validation.html", None, None, "/h/q/g.csv.validation.html"]
    assert [(v["outcome"], v["data_docs"]) for v in report.validations] == [
        ("quarantined", "/h/quarantine/Z/t/f.csv.validation.html"), ("quarantined", None)]
    page = audit_report.as_html(report)
    assert _docs_links(page) == ["file:///h/quarantine/Z/t/f.csv.validation.html"] * 2 + [
        "file:///h/q/g.csv.validation.html"]
    assert "no page" in page
    hostile = audit_report.build([_event(1, "validated", **extract, suite="s", success=True,
                                         data_docs='/h/"><script>x</script>.validation.html')])
    assert "<script>" not in audit_report.as_html(hostile)


def test_what_the_intake_refused_is_in_the_report_for_its_provider():
    events = [
        _event(1, "refused", reason="linked-folder", path="intake/ZA-DHA/traveller_flows", target="/srv/keys",
               provider="ZA-DHA", dataset="traveller_flows"),
        _event(2, "refused", reason="not-a-file-name", provider="BW-DIC", dataset="traveller_flows",
               source_uri="sftp://sftp.bw.example/exports/traveller_flows/a/b.csv", source_version="1700000000"),
        _event(3, "refused", reason="host-key-changed", provider="BW-DIC", host="sftp.bw.example:22",
               presented="SHA256:new", pinned="SHA256:old"),
    ]
    report = audit_report.build(events)
    assert [(r["provider"], r["dataset"], r["reason"], r["what"]) for r in report.refusals] == [
        ("ZA-DHA", "traveller_flows", "linked-folder", "intake/ZA-DHA/traveller_flows"),
        ("BW-DIC", "traveller_flows", "not-a-file-name", "sftp://sftp.bw.example/exports/traveller_flows/a/b.csv"),
        ("BW-DIC", None, "host-key-changed", "sftp.bw.example:22 presented SHA256:new, pinned SHA256:old"),
    ]
    table = audit_report.as_table(report)
    assert "refused at intake: 3" in table
    assert "ZA-DHA/traveller_flows: linked-folder intake/ZA-DHA/traveller_flows" in table
    assert "Refused at intake (3)" in audit_report.as_html(report)
    assert len(json.loads(audit_report.as_json(report))["refusals"]) == 3
    assert [r["provider"] for r in audit_report.build(events, provider="BW-DIC").refusals] == ["BW-DIC", "BW-DIC"]
    # Refusals concern no agreement or recipient: a report narrowed to one has none, as it has no quarantines.
    assert audit_report.build(events, agreement="DSA-2026-001").refusals == []
    assert audit_report.build(events, since=dt.date(2026, 11, 22)).refusals[0]["reason"] == "not-a-file-name"


def test_names_in_every_text_format_are_text_not_terminal_control():
    hostile = "f\x1b[2K\rok: 0 problems\u202e.csv"
    extract = {"provider": "ZA-DHA", "dataset": "traveller_flows", "source_sha256": "a" * 64, "source_name": hostile}
    delivery = {"delivery_id": "d1", "agreement": "DSA\x1b]0;x\x07", "provider": "ZA-DHA", "recipient": "NA-MHAISS",
                "dataset": "traveller_flows", "source_sha256": "a" * 64}
    report = audit_report.build([
        _event(1, "quarantined", **extract, reasons=["unreadable"], file="/h/q/f.csv"),
        _event(2, "minimised", **delivery, rows_in=3, rows_out=3, columns=["period"]),
        _event(3, "published", **delivery, bucket="b", keys=[]),
        _event(4, "refused", reason="not-a-file-name", provider="ZA-DHA", dataset="traveller_flows",
               source_uri=f"sftp://h/x/{hostile}"),
    ])
    for fmt in ("table", "csv", "html", "json"):
        text = audit_report.render(report, fmt)
        assert not any(c in text for c in "\x1b\r\x07\u202e"), fmt
    assert "f\\x1b[2K\\x0dok: 0 problems\\u202e.csv" in audit_report.as_table(report)
    assert "DSA\\x1b]0;x\\x07" in audit_report.as_csv(report)
