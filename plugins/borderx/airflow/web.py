"""The auditor's page: what was shared in a period, and whether the audit trail is intact.

A small FastAPI app over one home's audit trail. Airflow's API server mounts it at /borderx through
`borderx.airflow.plugin`; `create_app` builds it on its own too (tests, or `uvicorn --factory`).

    /                   the report of `borderx audit report --format html`, with the trail's verdict
    /api/report         the same report as JSON (`borderx audit report --format json`)
    /api/verify         the verdict as JSON: the hash chain, the bucket's signed heads and their time stamps,
                        and what they were checked against (bucket, endpoint, hub key fingerprint)
    /delivery/{id}      one delivery traced from intake to bucket
    /docs/{path}        a Great Expectations Data Docs page the trail names, under HOME/datadocs/ or
                        HOME/quarantine/ (nothing else in the home is served); a passing file's page not
                        yet rendered is rendered from its source, in memory

Every page takes the period filter as query parameters: from, to (YYYY-MM-DD), agreement, provider,
recipient. The app only reads: it never appends to the trail and never needs a private key.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from borderx.audit import report as audit_report
from borderx.audit.trail import AuditTrail
from borderx.errors import PageSourceError
from borderx.home import Home
from borderx.validation.datadocs import page_html, source_of

FILTERS = ("agreement", "provider", "recipient")

# The report's own markup carries inline CSS and SVG and no script; nothing else may load. Framing is
# allowed from the same origin only, which is how Airflow's UI shows the page.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# A Data Docs page is GX's HTML, and a page in quarantine sits beside what an agency sent: it is shown
# sandboxed (its own opaque origin, no script, nothing fetched), which leaves GX's tables readable.
DOCS_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
}
DOCS_FOLDERS = ("datadocs", "quarantine")
DOCS_SUFFIX = ".validation.html"

STYLE = """<style>
.bx-nav{font-size:.9em;margin-bottom:1em}
.bx-verdict{font-size:1.2em;font-weight:bold;padding:.6em 1em;border-radius:4px;margin:1em 0}
.bx-intact{color:#fff;background:#1a7f37}
.bx-broken{color:#fff;background:#c62828}
.bx-filter{display:flex;flex-wrap:wrap;gap:.5em 1.2em;align-items:center}
.bx-filter input{margin-left:.3em}
.bx-error{color:#c62828;font-weight:bold}
code{font-size:.9em}
.bx-trace td:nth-child(-n+4){white-space:nowrap}
</style>"""


class QueryError(ValueError):
    """A filter the page cannot use, in words for the auditor."""


class TrailUnreadable(ValueError):
    """A line of the trail is not a JSON event, so no report can be built from it."""

    def __init__(self, line: int):
        self.line = line
        super().__init__(f"line {line} of the audit trail is not a JSON event; no report can be built from it")


@dataclass(frozen=True)
class Period:
    since: dt.date | None = None
    until: dt.date | None = None
    agreement: str | None = None
    provider: str | None = None
    recipient: str | None = None

    @classmethod
    def from_query(cls, query) -> Period:
        def day(name: str) -> dt.date | None:
            raw = (query.get(name) or "").strip()
            if not raw:
                return None
            try:
                return dt.date.fromisoformat(raw)
            except ValueError:
                raise QueryError(f"{name}: {raw!r} is not a date (YYYY-MM-DD)") from None

        since, until = day("from"), day("to")
        if since and until and since > until:
            raise QueryError(f"from {since} is after to {until}")
        # An empty form field means "any", as the command line's missing option does.
        return cls(since, until, **{f: (query.get(f) or "").strip() or None for f in FILTERS})

    def build(self, events) -> audit_report.Report:
        return audit_report.build(events, since=self.since, until=self.until, agreement=self.agreement,
                                  provider=self.provider, recipient=self.recipient)

    def as_query(self) -> dict[str, str]:
        values = {"from": self.since.isoformat() if self.since else "", "to": self.until.isoformat() if self.until else ""}
        values.update({f: getattr(self, f) or "" for f in FILTERS})
        return values


def read_events(trail: AuditTrail) -> list[dict]:
    """Every event of the trail; a line that is not JSON stops the report and is named."""
    if not trail.path.exists():
        return []
    events = []
    with open(trail.path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                raise TrailUnreadable(lineno) from None
            if not isinstance(event, dict) or not isinstance(event.get("details"), dict) or "time" not in event:
                raise TrailUnreadable(lineno)
            events.append(event)
    return events


def verdict(home: Home) -> dict[str, Any]:
    """The checks of `borderx audit verify` on the home's trail against the bucket's signed heads and time
    stamps, with the hub key and bucket the home's settings (or BORDERX_BUCKET, BORDERX_S3_ENDPOINT_URL) give.
    Never intact without a signed head."""
    from botocore.exceptions import BotoCoreError, ClientError

    from borderx.audit.verify_cmd import Asked, Audit
    from borderx.bucket.client import failure
    from borderx.errors import BorderxError, ConfigError

    def failed(error: str, checked: dict | None = None, broken=None, problems=()) -> dict[str, Any]:
        return {"intact": False, "events": None, "heads": None, "broken": broken, "error": error,
                "problems": list(problems), "notes": [], "checked": checked}

    try:
        audit = Audit.open(home.root, Asked())
    except ConfigError as exc:
        return failed("the configuration does not load, so the signed heads cannot be checked: "
                      + "; ".join(str(p) for p in exc.problems))
    checked = audit.checked_against()
    try:
        found = audit.run(dt.datetime.now(dt.timezone.utc))
    except (ClientError, BotoCoreError) as exc:
        return failed(f"{failure(audit.s3, audit.heads_where, exc)}; the trail was not verified against its heads",
                      checked)
    except (BorderxError, ValueError, KeyError, TypeError) as exc:
        # A signed head that is not even readable is as much a failed check as one that does not verify.
        return failed(f"the signed heads in {audit.heads_where} cannot be checked ({exc.__class__.__name__}: {exc})",
                      checked)
    intact = found.ok and found.heads > 0
    error = None
    if not intact and found.broken is None:
        error = "; ".join(found.problems) or f"no signed head in {audit.heads_where}: nothing anchors the trail"
    return {"intact": intact, "events": found.events, "heads": found.heads,
            "broken": asdict(found.broken) if found.broken else None, "error": error,
            "problems": found.problems, "notes": found.notes, "checked": checked}


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _verdict_html(v: dict[str, Any]) -> str:
    if v["intact"]:
        banner = (f'<p class="bx-verdict bx-intact" id="verdict">Audit trail intact: {_esc(v["events"])} events, '
                  f'hash chain recomputed, {_esc(v["heads"])} signed head(s) match</p>')
    elif v["broken"]:
        b = v["broken"]
        banner = (f'<p class="bx-verdict bx-broken" id="verdict">Audit trail broken at line {_esc(b["line"])} '
                  f'(seq {_esc(b["seq"])}): {_esc(b["reason"])}</p>')
    else:
        banner = f'<p class="bx-verdict bx-broken" id="verdict">Audit trail not verified: {_esc(v["error"])}</p>'
    c = v.get("checked")
    against = (f'<p class="bx-checked">Checked against {_esc(c["bucket"])} at {_esc(c["endpoint"])} with hub key '
               f'<code>{_esc(c["hub_key"])}</code> ({_esc(c["hub_key_from"])}); time stamps '
               f'{_esc(c["time_stamps"])}</p>') if c else ""
    items = [f'<li class="bx-error">{_esc(p)}</li>' for p in v.get("problems", [])]
    items += [f"<li>{_esc(n)}</li>" for n in v.get("notes", [])]
    return banner + against + (f'<ul class="bx-findings">{"".join(items)}</ul>' if items else "")


def docs_name(home: Home, page: str) -> str | None:
    """The page's path under the home, as /docs/ serves it, or None for a path the app never serves."""
    try:
        rel = PurePosixPath(Path(page).relative_to(home.root).as_posix())
    except ValueError:
        return None
    if len(rel.parts) < 2 or rel.parts[0] not in DOCS_FOLDERS or not rel.name.endswith(DOCS_SUFFIX):
        return None
    return rel.as_posix()


def docs_links(home: Home, prefix: str = "docs/"):
    """Links from the app's pages to the Data Docs it serves."""
    def link(page: str) -> str | None:
        name = docs_name(home, page)
        return prefix + quote(name) if name else None

    return link


def docs_page(home: Home, asked: str, named: set[str]) -> Path | None:
    """The page for /docs/`asked`, if it is a Data Docs page that the trail names and that lies, symlinks
    resolved, inside HOME/datadocs/ or HOME/quarantine/, written or still to be rendered from its source there;
    None for anything else."""
    if "\\" in asked or "\x00" in asked:
        return None
    rel = PurePosixPath(asked)
    if rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts) or rel.as_posix() != asked:
        return None
    if len(rel.parts) < 2 or rel.parts[0] not in DOCS_FOLDERS or not rel.name.endswith(DOCS_SUFFIX):
        return None
    if asked not in named:
        return None
    try:
        folder = (home.root / rel.parts[0]).resolve(strict=True)
        page = home.root.joinpath(*rel.parts)
        # A passing file's page may still be only its source, beside where the page goes.
        on_disk = page if os.path.lexists(page) else source_of(page)
        resolved = on_disk.resolve(strict=True)
    except OSError:
        return None
    if not resolved.is_relative_to(folder) or not resolved.is_file():
        return None
    return resolved if on_disk == page else resolved.with_name(page.name)


def _filter_form(period: Period) -> str:
    values = period.as_query()
    fields = [("from", "From", "date"), ("to", "To", "date"), ("agreement", "Agreement", "text"),
              ("provider", "Provider", "text"), ("recipient", "Recipient", "text")]
    inputs = "".join(f'<label>{label}<input type="{kind}" name="{name}" value="{_esc(values[name])}"></label>'
                     for name, label, kind in fields)
    return (f'<form class="bx-filter" method="get" action="./">{inputs}<button type="submit">Show</button> '
            f'<a href="./">all time</a></form>')


def _deliveries_html(report: audit_report.Report) -> str:
    items = "".join(
        f'<li><a href="delivery/{quote(d, safe="")}"><code>{_esc(d)}</code></a> '
        f'{_esc(line.agreement)}: {_esc(line.provider)} &rarr; {_esc(line.recipient)} ({_esc(line.dataset)})</li>'
        for line in report.lines for d in line.delivery_ids)
    return f"<h2>Deliveries, traced from intake to bucket ({sum(len(l.delivery_ids) for l in report.lines)})</h2>" \
           f"<ul>{items}</ul>"


def _inject(document: str, head: str, top: str, bottom: str) -> str:
    """Puts the page's own parts around the report's HTML, which is the command line's, unchanged."""
    document = document.replace("</head>", head + "</head>", 1) if "</head>" in document else head + document
    document = document.replace("<body>", "<body>" + top, 1) if "<body>" in document else top + document
    return document.replace("</body>", bottom + "</body>", 1) if "</body>" in document else document + bottom


def _page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f'<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}'
            f'td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}th{{background:#edf2f7}}</style>'
            f'{STYLE}</head><body>{body}</body></html>\n')


def _html(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers=SECURITY_HEADERS)


def _json(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=SECURITY_HEADERS)


def create_app(home: str | Path | None = None, *, dependencies: Sequence[Any] = ()) -> FastAPI:
    """The auditor's app over `home`, or over BORDERX_HOME read at each request when `home` is None.

    `dependencies` run before every route; the Airflow plugin passes its authentication there.
    """
    fixed = Home.resolve(home) if home is not None else None

    def current_home() -> Home:
        return fixed or Home.resolve()

    app = FastAPI(title="Border Exchange audit", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=list(dependencies))

    @app.get("/", response_class=HTMLResponse)
    def report_page(request: Request) -> HTMLResponse:
        h = current_home()
        nav = '<p class="bx-nav">Border Exchange &middot; audit &middot; <a href="api/report">JSON</a> &middot; ' \
              '<a href="api/verify">verdict as JSON</a></p>'
        try:
            period = Period.from_query(request.query_params)
        except QueryError as exc:
            return _html(_page("borderx audit report", f'{nav}<p class="bx-error">{_esc(exc)}</p>'
                                                       f'{_filter_form(Period())}'), 400)
        v = verdict(h)
        top = nav + _verdict_html(v) + _filter_form(period)
        try:
            report = period.build(read_events(AuditTrail(h.audit)))
        except TrailUnreadable as exc:
            return _html(_page("borderx audit report", f'{top}<p class="bx-error">{_esc(exc)}</p>'))
        return _html(_inject(audit_report.as_html(report, docs_href=docs_links(h)), STYLE, top,
                             _deliveries_html(report)))

    @app.get("/api/report")
    def report_json(request: Request) -> JSONResponse:
        try:
            period = Period.from_query(request.query_params)
        except QueryError as exc:
            return _json({"detail": str(exc)}, 400)
        try:
            events = read_events(AuditTrail(current_home().audit))
        except TrailUnreadable as exc:
            return _json({"detail": str(exc), "line": exc.line}, 409)
        return _json(period.build(events).to_dict())

    @app.get("/api/verify")
    def verify_json() -> JSONResponse:
        return _json(verdict(current_home()))

    @app.get("/docs/{page:path}", response_class=HTMLResponse)
    def data_docs(page: str) -> HTMLResponse:
        h = current_home()
        try:
            named = {n for p in audit_report.build(read_events(AuditTrail(h.audit))).data_docs()
                     if (n := docs_name(h, p))}
        except TrailUnreadable as exc:
            return _html(_page("Data Docs", f'<p class="bx-error">{_esc(exc)}</p>'), 409)
        found = docs_page(h, page, named)
        try:
            # A passing file's page is rendered from its source when first asked for; nothing is written here.
            document = page_html(found) if found is not None else None
        except FileNotFoundError:
            document = None
        except PageSourceError as exc:
            return _html(_page("Data Docs", f'<p class="bx-error">{_esc(exc)}</p>'), 500)
        if document is None:
            return _html(_page("Data Docs", f"<p>No Data Docs page <code>{_esc(page)}</code> in the audit trail.</p>"),
                         404)
        return HTMLResponse(document, headers=DOCS_HEADERS)

    @app.get("/delivery/{delivery_id}", response_class=HTMLResponse)
    def delivery_page(delivery_id: str) -> HTMLResponse:
        back = '<p class="bx-nav"><a href="../">&larr; audit report</a></p>'
        h = current_home()
        try:
            every = read_events(AuditTrail(h.audit))
            events = audit_report.trace(every, delivery_id)
        except TrailUnreadable as exc:
            return _html(_page(f"delivery {delivery_id}", f'{back}<p class="bx-error">{_esc(exc)}</p>'), 409)
        if not events:
            return _html(_page(f"delivery {delivery_id}", f"{back}<p>No delivery <code>{_esc(delivery_id)}</code> "
                                                          f"in the audit trail.</p>"), 404)
        rows = "".join(
            f"<tr><td>{_esc(e.get('seq'))}</td><td>{_esc(str(e.get('time', ''))[:19])}</td><td>{_esc(e.get('type'))}</td>"
            f"<td>{_esc(_actor(e.get('actor')))}</td><td>{_facts(e.get('details', {}))}</td></tr>"
            for e in events)
        source = events[0]["details"].get("source_sha256")
        pages = [v["data_docs"] for v in audit_report.build(every).validations
                 if v["source_sha256"] == source and v["data_docs"]]
        link = docs_links(h, "../docs/")(pages[-1]) if pages else None
        validation = (f'<p>Validation of its source: <a class="bx-docs" href="{_esc(link)}">Data Docs</a></p>'
                      if link else "")
        body = (f"{back}<h1>Delivery <code>{_esc(delivery_id)}</code></h1>{validation}"
                f"<table class=\"bx-trace\"><tr><th>seq</th><th>time (UTC)</th><th>event</th><th>by</th><th>details</th></tr>{rows}</table>")
        return _html(_page(f"delivery {delivery_id}", body))

    return app


def _actor(actor: Any) -> str:
    if not isinstance(actor, dict):
        return str(actor or "")
    return ", ".join(f"{k}={v}" for k, v in actor.items() if k != "hub") or "hub"


def _facts(details: dict) -> str:
    parts = []
    for key, value in details.items():
        shown = value if isinstance(value, (str, int, float, bool)) or value is None else json.dumps(value, sort_keys=True)
        parts.append(f"<b>{_esc(key)}</b>={_esc(shown)}")
    return "<br>".join(parts)
