"""The `borderx` command: a thin front door onto the same functions the Airflow tasks call."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from borderx import __version__
from borderx.errors import BorderxError, ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Border Exchange: agencies drop extracts into intake folders; the hub validates them, cuts them
down to what each data-sharing agreement allows, encrypts them per recipient (age), signs a
manifest (SSH signature) and publishes them to S3, with every step in a hash-chained audit trail.

The deployment home (--home, env BORDERX_HOME, default the current folder) holds config/,
intake/, quarantine/, archive/ and audit/.

exit codes: 0 ok, 1 a check failed or something was rejected, 2 wrong usage
"""

EPILOG = """\
examples:
  borderx demo --home demo-home          the whole tour on a local S3 endpoint
  borderx check --home /srv/borderx      check config/ and expectations/
  borderx run --once --home /srv/borderx process what waits in the intake folders
  borderx keys generate ZA-DHA --out keys/ZA-DHA
  borderx keys list --home /srv/borderx  every agency key with its status
  borderx fetch --recipient NA-MHAISS --identity age.key --hub-key allowed_signers --out inbox
  borderx audit verify --home /srv/borderx
  borderx audit report --from 2026-11-01 --to 2026-11-30 --format html --out report.html
"""


def _home_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", metavar="DIR", help="deployment home (env BORDERX_HOME, default .)")


def _s3_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-endpoint", metavar="URL", help="S3 endpoint (env BORDERX_S3_ENDPOINT_URL; else settings)")
    parser.add_argument("--bucket", help="bucket (env BORDERX_BUCKET; else settings)")


def _recipient_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub-key", metavar="FILE",
                        help="the hub's key: an allowed_signers file or a .pub line (default: the home's settings)")
    _home_arg(parser)
    _s3_args(parser)


def _wrap(text: str) -> str:
    # These commands keep their examples as written, so their description is wrapped here instead.
    import textwrap

    return textwrap.fill(text, 100)


def _days(value: str) -> int:
    days = int(value)
    if days < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return days


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="borderx", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"borderx {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-v INFO, -vv DEBUG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="check config/ and expectations/; one line per problem",
                       description="Checks every file in config/ and the expectation suites they name. "
                       "Prints one line per problem as `file: field: what is wrong` and exits 1 if there is any.")
    _home_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("keys", help="generate, list and rotate agency keys")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION")
    g = keys.add_parser("generate", help="write an age identity and an SSH ed25519 key pair",
                        description="Writes DIR/age.key (age-keygen format) and DIR/ssh_ed25519(.pub), owner-only, "
                        "and prints the public parts to paste into config/agencies/AGENCY.yaml. Never overwrites.")
    g.add_argument("agency", metavar="AGENCY", help="agency id (or 'hub'), used as the key comment")
    g.add_argument("--out", metavar="DIR", required=True, help="folder for the key files (created 0700)")
    g.set_defaults(func=cmd_keys_generate)
    kl = keys.add_parser("list", help="every agency's age and ssh keys with their validity and status",
                         description=_wrap("Prints one row per key in config/agencies/: kind (age, age-pq, ssh), the key "
                         "(age recipients shortened, ssh keys as fingerprints), valid from / to, the revoked flag "
                         "and a status: current, expiring (ends within 30 days), not yet valid, expired, revoked. "
                         "Works even when `borderx check` fails because keys ran out."),
                         epilog="example:\n  borderx keys list --home /srv/borderx",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _home_arg(kl)
    kl.set_defaults(func=cmd_keys_list)
    kr = keys.add_parser("rotate", help="new keys for an agency, its current keys ending after an overlap",
                         description=_wrap("Generates a new age identity and ssh ed25519 key pair into DIR (as `keys "
                         "generate`), adds their public parts to config/agencies/AGENCY.yaml valid from today, and "
                         "sets valid_to = today + overlap on the agency's currently valid keys (hybrid post-quantum "
                         "age keys are left as they are). During the overlap deliveries are encrypted to the old and "
                         "the new age key, so the agency can switch identities without missing one. The YAML is "
                         "rewritten: field order and the header comment stay, other comments are dropped."),
                         epilog="example:\n  borderx keys rotate NA-MHAISS --out keys/NA-MHAISS-2027 --overlap-days 30\n"
                         "  then hand DIR's private files to the agency and run `borderx check`",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _home_arg(kr)
    kr.add_argument("agency", metavar="AGENCY", help="agency id, as in config/agencies/")
    kr.add_argument("--out", metavar="DIR", required=True, help="folder for the new private key files (created 0700)")
    kr.add_argument("--overlap-days", type=_days, default=30, metavar="N",
                    help="days the current keys stay valid beside the new ones (default: %(default)s)")
    kr.set_defaults(func=cmd_keys_rotate)
    p.set_defaults(func=lambda args: _usage(p))

    p = sub.add_parser("fetch", help="download, verify and decrypt a recipient's deliveries",
                       description=_wrap("Lists the recipient's deliveries in the bucket (deliveries/*/RECIPIENT/...), "
                       "skips those already in DIR, and for each other one: downloads it into a private folder "
                       "inside DIR, checks the hub's signature over manifest.json, that the manifest names this "
                       "recipient, agreement, dataset and delivery id where it was found, that data.csv.age has "
                       "the manifest's SHA-256, decrypts it with the identity and checks the row count. Only then "
                       "DIR/AGREEMENT/DATASET/YYYY-MM-DD_DELIVERY_ID/ appears, holding data.csv (0600), "
                       "manifest.json and its signature. A refused delivery leaves nothing in DIR and is reported "
                       "with the check it failed: signature, manifest-mismatch, data-hash, decrypt or row-count. "
                       "Exit 1 if any was refused."),
                       epilog="examples:\n"
                       "  borderx fetch --recipient NA-MHAISS --identity ~/keys/age.key --hub-key allowed_signers \\\n"
                       "      --out inbox --s3-endpoint https://s3.example.org --bucket borderx\n"
                       "  borderx fetch --recipient NA-MHAISS --identity age.key --out inbox --agreement DSA-2026-001 "
                       "--since 2026-11-01\n\n"
                       "The hub key comes from --hub-key (an allowed_signers file, as for ssh-keygen -Y verify, or "
                       "the hub's .pub), else from the home's config/settings.yaml.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipient", required=True, metavar="ID", help="your agency id, e.g. NA-MHAISS")
    p.add_argument("--identity", required=True, metavar="FILE", help="your age identity file (age-keygen format)")
    p.add_argument("--out", required=True, metavar="DIR", help="where fetched deliveries go (created 0700)")
    p.add_argument("--agreement", metavar="ID", help="only this agreement's deliveries")
    p.add_argument("--since", type=dt.date.fromisoformat, metavar="YYYY-MM-DD", help="only deliveries of that day or later")
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
                       description=_wrap("Verifies one delivery as `borderx verify` does, decrypts data.csv.age with the "
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

    p = sub.add_parser("run", help="process what waits in the intake folders",
                       description="Processes every complete file waiting in the intake folders with the same "
                       "code the Airflow tasks call, and prints a summary. Exit 1 if any file was quarantined.")
    _home_arg(p)
    _s3_args(p)
    p.add_argument("--once", action="store_true", required=True, help="one pass, then exit")
    p.add_argument("--settle", type=float, metavar="SECONDS",
                   help="a file must be unchanged this long to count as complete (default: settings)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the one-command tour on a local S3 endpoint",
                       description="Creates sample agencies, keys, agreements and extracts (good and bad) in the "
                       "home, starts a local S3 endpoint on 127.0.0.1 unless --s3-endpoint is given, runs one "
                       "exchange and prints what was published, quarantined and audited, and how a recipient "
                       "decrypts and verifies.")
    p.add_argument("--home", metavar="DIR", default=None, help="demo home (default ./demo-home)")
    _s3_args(p)
    p.set_defaults(func=cmd_demo)

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
    rv = dl.add_parser("revoke", help="remove a delivery and leave a signed tombstone in its place",
                       description="Deletes the delivery's signature (so it stops existing at once), manifest and "
                       "data, writes tombstone.json and its SSH signature (namespace borderx-tombstone) in the "
                       "delivery's folder, and records a revoked event in the audit trail.")
    _home_arg(rv)
    _s3_args(rv)
    rv.add_argument("delivery_id", metavar="DELIVERY_ID")
    rv.add_argument("--reason", required=True, help="why, for the recipient and the auditor")
    rv.set_defaults(func=cmd_deliveries_revoke)
    p.set_defaults(func=lambda args: _usage(p))

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

    p = sub.add_parser("audit", help="verify the audit trail, report what was shared")
    audit = p.add_subparsers(dest="audit_command", metavar="ACTION")
    v = audit.add_parser("verify", help="recompute the hash chain and check it against the signed heads in the bucket",
                         description="Recomputes the hash chain of DIR/audit/trail.jsonl, then checks every signed "
                         "head in s3://BUCKET/audit/heads/ (or, with --local, the copies in DIR/audit/heads/). "
                         "Exit 1 naming the first event that does not fit.")
    _home_arg(v)
    _s3_args(v)
    v.add_argument("--local", action="store_true", help="check the local copies of the heads; do not ask the bucket")
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
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def cmd_check(args) -> int:
    from borderx.config.loader import check_config
    from borderx.home import Home

    home = Home.resolve(args.home)
    problems = check_config(home.root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {home.config}", file=sys.stderr)
        return EXIT_FAILED
    print(f"ok: {home.config}")
    return EXIT_OK


def cmd_keys_generate(args) -> int:
    from borderx.keys import generate_keys

    keys = generate_keys(args.agency, Path(args.out))
    print(f"# wrote {keys.age_identity_path} and {keys.ssh_private_path} (private: keep them off the hub's disk)")
    print(f"# public parts for config/agencies/{args.agency}.yaml:")
    print(keys.config_snippet(dt.date.today()), end="")
    return EXIT_OK


def cmd_keys_list(args) -> int:
    from borderx.home import Home
    from borderx.keys import format_key_table, list_keys

    print(format_key_table(list_keys(Home.resolve(args.home).root)), end="")
    return EXIT_OK


def cmd_keys_rotate(args) -> int:
    from borderx.home import Home
    from borderx.keys import rotate_keys

    rotation = rotate_keys(Home.resolve(args.home).root, args.agency, Path(args.out), overlap_days=args.overlap_days)
    print(f"# wrote {rotation.keys.age_identity_path} and {rotation.keys.ssh_private_path} "
          f"(private: hand them to {args.agency}, keep them off the hub's disk)")
    print(rotation.describe(), end="")
    return EXIT_OK


def _recipient_usage(func):
    """Inputs a recipient command cannot use (identity, hub key, prefix) are wrong usage: exit 2."""
    import functools

    @functools.wraps(func)
    def run(args) -> int:
        from borderx.recipient import RecipientUsageError

        try:
            return func(args)
        except RecipientUsageError as exc:
            print(f"borderx: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run


@_recipient_usage
def cmd_fetch(args) -> int:
    from borderx import recipient as rc
    from borderx.home import Home

    home = Home.resolve(args.home)
    keys, identities = rc.hub_keys(args.hub_key, home), rc.load_identities(args.identity)
    target = rc.resolve_target(home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    with rc.cleanup_on_terminate():
        report = rc.fetch(target.client(), target.bucket, args.recipient, identities, keys, Path(args.out),
                          agreement=args.agreement, since=args.since, progress=rc.Progress(sys.stderr),
                          on_outcome=rc.print_outcome)
    rc.print_summary(report)
    return EXIT_OK if report.ok else EXIT_FAILED


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
        print(f"REFUSED  {source}: {exc}")
        return EXIT_FAILED
    print(f"ok  {rc.describe(verified)}")
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
        print(f"REFUSED  {source}: {exc}")
        return EXIT_FAILED
    print(f"decrypted {args.out}" + (f"  ({rc.describe(verified)})" if verified else "  (not verified)"))
    return EXIT_OK


def cmd_run(args) -> int:
    from borderx.exchange import Runtime, run_once
    from borderx.report import print_run_summary

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    summary = run_once(rt, settle_seconds=args.settle, on_progress=lambda line: print(line, file=sys.stderr))
    print_run_summary(rt, summary)
    return EXIT_OK if summary.ok else EXIT_FAILED


def cmd_demo(args) -> int:
    from borderx.demo import run_demo

    return run_demo(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)


def cmd_deliveries_list(args) -> int:
    import json

    from borderx.deliveries import list_deliveries
    from borderx.exchange import Runtime

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    found = list_deliveries(rt.s3, rt.target.bucket, agreement=args.agreement, recipient=args.recipient,
                            dataset=args.dataset, since=args.since, until=args.until)
    if args.format == "json":
        print(json.dumps([d.to_dict() for d in found], indent=2))
        return EXIT_OK
    for d in found:
        print(f"{d.date}  {d.state:<10}  {d.agreement:<14} {d.recipient:<10} {d.dataset:<16} {d.delivery_id}  {d.size} B")
    print(f"{len(found)} delivery(ies) in s3://{rt.target.bucket}/deliveries/", file=sys.stderr)
    return EXIT_OK


def cmd_deliveries_revoke(args) -> int:
    from borderx.deliveries import find, revoke
    from borderx.exchange import Runtime

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    delivery = find(rt.s3, rt.target.bucket, args.delivery_id)
    if delivery.state == "revoked":
        print(f"{args.delivery_id} was already revoked", file=sys.stderr)
        return EXIT_OK
    tombstone = revoke(rt.s3, rt.target.bucket, delivery, reason=args.reason, signing_key=rt.signing_key,
                       hub_fingerprint=rt.hub_fingerprint, now=rt.clock())
    rt.trail.append("revoked", delivery_id=delivery.delivery_id, agreement=delivery.agreement,
                    recipient=delivery.recipient, dataset=delivery.dataset, reason=args.reason,
                    tombstone=delivery.prefix + "tombstone.json")
    from borderx.exchange import close_segment

    close_segment(rt)
    print(f"revoked {delivery.delivery_id}: s3://{rt.target.bucket}/{delivery.prefix}tombstone.json "
          f"({tombstone['revoked_at']})")
    return EXIT_OK


def cmd_access_policy(args) -> int:
    import os

    from borderx.access import write_policies
    from borderx.config.loader import load_config
    from borderx.home import Home

    config = load_config(Home.resolve(args.home).root)
    bucket = args.bucket or os.environ.get("BORDERX_BUCKET") or config.settings.s3.bucket
    for path in write_policies(config, bucket, Path(args.out), args.principal_template):
        print(path)
    return EXIT_OK


def cmd_audit_verify(args) -> int:
    from borderx.anchors import verify
    from borderx.exchange import Runtime

    rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
    hub_key = rt.config.settings.hub.signing_public_key
    verdict = verify(rt.trail, hub_key, None if args.local else rt.s3, rt.target.bucket)
    where = "local copies" if args.local else f"s3://{rt.target.bucket}/audit/heads/"
    if verdict.broken:
        print(f"{rt.trail.path}: {verdict.broken}")
        return EXIT_FAILED
    print(f"ok: {verdict.events} events in {rt.trail.path}, chain intact, {verdict.heads} signed head(s) in {where} match")
    return EXIT_OK


def cmd_audit_report(args) -> int:
    from borderx import audit_report
    from borderx.audit import AuditTrail
    from borderx.home import Home

    trail = AuditTrail(Home.resolve(args.home).audit)
    report = audit_report.build(trail.events(), since=args.since, until=args.until, agreement=args.agreement,
                                provider=args.provider, recipient=args.recipient)
    text = audit_report.FORMATS[args.format](report)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return EXIT_OK


def cmd_audit_show(args) -> int:
    from borderx import audit_report
    from borderx.audit import AuditTrail
    from borderx.home import Home

    events = audit_report.trace(AuditTrail(Home.resolve(args.home).audit).events(), args.delivery_id)
    if not events:
        print(f"no delivery {args.delivery_id} in the audit trail", file=sys.stderr)
        return EXIT_FAILED
    for e in events:
        d = e["details"]
        facts = ", ".join(f"{k}={v}" for k, v in d.items()
                          if k in ("agreement", "recipient", "rows_out", "rows", "success", "sha256", "keys", "file"))
        print(f"{e['seq']:>6}  {e['time'][:19]}  {e['type']:<18} {facts}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    if not getattr(args, "func", None):
        return _usage(parser)
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("nothing was run: fix the configuration first (borderx check)", file=sys.stderr)
        return EXIT_FAILED
    except BorderxError as exc:
        print(f"borderx: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
