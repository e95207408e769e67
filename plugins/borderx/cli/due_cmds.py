"""`borderx due`: which extracts are due, received or late."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from borderx.cli.common import EXIT_FAILED, EXIT_OK, _home_arg
from borderx.text import printable

DESCRIPTION = """\
Lists, for every agreement in force with a `due:` rule, each provider's extract of each dataset in two
periods: the one under way and the one before it. A period ends when its extract is due (due_by) and its
grace has passed (late_after); the next period begins there.

  received  an extract of that dataset from that provider was taken in during the period and not
            quarantined (received_at says when: the audit trail's `received` event)
  due       the period is under way and nothing was taken in yet; late once late_after has passed
  late      the period is over and nothing came; `overdue` is `recorded` once the daily check (or
            --record) has written its overdue event and told the provider and the operators

Read-only unless --record is given. Exit 1 when an extract is late, so a script or monitor can alert.
"""

EPILOG = """\
examples:
  borderx due --home /srv/borderx                 the table
  borderx due --home /srv/borderx --format json   the same as JSON, one object per provider and dataset
  borderx due --at 2026-12-06T00:00:00Z           as it stood, or will stand, at a moment (UTC)
  borderx due --record                            record late ones and send the notices (the daily DAG does)
"""

COLUMNS = ["agreement", "provider", "dataset", "status", "due_by", "late_after", "received_at", "rule"]


def register(sub) -> None:
    p = sub.add_parser("due", help="which extracts are due, received or late", description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _home_arg(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--at", type=_moment, metavar="ISO-8601", help="look at this moment instead of now (UTC)")
    p.add_argument("--record", action="store_true",
                   help="record an overdue event for each late extract not yet recorded, tell its provider and "
                   "the operators, and send waiting notices")
    p.set_defaults(func=cmd_due)


def _moment(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def cmd_due(args) -> int:
    from borderx import due
    from borderx.exchange import Runtime

    rt = Runtime.open(args.home)
    now = args.at or rt.clock()
    if args.record:
        from borderx import notices

        rt.prepare()
        due.record_overdue(rt, now)
        notices.drain(rt)
    rows = due.check(rt.config, rt.trail.events(), now)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(table(rows), end="")
    return EXIT_FAILED if any(r.status == "late" for r in rows) else EXIT_OK


def table(rows) -> str:
    if not rows:
        return "no agreement in force says when an extract is due (add due: to an agreement)\n"
    cells = [COLUMNS] + [[printable(_cell(r, c)) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    late = sum(r.status == "late" for r in rows)
    out += ["", f"{late} late" + (" (see README: reading borderx due)" if late else "")]
    return "\n".join(out) + "\n"


def _cell(row, column: str) -> str:
    value = getattr(row, column)
    if column == "status" and row.status == "late":
        return "late, recorded" if row.recorded else "late"
    return "-" if value is None else str(value)

