"""Rejected extracts: kept byte for byte, each beside a report that says why and what to do."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borderx.home import Home


@dataclass(frozen=True)
class Reason:
    rule: str
    message: str
    column: str | None = None
    rows: list[int] = field(default_factory=list)
    count: int | None = None
    gate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "column": self.column, "rows": self.rows,
                "count": self.count, "gate": self.gate}


HINTS = {
    "duplicate": "This content was already received; nothing more to do unless you meant to send another file.",
    "unreadable": "Save the extract as UTF-8 CSV with one header row and the same number of fields on every line.",
    "small-cells": "Aggregate further (wider periods or fewer breakdowns) until every non-zero count reaches the "
                   "agreement's minimum cell size, then send the file again.",
    "no-agreement-in-force": "No active agreement allows this exchange today; ask the hub operator.",
    "gate": "The file carries what looks like a direct identifier (a name, document number, date of birth, "
            "contact detail or tax number). Remove it at source; the hub never forwards such data.",
}
EXPECTATION_HINT = "Correct the values in the rows listed (the row numbers count data rows from 1)."

ADVICE = (
    "Nothing from this file was published. Correct the file and drop the corrected version into the "
    "same intake folder; this copy stays here for the record."
)


def place_beside(folder: Path, name: str, tag: str) -> Path:
    """A free path for `name` in `folder`; a second file of the same name gets the tag in its name."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.exists():
        return target
    stem, dot, ext = name.partition(".")
    return folder / f"{stem}.{tag}{dot}{ext}"


def quarantine(
    home: Home,
    *,
    source: Path,
    agency: str,
    dataset: str,
    sha256: str | None,
    reasons: list[Reason],
    validation: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Moves `source` into quarantine unchanged and writes its JSON and text reports; returns the new path."""
    now = now or dt.datetime.now(dt.timezone.utc)
    folder = home.quarantine / agency / dataset
    target = place_beside(folder, source.name, (sha256 or now.strftime("%Y%m%dT%H%M%S"))[:12])
    # os.replace keeps the inode: the bytes cannot change on the way, and it is atomic on one file system.
    try:
        os.replace(source, target)
    except OSError:
        shutil.copy2(source, target)
        os.unlink(source)
    docs = Path(validation["data_docs"]) if validation and validation.get("data_docs") else None
    docs_page = None
    if docs is not None and docs.exists():
        docs_page = target.with_name(target.name + ".validation.html")
        os.replace(docs, docs_page)
        with contextlib.suppress(OSError):
            docs.parent.rmdir()
        validation = {**validation, "data_docs": str(docs_page)}
    report = {
        "file": target.name,
        "data_docs": docs_page.name if docs_page else None,
        "original_name": source.name,
        "agency": agency,
        "dataset": dataset,
        "sha256": sha256,
        "quarantined_at": now.isoformat().replace("+00:00", "Z"),
        "reasons": [r.to_dict() for r in reasons],
        "validation": validation,
        "what_to_do": ADVICE,
    }
    target.with_name(target.name + ".report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    target.with_name(target.name + ".report.txt").write_text(render_text(report), encoding="utf-8")
    return target


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"QUARANTINED: {report['original_name']}",
        f"agency {report['agency']}, dataset {report['dataset']}, at {report['quarantined_at']}",
        f"sha256 {report['sha256'] or '-'}",
        "",
        f"{len(report['reasons'])} problem(s):",
    ]
    for i, r in enumerate(report["reasons"], start=1):
        where = []
        if r["column"]:
            where.append(f"column {r['column']}")
        if r["rows"]:
            shown = ", ".join(str(n) for n in r["rows"])
            more = "" if not r["count"] or r["count"] <= len(r["rows"]) else f" (and {r['count'] - len(r['rows'])} more)"
            where.append(f"rows {shown}{more}")
        elif r["count"]:
            where.append(f"{r['count']} rows")
        lines.append(f"  {i}. [{r['rule']}] {r['message']}" + (f" ({'; '.join(where)})" if where else ""))
    if report.get("data_docs"):
        lines += ["", f"The Great Expectations validation of this file: {report['data_docs']} (open it in a browser)."]
    lines += ["", "What to do:"]
    for hint in dict.fromkeys(_hint(r) for r in report["reasons"]):
        lines.append(f"  - {hint}")
    lines += ["", report["what_to_do"], ""]
    return "\n".join(lines)


def _hint(reason: dict[str, Any]) -> str:
    if reason.get("gate"):
        return HINTS["gate"]
    return HINTS.get(reason["rule"], EXPECTATION_HINT)
