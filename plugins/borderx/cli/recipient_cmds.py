"""`borderx fetch | verify | decrypt`: the recipient's side, on the deliveries meant for it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from borderx.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _home_arg, _s3_args, _wrap
from borderx.text import printable


def _recipient_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub-key", metavar="FILE",
                        help="the hub's key: an allowed_signers file or a .pub line (default: the home's settings)")
    _home_arg(parser)
    _s3_args(parser)


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds above 0")
    return seconds


def register(sub) -> None:
    p = sub.add_parser("fetch", help="download, verify and decrypt a recipient's deliveries",
                       description=_wrap("Lists the recipient's deliveries in the bucket (deliveries/*/RECIPIENT/...), "
                       "skips those fetched into DIR before, and for each other one: downloads it into a private "
                       "folder inside DIR, checks the hub's signature over manifest.json, that the manifest names this "
                       "recipient, agreement, dataset and delivery id where it was found, that data.csv.age "
                       "(or data.parquet.age) has "
                       "the manifest's SHA-256, decrypts it with the identity and checks the row count. Only then "
                       "DIR/AGREEMENT/DATASET/YYYY-MM-DD_DELIVERY_ID/ appears, holding data.csv or data.parquet (0600), "
                       "manifest.json and its signature. A refused delivery leaves nothing in DIR and is reported "
                       "with the check it failed: signature, manifest-mismatch, data-hash, decrypt or row-count. "
                       "Exit 1 if any was refused. DIR/.borderx-fetched.json remembers what was fetched, so a delivery "
                       "folder moved away is not fetched again. With --watch, the bucket is looked at again and "
                       "again (every --interval seconds while deliveries come, slowing down to --max-interval "
                       "while none do), each new delivery fetched as it appears and reported once; Ctrl-C or "
                       "SIGTERM stops it (exit 0), dropping a delivery under way whole. With --queue, the recipient's SQS queue "
                       "that the bucket announces new objects to brings each look forward."),
                       epilog="examples:\n"
                       "  borderx fetch --recipient NA-MHAISS --identity ~/keys/age.key --hub-key allowed_signers \\\n"
                       "      --out inbox --s3-endpoint https://s3.example.org --bucket borderx\n"
                       "  borderx fetch --recipient NA-MHAISS --identity age.key --out inbox --agreement DSA-2026-001 "
                       "--since 2026-11-01\n"
                       "  borderx fetch --recipient NA-MHAISS --identity age.key --hub-key allowed_signers --out inbox "
                       "--watch --interval 60\n\n"
                       "The hub key comes from --hub-key (an allowed_signers file, as for ssh-keygen -Y verify, or "
                       "the hub's .pub), else from the home's config/settings.yaml.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipient", required=True, metavar="ID", help="your agency id, e.g. NA-MHAISS")
    p.add_argument("--identity", required=True, metavar="FILE", help="your age identity file (age-keygen format)")
    p.add_argument("--out", required=True, metavar="DIR", help="where fetched deliveries go (created 0700)")
    p.add_argument("--agreement", metavar="ID", help="only this agreement's deliveries")
    p.add_argument("--since", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="only deliveries of that day or later")
    p.add_argument("--watch", action="store_true",
                   help="keep fetching new deliveries as they appear, until Ctrl-C or SIGTERM (then exit 0)")
    p.add_argument("--interval", type=_seconds, metavar="SECONDS",
                   help="with --watch: seconds between looks after one that found something (default 30)")
    p.add_argument("--max-interval", type=_seconds, metavar="SECONDS",
                   help="with --watch: each empty look doubles the wait, up to this (default 600)")
    p.add_argument("--queue", metavar="URL",
                   help="with --watch: your SQS queue the bucket announces new deliveries to; an announcement "
                   "brings the next look forward")
    _recipient_args(p)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("verify", help="check one delivery's signature, manifest and data hash, without decrypting",
                       description=_wrap("Checks one delivery, in the bucket or in a local folder holding data.csv.age, "
                       "manifest.json and manifest.json.sig: the hub's signature, the manifest against the "
                       "delivery's path (when the path has the bucket layout) and against --recipient, and the "
                       "SHA-256 and size of data.csv.age. Nothing is decrypted; no identity is needed. "
                       "Exit 1 naming the check that failed."),
                       epilog="examples:\n"
                       "  borderx verify s3://borderx/deliveries/DSA-2026-001/NA-MHAISS/traveller_flows/2026/11/28/ID/ "
                       "--hub-key allowed_signers\n"
                       "  borderx verify demo-home/bucket/deliveries/DSA-2026-001/NA-MHAISS/traveller_flows/2026/11/28/ID "
                       "--hub-key demo-home/keys/allowed_signers",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("delivery", metavar="PREFIX_OR_DIR", help="s3://BUCKET/deliveries/.../DELIVERY_ID/ or a local folder")
    p.add_argument("--recipient", metavar="ID", help="also require the manifest to name this recipient")
    _recipient_args(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("decrypt", help="verify one delivery, then decrypt it to a file",
                       description=_wrap("Verifies one delivery as `borderx verify` does, decrypts data.csv.age "
                       "(or data.parquet.age) with the "
                       "identity and checks the row count against the manifest; FILE (0600) appears only when all "
                       "of that succeeded. Given a data.csv.age inside a delivery folder, the folder is verified. "
                       "With --no-verify and an .age file, only decrypts (like age -d)."),
                       epilog="examples:\n"
                       "  borderx decrypt inbox-raw/ID --identity age.key --hub-key allowed_signers --out flows.csv\n"
                       "  borderx decrypt some.csv.age --no-verify --identity age.key --out some.csv",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("delivery", metavar="DIR_OR_FILE", help="a delivery folder, s3://... prefix, or (with --no-verify) an .age file")
    p.add_argument("--identity", required=True, metavar="FILE", help="age identity file (age-keygen format)")
    p.add_argument("--out", required=True, metavar="FILE", help="plaintext CSV to write (0600, replaced only on success)")
    p.add_argument("--no-verify", action="store_true", help="decrypt an .age file without any signature or hash check")
    p.add_argument("--recipient", metavar="ID", help="also require the manifest to name this recipient")
    _recipient_args(p)
    p.set_defaults(func=cmd_decrypt)


def _recipient_usage(func):
    """Inputs a recipient command cannot use (identity, hub key, prefix) are wrong usage: exit 2."""
    import functools

    @functools.wraps(func)
    def run(args) -> int:
        from borderx.recipient import RecipientUsageError

        try:
            return func(args)
        except RecipientUsageError as exc:
            print(printable(f"borderx: {exc}"), file=sys.stderr)
            return EXIT_USAGE

    return run


@_recipient_usage
def cmd_fetch(args) -> int:
    from borderx import recipient as rc
    from borderx.home import Home

    watching = [f"--{name.replace('_', '-')}" for name in ("interval", "max_interval", "queue")
                if getattr(args, name) is not None]
    if watching and not args.watch:
        raise rc.RecipientUsageError(f"{', '.join(watching)}: only with --watch")
    home = Home.resolve(args.home)
    keys, identities = rc.hub_keys(args.hub_key, home), rc.load_identities(args.identity)
    target = rc.resolve_target(home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    if args.watch:
        return _watch(args, target, identities, keys)
    with rc.cleanup_on_terminate():
        report = rc.fetch(target.client(), target.bucket, args.recipient, identities, keys, Path(args.out),
                          agreement=args.agreement, since=args.since, progress=rc.Progress(sys.stderr),
                          on_outcome=rc.print_outcome)
    rc.print_summary(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def _watch(args, target, identities, keys) -> int:
    import contextlib

    from borderx import recipient as rc

    report = rc.WatchReport()
    notices = rc.QueueNotices(target.sqs(), args.queue) if args.queue else None
    print(printable(f"watching s3://{target.bucket}/deliveries/*/{args.recipient}/ for new deliveries into "
                    f"{args.out} (Ctrl-C stops)"), file=sys.stderr, flush=True)
    with rc.StopOnSignal() as stop, contextlib.suppress(KeyboardInterrupt):
        rc.watch(target.client(), target.bucket, args.recipient, identities, keys, Path(args.out),
                 pace=rc.Pace(args.interval or rc.Pace.interval, args.max_interval or rc.Pace.longest),
                 stop=stop, report=report,
                 agreement=args.agreement, since=args.since, progress=rc.Progress(sys.stderr),
                 on_outcome=rc.print_outcome, notices=notices)
    print(f"stopped: {report.fetched} fetched, {report.refused} refused, {report.revoked} revoked while watching",
          file=sys.stderr, flush=True)
    return EXIT_OK


@_recipient_usage
def cmd_verify(args) -> int:
    from borderx import recipient as rc
    from borderx.home import Home

    home = Home.resolve(args.home)
    keys = rc.hub_keys(args.hub_key, home)
    target = rc.resolve_target(home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    source = rc.resolve_source(args.delivery, target.bucket)
    try:
        verified = rc.verify_source(source, keys, s3=target.client(), recipient=args.recipient)
    except rc.DeliveryRefused as exc:
        print(printable(f"REFUSED  {source}: {exc}"))
        return EXIT_FAILED
    print(printable(f"ok  {rc.describe(verified)}"))
    return EXIT_OK


@_recipient_usage
def cmd_decrypt(args) -> int:
    from borderx import recipient as rc
    from borderx.home import Home

    home = Home.resolve(args.home)
    identities = rc.load_identities(args.identity)
    target = rc.resolve_target(home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    source = rc.resolve_source(args.delivery, target.bucket, verify=not args.no_verify)
    keys = None if args.no_verify else rc.hub_keys(args.hub_key, home)
    try:
        rows, verified = rc.decrypt_source(source, identities, Path(args.out), keys=keys, s3=target.client(),
                                           recipient=args.recipient, progress=rc.Progress(sys.stderr))
    except rc.DeliveryRefused as exc:
        print(printable(f"REFUSED  {source}: {exc}"))
        return EXIT_FAILED
    print(printable(f"decrypted {args.out}" + (f"  ({rc.describe(verified)})" if verified else "  (not verified)")))
    return EXIT_OK
