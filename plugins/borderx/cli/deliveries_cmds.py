"""`borderx deliveries list | revoke` and `borderx access policy`: what is in the bucket, and who may reach it."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from borderx.cli.common import EXIT_OK, _home_arg, _needs, _s3_args, _usage
from borderx.text import printable


def register(sub) -> None:
    # One function per group: each group's usage lambda must close over its own parser.
    _register_deliveries(sub)
    _register_access(sub)


def _register_deliveries(sub) -> None:
    p = sub.add_parser("deliveries", help="list deliveries in the bucket, revoke one")
    dl = p.add_subparsers(dest="deliveries_command", metavar="ACTION")
    ls = dl.add_parser("list", help="deliveries with their state (complete, unfinished, revoked)")
    _home_arg(ls)
    _s3_args(ls)
    ls.add_argument("--agreement")
    ls.add_argument("--recipient")
    ls.add_argument("--dataset")
    ls.add_argument("--from", dest="since", type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    ls.add_argument("--to", dest="until", type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.set_defaults(func=cmd_deliveries_list)
    _needs(ls, "hub")
    rv = dl.add_parser("revoke", help="remove a delivery and leave a signed tombstone in its place",
                       description="Deletes the delivery's signature (so it stops existing at once), manifest and "
                       "data, writes tombstone.json and its SSH signature (namespace borderx-tombstone) in the "
                       "delivery's folder, and records a revoked event in the audit trail.")
    _home_arg(rv)
    _s3_args(rv)
    rv.add_argument("delivery_id", metavar="DELIVERY_ID")
    rv.add_argument("--reason", required=True, help="why, for the recipient and the auditor")
    rv.set_defaults(func=cmd_deliveries_revoke)
    _needs(rv, "hub")
    p.set_defaults(func=lambda args: _usage(p))


def _register_access(sub) -> None:
    p = sub.add_parser("access", help="bucket and user policies derived from config")
    access = p.add_subparsers(dest="access_command", metavar="ACTION")
    ap = access.add_parser("policy", help="write IAM/MinIO user policies and an S3 bucket policy",
                           description="Writes one identity policy per agency user (borderx-AGENCY) and one for the "
                           "hub (borderx-hub), usable as IAM user policies or MinIO policies, and bucket-policy.json "
                           "for AWS S3. Recipients may list and read only deliveries/*/RECIPIENT/...; providers may "
                           "write only intake/PROVIDER/...; only the hub writes deliveries and audit heads.")
    _home_arg(ap)
    ap.add_argument("--bucket", help="bucket (env BORDERX_BUCKET; else settings)")
    ap.add_argument("--out", metavar="DIR", required=True, help="folder for the policy files")
    ap.add_argument("--principal-template", default="arn:aws:iam::123456789012:user/{user}",
                    help="how a user name becomes a principal in the bucket policy (default: %(default)s)")
    ap.set_defaults(func=cmd_access_policy)
    p.set_defaults(func=lambda args: _usage(p))


def cmd_deliveries_list(args) -> int:
    import json

    from borderx.bucket.deliveries import list_deliveries
    from borderx.exchange import Runtime

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    found = list_deliveries(rt.s3, rt.target.bucket, agreement=args.agreement, recipient=args.recipient,
                            dataset=args.dataset, since=args.since, until=args.until,
                            hub_keys=rt.config.settings.hub.signing_public_key)
    if args.format == "json":
        print(json.dumps([d.to_dict() for d in found], indent=2))
        return EXIT_OK
    for d in found:
        print(printable(f"{d.date}  {d.state:<10}  {d.agreement:<14} {d.recipient:<10} {d.dataset:<16} {d.delivery_id}  {d.size} B"))
    print(f"{len(found)} delivery(ies) in s3://{rt.target.bucket}/deliveries/", file=sys.stderr)
    return EXIT_OK


def cmd_deliveries_revoke(args) -> int:
    from borderx.audit.events import Revoked
    from borderx.bucket.deliveries import find, read_tombstone, revoke
    from borderx.crypto import sshsig
    from borderx.errors import BucketObjectError
    from borderx.exchange import Runtime

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket).prepare()
    delivery = find(rt.s3, rt.target.bucket, args.delivery_id)
    if delivery.state == "revoked":
        try:
            read_tombstone(rt.s3, rt.target.bucket, delivery.location, rt.config.settings.hub.signing_public_key)
        except (sshsig.SignatureError, BucketObjectError) as exc:
            # Only the hub's own tombstone for this delivery revokes it; one copied or planted there does not.
            print(printable(f"{exc}; revoking it now"), file=sys.stderr)
        else:
            print(printable(f"{args.delivery_id} was already revoked"), file=sys.stderr)
            return EXIT_OK
    tombstone = revoke(rt.s3, rt.target.bucket, delivery, reason=args.reason, signing_key=rt.signing_key,
                       hub_fingerprint=rt.hub_fingerprint, now=rt.clock())
    rt.trail.record(Revoked(delivery_id=delivery.delivery_id, agreement=delivery.agreement,
                            recipient=delivery.recipient, dataset=delivery.dataset, reason=args.reason,
                            tombstone=delivery.prefix + "tombstone.json"))
    from borderx.exchange import close_segment

    close_segment(rt)
    print(f"revoked {delivery.delivery_id}: s3://{rt.target.bucket}/{delivery.prefix}tombstone.json "
          f"({tombstone['revoked_at']})")
    return EXIT_OK


def cmd_access_policy(args) -> int:
    import os

    from borderx.bucket.access import write_policies
    from borderx.config.loader import load_config
    from borderx.home import Home

    config = load_config(Home.resolve(args.home).root)
    bucket = args.bucket or os.environ.get("BORDERX_BUCKET") or config.settings.s3.bucket
    for path in write_policies(config, bucket, Path(args.out), args.principal_template):
        print(path)
    return EXIT_OK
