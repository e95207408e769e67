"""`borderx keys generate | list | request | accept`: agency key pairs, their validity, and changing them on the
agency's own signed request."""

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
    p = sub.add_parser("keys", help="generate and list agency keys; change them on an agency's signed request")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION")
    g = keys.add_parser("generate", help="write an age identity and an SSH ed25519 key pair (on the agency's machine)",
                        description="Writes DIR/age.key (age-keygen format) and DIR/ssh_ed25519(.pub), owner-only, "
                        "and prints the public parts: to paste into config/agencies/AGENCY.yaml at first enrolment, "
                        "or to put in a `keys request` later. Run it where the agency keeps its keys, never on the "
                        "hub. Never overwrites.")
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
    _register_request(keys)
    _register_accept(keys)
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


def _register_request(keys) -> None:
    from borderx.agency_keys.request import DEFAULT_EXPIRES_DAYS, DEFAULT_OVERLAP_DAYS

    kq = keys.add_parser("request", help="an agency asks the hub for new keys, signed with its current key",
                         description=_wrap("Run by the agency on its own machine (no hub home needed). Writes REQUEST "
                         "(JSON: the agency, the new public keys, the keys to revoke, a creation time, an expiry and a "
                         "random id) and REQUEST.sig, its SSH signature by the agency's current signing key (namespace "
                         "borderx-key-request). Send both files to the hub operator, who runs `borderx keys accept`. "
                         "Only public keys are in the request; the private keys never leave the agency."),
                         epilog="example:\n  borderx keys generate NA-MHAISS --out ~/borderx-keys-2027\n"
                         "  borderx keys request NA-MHAISS --age-recipient age1... \\\n"
                         "      --ssh-key ~/borderx-keys-2027/ssh_ed25519.pub \\\n"
                         "      --sign-with ~/borderx-keys/ssh_ed25519 --out na-mhaiss-keys.json\n"
                         "  ssh-keygen -Y verify -f allowed_signers -I NA-MHAISS -n borderx-key-request \\\n"
                         "      -s na-mhaiss-keys.json.sig < na-mhaiss-keys.json",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    kq.add_argument("agency", metavar="AGENCY", help="the agency's id, as the hub knows it")
    kq.add_argument("--age-recipient", action="append", default=[], metavar="AGE1...",
                    help="a new age recipient (repeatable)")
    kq.add_argument("--ssh-key", action="append", default=[], metavar="NEW.pub",
                    help="a new ssh ed25519 public key file, or the key line itself (repeatable)")
    kq.add_argument("--revoke", action="append", default=[], metavar="FINGERPRINT_OR_KEY",
                    help="revoke one of the agency's keys at once: an age recipient, an ssh fingerprint "
                    "(SHA256:...) or public key line (repeatable)")
    kq.add_argument("--sign-with", required=True, metavar="CURRENT_KEY",
                    help="the agency's current ssh ed25519 private key (unencrypted), as the hub knows its public "
                    "part; or its .pub file, to sign REQUEST with ssh-keygen -Y sign afterwards")
    kq.add_argument("--out", required=True, metavar="REQUEST",
                    help="the request file; its signature goes to REQUEST.sig")
    kq.add_argument("--overlap-days", type=_days, default=DEFAULT_OVERLAP_DAYS, metavar="N",
                    help="days the current keys stay valid beside the new ones, from acceptance (default: %(default)s)")
    kq.add_argument("--valid-to", type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
                    help="last day of the new keys (default: open-ended)")
    kq.add_argument("--expires-in-days", type=_days, default=DEFAULT_EXPIRES_DAYS, metavar="N",
                    help="the hub refuses the request after this many days (default: %(default)s)")
    kq.set_defaults(func=cmd_keys_request)


def _register_accept(keys) -> None:
    ka = keys.add_parser("accept", help="the hub verifies an agency's key request and applies it",
                         description=_wrap("Run by the hub operator on the hub's home. Checks REQUEST.sig against the "
                         "agency's signing keys in config/agencies/ (not revoked, inside their validity on the day), "
                         "refuses a request that expired, was already accepted, or is larger than a request can be, "
                         "then writes the new keys into config/agencies/AGENCY.yaml valid from today, ends the "
                         "current keys of the same kind after the request's overlap, marks revoked keys, and records "
                         "a keys-changed event in the audit trail."),
                         epilog="example:\n  borderx keys accept na-mhaiss-keys.json --home /srv/borderx",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _home_arg(ka)
    ka.add_argument("request", metavar="REQUEST", help="the request file made by `borderx keys request`")
    ka.add_argument("--signature", metavar="FILE", help="its signature (default: REQUEST.sig)")
    ka.set_defaults(func=cmd_keys_accept)


def _public_key_line(value: str) -> str:
    from borderx.errors import KeyRequestError

    if value.startswith("ssh-"):
        return value
    try:
        text = Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyRequestError(f"--ssh-key {value}: cannot be read ({exc.__class__.__name__})") from None
    if "PRIVATE KEY" in text:
        raise KeyRequestError(f"--ssh-key {value}: holds a private key; give its .pub file")
    return text.strip()


def cmd_keys_request(args) -> int:
    from borderx.agency_keys import NAMESPACE, make_request, write_request
    from borderx.crypto import sshsig
    from borderx.errors import KeyMaterialError

    try:
        key = Path(args.sign_with).read_bytes()
    except OSError as exc:
        raise KeyMaterialError(f"--sign-with {args.sign_with}: cannot be read ({exc.strerror})") from None
    try:
        # A public key line: the agency signs with ssh-keygen itself (passphrase, ssh-agent, token).
        signer = key.decode("ascii").strip() if key.startswith(b"ssh-ed25519 ") else sshsig.load_private_key(key)
    except ValueError as exc:
        raise KeyMaterialError(f"--sign-with {args.sign_with}: {exc}; give the .pub file to sign with "
                               f"ssh-keygen instead") from None
    request, raw, signature = make_request(
        args.agency, signer, age_recipients=args.age_recipient,
        signing_keys=[_public_key_line(k) for k in args.ssh_key], revoke=args.revoke,
        overlap_days=args.overlap_days, valid_to=args.valid_to, expires_in_days=args.expires_in_days)
    out, sig = write_request(Path(args.out), raw, signature)
    if signature is None:
        print(printable(f"wrote {out}: request {request.request_id} for {request.agency}, to be signed by "
                        f"{request.signer_fingerprint}, valid until {request.expires:%Y-%m-%dT%H:%M:%SZ}"))
        print(printable(f"sign it: ssh-keygen -Y sign -n {NAMESPACE} -f PRIVATE_KEY {out}   (writes {sig})"))
        print("then send both files to the hub operator")
        return EXIT_OK
    print(printable(f"wrote {out} and {sig}: request {request.request_id} for {request.agency}, signed by "
                    f"{request.signer_fingerprint}, valid until {request.expires:%Y-%m-%dT%H:%M:%SZ}"))
    print(printable(f"send both files to the hub operator; anyone can check them with ssh-keygen -Y verify "
                    f"-n {NAMESPACE}"))
    return EXIT_OK


def cmd_keys_accept(args) -> int:
    from borderx.agency_keys import accept_request
    from borderx.home import Home

    acceptance = accept_request(Home.resolve(args.home), Path(args.request),
                                signature_path=Path(args.signature) if args.signature else None)
    print(printable_lines(acceptance.describe()), end="")
    print("run `borderx check`; the next run records the config change as well")
    return EXIT_OK
