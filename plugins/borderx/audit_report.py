"""What was shared, by whom, with whom, under which agreement, in a period: read from the audit trail."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable


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

    def to_dict(self) -> dict:
        return asdict(self)


def _in_period(event: dict, since: dt.date | None, until: dt.date | None) -> bool:
    day = dt.date.fromisoformat(event["time"][:10])
    return (since is None or day >= since) and (until is None or day <= until)


def build(events: Iterable[dict], *, since: dt.date | None = None, until: dt.date | None = None,
          agreement: str | None = None, provider: str | None = None, recipient: str | None = None) -> Report:
    events = [e for e in events if _in_period(e, since, until)]
    minimised = {e["details"]["delivery_id"]: e["details"] for e in events if e["type"] == "minimised"}
    suppressed = {e["details"]["delivery_id"]: e["details"] for e in events if e["type"] == "suppressed"}
    lines: dict[tuple, Line] = {}
    volume: dict[str, int] = defaultdict(int)

    def wanted(d: dict) -> bool:
        return all(want is None or d.get(key) == want
                   for key, want in (("agreement", agreement), ("provider", provider), ("recipient", recipient)))

    for e in events:
        d = e["details"]
        if e["type"] != "published" or not wanted(d):
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
         "source": e["details"]["source_name"], "reasons": e["details"]["reasons"]}
        for e in events
        if e["type"] == "quarantined" and (provider is None or e["details"]["provider"] == provider)
        and agreement is None and recipient is None
    ]
    blocked = [
        {"time": e["time"], "agreement": e["details"]["agreement"], "recipient": e["details"].get("recipient"),
         "rule": e["details"]["rule"]}
        for e in events if e["type"] == "blocked" and wanted({**e["details"], "recipient": e["details"].get("recipient")})
    ]
    revocations = [
        {"time": e["time"], "delivery_id": e["details"]["delivery_id"], "agreement": e["details"]["agreement"],
         "recipient": e["details"]["recipient"], "reason": e["details"]["reason"]}
        for e in events if e["type"] == "revoked" and wanted({**e["details"], "provider": provider})
    ]
    return Report(since.isoformat() if since else None, until.isoformat() if until else None,
                  sorted(lines.values(), key=lambda l: (l.agreement, l.provider, l.recipient, l.dataset)),
                  quarantines, blocked, dict(sorted(volume.items())), revocations)


COLUMNS = ["agreement", "provider", "recipient", "dataset", "deliveries", "rows", "suppressed_rows", "suppressed_count"]


def as_table(report: Report) -> str:
    rows = [COLUMNS] + [[str(getattr(line, c)) for c in COLUMNS] for line in report.lines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append(f"quarantined: {len(report.quarantines)}")
    for q in report.quarantines:
        out.append(f"  {q['time'][:19]}  {q['provider']}/{q['dataset']}/{q['source']}: {', '.join(q['reasons'])}")
    if report.blocked:
        out.append(f"stopped by agreement rules: {len(report.blocked)}")
        for b in report.blocked:
            out.append(f"  {b['time'][:19]}  {b['agreement']} {b['recipient'] or ''}: {b['rule']}")
    if report.revocations:
        out.append(f"revoked: {len(report.revocations)}")
        for r in report.revocations:
            out.append(f"  {r['time'][:19]}  {r['agreement']} -> {r['recipient']} {r['delivery_id']}: {r['reason']}")
    return "\n".join(out) + "\n"


def as_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line in report.lines:
        writer.writerow([getattr(line, c) for c in COLUMNS])
    return buf.getvalue()


def as_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


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


def as_html(report: Report) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(getattr(l, c)))}</td>" for c in COLUMNS) + "</tr>" for l in report.lines)
    quarantined = "".join(
        f"<li>{esc(q['time'][:19])} {esc(q['provider'])}/{esc(q['dataset'])}/{esc(q['source'])}: "
        f"{esc(', '.join(q['reasons']))}</li>" for q in report.quarantines)
    blocked = "".join(f"<li>{esc(b['time'][:19])} {esc(b['agreement'])} {esc(b['recipient'] or '')}: {esc(b['rule'])}</li>"
                      for b in report.blocked)
    revoked = "".join(f"<li>{esc(r['time'][:19])} {esc(r['agreement'])} &rarr; {esc(r['recipient'])} "
                      f"{esc(r['delivery_id'])}: {esc(r['reason'])}</li>" for r in report.revocations)
    period = f"{report.period_from or 'the beginning'} to {report.period_to or 'now'}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>borderx audit report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
th{{background:#edf2f7}}</style></head><body>
<h1>What was shared, {esc(period)}</h1>
<h2>Rows delivered per day</h2>{_bar_chart(report.volume_by_day)}
<h2>Deliveries by agreement and recipient</h2><table><tr>{head}</tr>{body}</table>
<h2>Quarantined extracts ({len(report.quarantines)})</h2><ul>{quarantined}</ul>
<h2>Stopped by agreement rules ({len(report.blocked)})</h2><ul>{blocked}</ul>
<h2>Revoked deliveries ({len(report.revocations)})</h2><ul>{revoked}</ul>
</body></html>
"""


FORMATS = {"table": as_table, "json": as_json, "csv": as_csv, "html": as_html}


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
