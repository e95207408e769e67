"""`borderx sign FILE --key KEY`: a provider signs its extract before dropping it, as `ssh-keygen -Y sign -n
borderx-extract -f KEY FILE` would (the signatures are byte for byte the same)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from borderx.cli.common import EXIT_FAILED, EXIT_OK
from borderx.text import printable

EPILOG = """\
example:
  borderx sign flows_2026-11.csv --key ~/.ssh/za-dha_ed25519
  then drop flows_2026-11.csv and flows_2026-11.csv.sig into the agency's intake folder together
"""


def register(sub) -> None:
    p = sub.add_parser("sign", help="sign an extract with the agency's SSH key (writes FILE.sig)",
                       description="Writes FILE.sig, an SSH signature of FILE (namespace borderx-extract) by the "
                       "agency's ed25519 key, to drop beside FILE. The hub checks it against the agency's signing "
                       "keys in config/agencies/. Never overwrites an existing FILE.sig.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="the extract to sign")
    p.add_argument("--key", metavar="KEY", required=True, help="the agency's OpenSSH ed25519 private key")
    p.add_argument("--ask-passphrase", action="store_true", help="the key is protected: ask for its passphrase")
    p.set_defaults(func=cmd_sign)


def cmd_sign(args) -> int:
    from borderx.crypto import sshsig
    from borderx.intake.signatures import NAMESPACE, SUFFIX

    source, key_file = Path(args.file), Path(args.key)
    target = source.with_name(source.name + SUFFIX)
    try:
        pem = key_file.read_bytes()
    except OSError as exc:
        print(printable(f"borderx sign: {key_file}: {exc.strerror}"), file=sys.stderr)
        return EXIT_FAILED
    password = getpass.getpass(f"passphrase for {key_file}: ").encode() if args.ask_passphrase else None
    try:
        key = sshsig.load_private_key(pem, password)
    except ValueError as exc:
        print(printable(f"borderx sign: {key_file}: {exc}"), file=sys.stderr)
        return EXIT_FAILED
    try:
        with open(source, "rb") as fh:
            signature = sshsig.sign_stream(key, fh, NAMESPACE)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        print(printable(f"borderx sign: {exc.filename}: {exc.strerror}"), file=sys.stderr)
        return EXIT_FAILED
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(signature)
    print(printable(f"{target}: signed by {sshsig.fingerprint(sshsig.public_key_line(key))}"))
    return EXIT_OK
