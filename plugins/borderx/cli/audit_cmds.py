"""`borderx audit verify | report | show`: the hash-chained trail, and what it says was shared."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from borderx.cli.common import EXIT_FAILED, EXIT_OK, _home_arg, _s3_args, _usage
from borderx.text import printable


def register(sub) -> None:
    p = sub.add_parser("audit", help="verify the audit trail, report what was shared")
    audit = p.add_subparsers(dest="audit_command", metavar="ACTION")
    v = audit.add_parser("verify", help="recompute the hash chain and check it against the signed heads in the bucket",
                         description="Recomputes the hash chain of DIR/audit/trail.jsonl (or, with --from-bucket, of "
                         "the segments in s3://BUCKET/audit/segments/), then checks every signed head in "
                         "s3://BUCKET/audit/heads/ (or, with --local, the copies in DIR/audit/heads/): its signature "
                         "with the hub key, the event it names, the head before it, and its RFC 3161 time stamp. "
                         "Exit 1 naming the first event that does not fit, a gap in the heads, a rollback below "
                         "the head kept in --state, or unanchored events older than audit.max_unanchored_age.")
    _home_arg(v)
    _s3_args(v)
    v.add_argument("--hub-key", metavar="FILE", type=Path,
                   help="the hub's public key as you hold it: an allowed_signers line or a .pub file "
                   "(default: the key the home's settings give, trusted as the hub gives it)")
    v.add_argument("--state", metavar="FILE", type=Path,
                   help="your memory of the newest head accepted; a later verify finding an older one fails")
    v.add_argument("--tsa-ca", metavar="FILE", type=Path,
                   help="the TSA's CA certificate (PEM) to check time stamps with (default: the home's settings)")
    where = v.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="check the local copies of the heads; do not ask the bucket")
    where.add_argument("--from-bucket", action="store_true",
                       help="read the events from the bucket's segments: no access to the hub's disk needed")
    v.set_defaults(func=cmd_audit_verify)
    r = audit.add_parser("report", help="what was shared, by whom, with whom, under which agreement",
                         description="Per agreement, provider, recipient and dataset: deliveries, rows and suppressed "
                         "cells; plus quarantined extracts with their reasons and exchanges stopped by agreement "
                         "rules, in the period given.")
    _home_arg(r)
    r.add_argument("--from", dest="since", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="first day")
    r.add_argument("--to", dest="until", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="last day")
    r.add_argument("--agreement")
    r.add_argument("--provider")
    r.add_argument("--recipient")
    r.add_argument("--format", choices=["table", "json", "csv", "html"], default="table")
    r.add_argument("--out", metavar="FILE", help="write there instead of standard output")
    r.set_defaults(func=cmd_audit_report)
    sh = audit.add_parser("show", help="trace one delivery from intake to bucket")
    _home_arg(sh)
    sh.add_argument("delivery_id", metavar="DELIVERY_ID")
    sh.set_defaults(func=cmd_audit_show)
    p.set_defaults(func=lambda args: _usage(p))


def cmd_audit_verify(args) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from borderx.audit import verify_cmd
    from borderx.bucket.client import failure

    audit = verify_cmd.Audit.open(args.home, verify_cmd.Asked.from_args(args))
    try:
        audit.run(dt.datetime.now(dt.timezone.utc))
    except (ClientError, BotoCoreError) as exc:
        # The bucket could not be read, so nothing was verified: a failed check, not a crash.
        print(printable(f"{failure(audit.s3, audit.heads_where, exc)}; the trail was not verified against its heads"),
              file=sys.stderr)
        return EXIT_FAILED
    for line in audit.report():
        print(printable(line))
    return EXIT_OK if audit.ok else EXIT_FAILED


def cmd_audit_report(args) -> int:
    from borderx.audit import report as audit_report
    from borderx.audit.trail import AuditTrail
    from borderx.home import Home

    home = Home.resolve(args.home)
    report = audit_report.build(AuditTrail(home.audit).events(), since=args.since, until=args.until,
                                agreement=args.agreement, provider=args.provider, recipient=args.recipient)
    if args.format == "html":
        for problem in audit_report.render_pages(report, home):
            print(printable(f"Data Docs page {problem}"), file=sys.stderr)
    text = audit_report.render(report, args.format, args.out)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(printable(f"wrote {args.out}"), file=sys.stderr)
    else:
        print(text, end="")
    return EXIT_OK


def cmd_audit_show(args) -> int:
    from borderx.audit import report as audit_report
    from borderx.audit.trail import AuditTrail
    from borderx.home import Home

    events = audit_report.trace(AuditTrail(Home.resolve(args.home).audit).events(), args.delivery_id)
    if not events:
        print(printable(f"no delivery {args.delivery_id} in the audit trail"), file=sys.stderr)
        return EXIT_FAILED
    for e in events:
        d = e["details"]
        facts = ", ".join(f"{k}={v}" for k, v in d.items()
                          if k in ("agreement", "recipient", "rows_out", "rows", "success", "sha256", "keys", "file"))
        print(printable(f"{e['seq']:>6}  {e['time'][:19]}  {e['type']:<18} {facts}"))
    return EXIT_OK
