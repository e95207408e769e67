"""Human-readable summaries of a run, for the terminal."""

from __future__ import annotations

import math

from borderx.exchange import RunSummary, Runtime
from borderx.text import printable


def print_run_summary(rt: Runtime, summary: RunSummary, out=None) -> None:
    import sys

    out = out or sys.stdout
    w = lambda line="": print(printable(line), file=out)  # noqa: E731
    w(f"{summary.files} file(s) found in {rt.home.intake}")
    if summary.settling:
        w(f"{len(summary.settling)} file(s) still being written or within their settle time, complete in "
          f"{math.ceil(min(summary.settling))} to {math.ceil(max(summary.settling))} s; `borderx run --once --wait` waits for them")
    w(f"published: {len(summary.published)} delivery(ies) to s3://{rt.target.bucket}"
      + (f" at {rt.target.endpoint_url}" if rt.target.endpoint_url else ""))
    for d in summary.published:
        extra = f", {d['suppressed_rows']} small-cell rows suppressed" if d.get("suppressed_rows") else ""
        w(f"  {d['agreement']} -> {d['recipient']}: {d['rows']} rows{extra}")
        w(f"    {d['prefix']}")
    if summary.already_published:
        w(f"already published (nothing new): {len(summary.already_published)}")
        for d in summary.already_published:
            w(f"  {d['agreement']} -> {d['recipient']}: {d['prefix']}")
    w(f"quarantined: {len(summary.quarantined)} file(s)")
    for q in summary.quarantined:
        w(f"  {q['agency']}/{q['dataset']}/{q['name']}")
        for r in q["reasons"]:
            where = f" [{r['column']}]" if r.get("column") else ""
            w(f"    - {r['rule']}{where}: {r['message']}")
        w(f"    report: {q['report']}")
    n = summary.notices
    if n and any(n.values()):
        held = "" if rt.config.settings.notices.smtp else "; e-mail waits until settings name a server (notices.smtp)"
        w(f"notices: {n['sent']} sent, {n['failed'] + n['waiting']} waiting in {rt.home.state / 'outbox'}"
          f"{held}")
