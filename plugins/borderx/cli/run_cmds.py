"""`borderx run | demo`: one pass over the intake folders, or the whole tour on a local S3 endpoint."""

from __future__ import annotations

import sys

from borderx.cli.common import EXIT_FAILED, EXIT_OK, _home_arg, _needs, _s3_args
from borderx.text import printable


def register(sub) -> None:
    p = sub.add_parser("run", help="process what waits in the intake folders",
                       description="Processes every complete file waiting in the intake folders with the same "
                       "code the Airflow tasks call, and prints a summary. Exit 1 if any file was quarantined.")
    _home_arg(p)
    _s3_args(p)
    p.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    p.add_argument("--settle", type=float, metavar="SECONDS",
                   help="a file must be unchanged this long to count as complete (default: settings)")
    p.add_argument("--wait", action="store_true",
                   help="wait for files still within their settle time, and process them too")
    p.set_defaults(func=cmd_run)
    _needs(p, "hub")

    p = sub.add_parser("demo", help="the one-command tour on a local S3 endpoint",
                       description="Creates sample agencies, keys, agreements and extracts (good and bad) in the "
                       "home, starts a local S3 endpoint on 127.0.0.1 unless --s3-endpoint is given, runs one "
                       "exchange and prints what was published, quarantined and audited, and how a recipient "
                       "decrypts and verifies.")
    p.add_argument("--home", metavar="DIR", default=None, help="demo home (default ./demo-home)")
    _s3_args(p)
    p.set_defaults(func=cmd_demo)
    _needs(p, "hub", "demo")


def cmd_run(args) -> int:
    from borderx.exchange import Runtime, run_once
    from borderx.cli.summary import print_run_summary

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    summary = run_once(rt, settle_seconds=args.settle, wait=args.wait, on_progress=lambda line: print(printable(line), file=sys.stderr))
    print_run_summary(rt, summary)
    return EXIT_OK if summary.ok else EXIT_FAILED


def cmd_demo(args) -> int:
    from borderx.dev.demo import run_demo

    return run_demo(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
