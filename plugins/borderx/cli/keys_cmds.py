"""`borderx keys generate | list | rotate`: agency key pairs and their validity."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from borderx.cli.common import EXIT_OK, _home_arg, _usage, _wrap
from borderx.text import printable, printable_lines


def _days(value: str) -> int:
    days = int(value)
    if days < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return days


def register(sub) -> None:
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


def cmd_keys_generate(args) -> int:
    from borderx.keys import generate_keys

    keys = generate_keys(args.agency, Path(args.out))
    print(printable(f"# wrote {keys.age_identity_path} and {keys.ssh_private_path} "
                    "(private: keep them off the hub's disk)"))
    print(printable(f"# public parts for config/agencies/{args.agency}.yaml:"))
    print(printable_lines(keys.config_snippet(dt.date.today())), end="")
    return EXIT_OK


def cmd_keys_list(args) -> int:
    from borderx.home import Home
    from borderx.keys import format_key_table, list_keys

    print(printable_lines(format_key_table(list_keys(Home.resolve(args.home).root))), end="")
    return EXIT_OK


def cmd_keys_rotate(args) -> int:
    from borderx.home import Home
    from borderx.keys import rotate_keys

    rotation = rotate_keys(Home.resolve(args.home).root, args.agency, Path(args.out), overlap_days=args.overlap_days)
    print(printable(f"# wrote {rotation.keys.age_identity_path} and {rotation.keys.ssh_private_path} "
                    f"(private: hand them to {args.agency}, keep them off the hub's disk)"))
    print(printable_lines(rotation.describe()), end="")
    return EXIT_OK
