"""`borderx s3-intake setup`: the bucket announces agencies' uploads to the queues the S3 intake trigger reads."""

from __future__ import annotations

import argparse
import sys

from borderx.cli.common import EXIT_FAILED, EXIT_OK, _home_arg, _needs, _s3_args
from borderx.text import printable

DESCRIPTION = """\
Agencies whose config has intake.s3_prefix upload extracts to s3://BUCKET/PREFIX/DATASET/FILE.
This command makes the bucket send an event for every object created under each such prefix to
one SQS queue per agency (BUCKET-intake-AGENCY), which the borderx_s3_intake DAG watches, so an
upload reaches intake within seconds. It creates what is missing, lets only this bucket write
to the queues, and replaces only borderx's own notification rules on the bucket.

Run it once, and again after an agency's s3_prefix changes. Without it, uploads are still
copied in, by the DAG's 15-minute sweep. An endpoint without SQS (MinIO) has only the sweep.
"""

EPILOG = """\
examples:
  borderx s3-intake setup --home /srv/borderx
  borderx s3-intake setup --home demo-home --s3-endpoint http://127.0.0.1:5000
"""


def register(sub) -> None:
    p = sub.add_parser("s3-intake", help="S3 upload intake: set up the bucket's event notifications",
                       description="Intake from S3 uploads. See `borderx s3-intake setup --help`.")
    inner = p.add_subparsers(dest="s3_intake_command", metavar="ACTION", required=True)
    s = inner.add_parser("setup", help="make the bucket announce uploads to one SQS queue per agency",
                         description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _home_arg(s)
    _s3_args(s)
    s.set_defaults(func=cmd_setup)
    _needs(s, "hub")


def cmd_setup(args) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from borderx.exchange import Runtime
    from borderx.bucket.client import failure
    from borderx.intake.sources.s3_uploads import intake_prefixes, setup_notifications, sqs_client

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket).prepare()
    prefixes = intake_prefixes(rt.config)
    if not prefixes:
        print("no agency has intake.s3_prefix in its config: nothing to set up")
        return EXIT_OK
    try:
        queues = setup_notifications(rt.s3, sqs_client(rt.target), rt.target.bucket, prefixes)
    except (BotoCoreError, ClientError) as exc:
        # The same wording as a failed publish: which bucket, which endpoint, which error code, never a request.
        why = failure(rt.s3, f"notifications of bucket {rt.target.bucket}", exc)
        print(printable(f"borderx s3-intake setup: {why}"), file=sys.stderr)
        return EXIT_FAILED
    for agency, url in sorted(queues.items()):
        print(printable(f"{agency}: s3://{rt.target.bucket}/{prefixes[agency]} -> {url}"))
    return EXIT_OK

