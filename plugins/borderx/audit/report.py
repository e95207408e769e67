"""What was shared, by whom, with whom, under which agreement, in a period: read from the audit trail."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import quote

from borderx.audit.events import (Archived, Blocked, Minimised, Overdue, Published, Quarantined, Refused, Revoked,
                                   Suppressed, Validated, of_kind)
from borderx.text import printable


@dataclass
class Line:
    agreement: str
    provider: str
    recipient: str
    dataset: str
    deliveries: int = 0
    rows: int = 0
    suppressed_rows: int = 0
    suppressed_count: int = 0
    delivery_ids: list[str] = field(default_factory=list)


@dataclass
class Report:
    period_from: str | None
    period_to: str | None
    lines: list[Line]
    quarantines: list[dict]
    blocked: list[dict]
    volume_by_day: dict[str, int]
    revocations: list[dict] = field(default_factory=list)
    validations: list[dict] = field(default_factory=list)
    punctuality: list[dict] = field(default_factory=list)
    # What the intake never took: linked folders, names that cannot be copied in, servers with another host key.
    refusals: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def data_docs(self) -> set[str]:
        """Every Data Docs page the report links to."""
        return {v["data_docs"] for v in (*self.validations, *self.quarantines) if v.get("data_docs")}


def _extract_key(details: dict) -> tuple:
    return (details.get("provider"), details.get("dataset"), details.get("source_sha256"), details.get("source_name"))


def _validations(events: list[dict]) -> tuple[list[tuple[dict, dict]], dict[int, str | None]]:
    """Each validated event with where its Data Docs page is now, and the page of each quarantined event (by seq).

    The page is written beside the accepted extracts (HOME/datadocs/...); quarantine moves it beside the
    quarantined file as FILE.validation.html, so the validated event's path is followed to there.
    """
    found: list[tuple[dict, dict]] = []
    open_: dict[tuple, dict] = {}
    quarantine_pages: dict[int, str | None] = {}
    for e in of_kind(events, Validated, Quarantined, Archived):
        d = e["details"]
        if e["type"] == Validated.TYPE:
            row = {"time": e["time"], "provider": d.get("provider"), "dataset": d.get("dataset"),
                   "source": d.get("source_name"), "source_sha256": d.get("source_sha256"), "suite": d.get("suite"),
                   "success": d.get("success"), "rows": d.get("rows"), "outcome": None, "data_docs": d.get("data_docs")}
            found.append((e, row))
            open_[_extract_key(d)] = row
        elif e["type"] == Quarantined.TYPE:
            row = open_.pop(_extract_key(d), None)
            if "data_docs" in d:
                page = d["data_docs"]
            elif row is not None and row["data_docs"] and d.get("file"):
                page = d["file"] + ".validation.html"
            else:
                page = None  # a duplicate, or a file GX could not read: no validation ran on it
            quarantine_pages[e["seq"]] = page
            if row is not None:
                row.update(outcome="quarantined", data_docs=page)
        else:
            row = open_.pop(_extract_key(d), None)
            if row is not None:
                row["outcome"] = "accepted"
    return found, quarantine_pages


def punctuality(every: list[dict], events: list[dict], provider: str | None = None) -> list[dict]:
    """Per provider, in the period: extracts taken in (not quarantined), extracts that were overdue, and of those
    how many came late and how many are still missing (a later extract of the dataset counts as the late one)."""
    from borderx.due import intakes

    taken_all = intakes(every)
    taken = intakes(events)
    rows: dict[str, dict] = {}

    def row(agency: str) -> dict:
        return rows.setdefault(agency, {"provider": agency, "taken_in": 0, "overdue": 0, "came_late": 0,
                                        "still_missing": 0, "late": []})

    for (agency, _), times in taken.items():
        row(agency)["taken_in"] += len(times)
    for e in of_kind(events, Overdue):
        d = e["details"]
        came = [t for t in taken_all.get((d["provider"], d["dataset"]), []) if t >= d["late_after"]]
        r = row(d["provider"])
        r["overdue"] += 1
        r["came_late" if came else "still_missing"] += 1
        r["late"].append({"dataset": d["dataset"], "agreement": d["agreement"], "due_by": d["due_by"],
                          "received_at": came[0] if came else None})
    return [rows[a] for a in sorted(rows) if provider is None or a == provider]


def _in_period(event: dict, since: dt.date | None, until: dt.date | None) -> bool:
    day = dt.date.fromisoformat(event["time"][:10])
    return (since is None or day >= since) and (until is None or day <= until)


def build(events: Iterable[dict], *, since: dt.date | None = None, until: dt.date | None = None,
          agreement: str | None = None, provider: str | None = None, recipient: str | None = None) -> Report:
    every = list(events)
    # Pages are followed over the whole trail: an extract validated on the last day of a period may be
    # quarantined or archived just after it.
    validated, quarantine_pages = _validations(every)
    events = [e for e in every if _in_period(e, since, until)]
    minimised = {e["details"]["delivery_id"]: e["details"] for e in of_kind(events, Minimised)}
    suppressed = {e["details"]["delivery_id"]: e["details"] for e in of_kind(events, Suppressed)}
    lines: dict[tuple, Line] = {}
    volume: dict[str, int] = defaultdict(int)

    def wanted(d: dict) -> bool:
        return all(want is None or d.get(key) == want
                   for key, want in (("agreement", agreement), ("provider", provider), ("recipient", recipient)))

    for e in of_kind(events, Published):
        d = e["details"]
        if not wanted(d):
            continue
        key = (d["agreement"], d["provider"], d["recipient"], d["dataset"])
        line = lines.setdefault(key, Line(*key))
        rows = minimised.get(d["delivery_id"], {}).get("rows_out", 0)
        line.deliveries += 1
        line.rows += rows
        line.suppressed_rows += suppressed.get(d["delivery_id"], {}).get("rows", 0)
        line.suppressed_count += suppressed.get(d["delivery_id"], {}).get("count", 0)
        line.delivery_ids.append(d["delivery_id"])
        volume[e["time"][:10]] += rows
    quarantines = [
        {"time": e["time"], "provider": e["details"]["provider"], "dataset": e["details"]["dataset"],
         "source": e["details"]["source_name"], "reasons": e["details"]["reasons"],
         "data_docs": quarantine_pages.get(e.get("seq"))}
        for e in of_kind(events, Quarantined)
        if (provider is None or e["details"]["provider"] == provider) and agreement is None and recipient is None
    ]
    blocked = [
        {"time": e["time"], "agreement": e["details"]["agreement"], "recipient": e["details"].get("recipient"),
         "rule": e["details"]["rule"]}
        for e in of_kind(events, Blocked) if wanted({**e["details"], "recipient": e["details"].get("recipient")})
    ]
    refusals = [
        {"time": e["time"], "provider": e["details"]["provider"], "dataset": e["details"].get("dataset"),
         "reason": e["details"]["reason"], "what": _refused_thing(e["details"])}
        for e in of_kind(events, Refused)
        if (provider is None or e["details"]["provider"] == provider) and agreement is None and recipient is None
    ]
    revocations = [
        {"time": e["time"], "delivery_id": e["details"]["delivery_id"], "agreement": e["details"]["agreement"],
         "recipient": e["details"]["recipient"], "reason": e["details"]["reason"]}
        for e in of_kind(events, Revoked) if wanted({**e["details"], "provider": provider})
    ]
    # With an agreement or recipient asked for, the validations shown are those of the extracts it received.
    shared = {e["details"].get("source_sha256") for e in of_kind(events, Published) if wanted(e["details"])}
    validations = [
        row for e, row in validated
        if _in_period(e, since, until) and (provider is None or row["provider"] == provider)
        and ((agreement is None and recipient is None) or row["source_sha256"] in shared)
    ]
    return Report(since.isoformat() if since else None, until.isoformat() if until else None,
                  sorted(lines.values(), key=lambda l: (l.agreement, l.provider, l.recipient, l.dataset)),
                  quarantines, blocked, dict(sorted(volume.items())), revocations, validations,
                  punctuality(every, events, provider) if agreement is None and recipient is None else [],
                  refusals)


def _refused_thing(details: dict) -> str:
    """The folder, source object or server a refusal is about, as the event names it."""
    if details.get("host"):
        return f"{details['host']} presented {details.get('presented', '?')}, pinned {details.get('pinned', '?')}"
    return details.get("path") or details.get("source_uri") or ""


COLUMNS = ["agreement", "provider", "recipient", "dataset", "deliveries", "rows", "suppressed_rows", "suppressed_count"]


def as_table(report: Report) -> str:
    """The report as plain text; every name in it is shown as text (see borderx.text), never as control."""
    p = printable
    rows = [COLUMNS] + [[p(getattr(line, c)) for c in COLUMNS] for line in report.lines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append(f"quarantined: {len(report.quarantines)}")
    for q in report.quarantines:
        out.append(f"  {p(q['time'][:19])}  {p(q['provider'])}/{p(q['dataset'])}/{p(q['source'])}: "
                   f"{p(', '.join(q['reasons']))}")
    if report.refusals:
        out.append(f"refused at intake: {len(report.refusals)}")
        for r in report.refusals:
            out.append(f"  {p(r['time'][:19])}  {p(r['provider'])}/{p(r['dataset'] or '')}: {p(r['reason'])} "
                       f"{p(r['what'])}".rstrip())
    if report.blocked:
        out.append(f"stopped by agreement rules: {len(report.blocked)}")
        for b in report.blocked:
            out.append(f"  {p(b['time'][:19])}  {p(b['agreement'])} {p(b['recipient'] or '')}: {p(b['rule'])}")
    if report.punctuality:
        out.append("punctuality (extracts taken in; overdue: came late, still missing):")
        for r in report.punctuality:
            out.append(f"  {p(r['provider'])}: {r['taken_in']} taken in; {r['overdue']} overdue: {r['came_late']} came "
                       f"late, {r['still_missing']} still missing")
            for late in r["late"]:
                out.append(f"    {p(late['dataset'])} due {p(late['due_by'][:19])}: "
                           f"{'came ' + p(late['received_at'][:19]) if late['received_at'] else 'not received'}")
    if report.revocations:
        out.append(f"revoked: {len(report.revocations)}")
        for r in report.revocations:
            out.append(f"  {p(r['time'][:19])}  {p(r['agreement'])} -> {p(r['recipient'])} {p(r['delivery_id'])}: "
                       f"{p(r['reason'])}")
    return "\n".join(out) + "\n"


def as_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in report.lines:
        writer.writerow([printable(getattr(line, c)) for c in COLUMNS])
    return buf.getvalue()


def as_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def _esc(text: str) -> str:
    # Control characters are not text in HTML either, and the page may be printed to a terminal.
    return html.escape(printable(text))


def _bar_chart(volume: dict[str, int]) -> str:
    if not volume:
        return "<p>No deliveries in this period.</p>"
    top = max(volume.values()) or 1
    bar, gap, height = 28, 8, 160
    width = len(volume) * (bar + gap) + gap
    parts = [f'<svg role="img" aria-label="rows delivered per day" width="{width}" height="{height + 40}">']
    for i, (day, rows) in enumerate(volume.items()):
        h = int(height * rows / top)
        x = gap + i * (bar + gap)
        parts.append(f'<rect x="{x}" y="{height - h}" width="{bar}" height="{h}" fill="#2b6cb0"><title>{day}: {rows} rows'
                     f'</title></rect><text x="{x}" y="{height + 14}" font-size="9">{html.escape(day[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


DocsLink = Callable[[str], "str | None"]


def file_links(page: str) -> str | None:
    """A file:// URL, for a report read on the hub itself (printed, not written beside anything)."""
    path = Path(page)
    return path.as_uri() if path.is_absolute() else None


def links_relative_to(folder: str | os.PathLike) -> DocsLink:
    """Links relative to the folder the report is written to, so the report and the home can move together."""
    base = Path(folder).resolve()

    def link(page: str) -> str | None:
        if not Path(page).is_absolute():
            return None
        return quote(Path(os.path.relpath(page, base)).as_posix())

    return link


def _docs_link(page: str | None, docs_href: DocsLink) -> str:
    href = docs_href(page) if page else None
    if not href:
        return ""
    return f' <a class="bx-docs" href="{html.escape(href, quote=True)}">Data Docs</a>'


def _validations_html(report: Report, docs_href: DocsLink) -> str:
    esc = _esc
    if not report.validations:
        return "<p>No extracts validated in this period.</p>"
    head = "".join(f"<th>{c}</th>" for c in ("time (UTC)", "provider", "dataset", "file", "suite", "expectations",
                                             "outcome", "validation"))
    rows = "".join(
        f"<tr><td>{esc(str(v['time'])[:19])}</td><td>{esc(str(v['provider']))}</td><td>{esc(str(v['dataset']))}</td>"
        f"<td>{esc(str(v['source']))}</td><td>{esc(str(v['suite']))}</td>"
        f"<td>{'met' if v['success'] else 'not met'}</td><td>{esc(v['outcome'] or 'in progress')}</td>"
        f"<td>{_docs_link(v['data_docs'], docs_href).strip() or 'no page'}</td></tr>"
        for v in report.validations)
    return f'<table class="bx-validations"><tr>{head}</tr>{rows}</table>'


def as_html(report: Report, *, docs_href: DocsLink = file_links) -> str:
    """The report as one HTML page; `docs_href` turns a Data Docs page's path into the link to it."""
    esc = _esc
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(getattr(l, c)))}</td>" for c in COLUMNS) + "</tr>" for l in report.lines)
    quarantined = "".join(
        f"<li>{esc(q['time'][:19])} {esc(q['provider'])}/{esc(q['dataset'])}/{esc(q['source'])}: "
        f"{esc(', '.join(q['reasons']))}{_docs_link(q.get('data_docs'), docs_href)}</li>" for q in report.quarantines)
    refused = "".join(f"<li>{esc(r['time'][:19])} {esc(r['provider'])}/{esc(r['dataset'] or '')}: {esc(r['reason'])} "
                      f"{esc(r['what'])}</li>" for r in report.refusals)
    blocked = "".join(f"<li>{esc(b['time'][:19])} {esc(b['agreement'])} {esc(b['recipient'] or '')}: {esc(b['rule'])}</li>"
                      for b in report.blocked)
    revoked = "".join(f"<li>{esc(r['time'][:19])} {esc(r['agreement'])} &rarr; {esc(r['recipient'])} "
                      f"{esc(r['delivery_id'])}: {esc(r['reason'])}</li>" for r in report.revocations)
    punctual = "".join(
        f"<tr><td>{esc(r['provider'])}</td><td>{r['taken_in']}</td><td>{r['overdue']}</td><td>{r['came_late']}</td>"
        f"<td>{r['still_missing']}</td></tr>" for r in report.punctuality)
    period = f"{report.period_from or 'the beginning'} to {report.period_to or 'now'}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>borderx audit report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#edf2f7}}</style></head><body>
<h1>What was shared, {esc(period)}</h1>
<h2>Rows delivered per day</h2>{_bar_chart(report.volume_by_day)}
<h2>Deliveries by agreement and recipient</h2><table><tr>{head}</tr>{body}</table>
<h2>Validations ({len(report.validations)})</h2>{_validations_html(report, docs_href)}
<h2>Quarantined extracts ({len(report.quarantines)})</h2><ul>{quarantined}</ul>
<h2>Refused at intake ({len(report.refusals)})</h2><ul>{refused}</ul>
<h2>Stopped by agreement rules ({len(report.blocked)})</h2><ul>{blocked}</ul>
<h2>Revoked deliveries ({len(report.revocations)})</h2><ul>{revoked}</ul>
<h2>Punctuality of providers</h2><table><tr><th>provider</th><th>extracts taken in</th><th>overdue</th>
<th>came late</th><th>still missing</th></tr>{punctual}</table>
</body></html>
"""


FORMATS = {"table": as_table, "json": as_json, "csv": as_csv, "html": as_html}


def render(report: Report, fmt: str, out: str | os.PathLike | None = None) -> str:
    """The report in `fmt`; an HTML report written to `out` links the Data Docs pages relative to it."""
    if fmt == "html" and out is not None:
        return as_html(report, docs_href=links_relative_to(Path(out).resolve().parent))
    return FORMATS[fmt](report)


def render_pages(report: Report, home) -> list[str]:
    """Renders the Data Docs pages the report links that are still only their source (a passing file's page
    is rendered on first need), so that its links open; returns a line for each that could not be rendered.
    Only pages inside HOME/datadocs/ or HOME/quarantine/ are rendered."""
    from borderx.errors import PageSourceError
    from borderx.validation.datadocs import PAGE_SUFFIX, ensure_page

    folders = [Path(os.path.abspath(f)) for f in (home.datadocs, home.quarantine)]
    problems = []
    for page in sorted(report.data_docs()):
        path = Path(os.path.abspath(page))
        if path.exists() or not any(path.is_relative_to(f) for f in folders) or not path.name.endswith(PAGE_SUFFIX):
            continue
        try:
            ensure_page(path)
        except (PageSourceError, OSError) as exc:
            problems.append(f"{page}: not rendered ({exc if isinstance(exc, PageSourceError) else type(exc).__name__})")
    return problems


def trace(events: Iterable[dict], delivery_id: str) -> list[dict]:
    """Every event of one delivery, from the receipt of its source to the bucket."""
    events = list(events)
    own = [e for e in events if e["details"].get("delivery_id") == delivery_id]
    if not own:
        return []
    source = own[0]["details"]["source_sha256"]
    return [e for e in events
            if e["details"].get("delivery_id") == delivery_id
            or (e["details"].get("source_sha256") == source and "delivery_id" not in e["details"])]
