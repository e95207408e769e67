"""The top-level parser, and running the command it picked with the exit codes and messages of every command."""

from __future__ import annotations

import argparse
import logging
import sys

from borderx import __version__
from borderx.cli import (airflow_cmds, audit_cmds, config_cmds, deliveries_cmds, due_cmds, intake_cmds, keys_cmds,
                         recipient_cmds, run_cmds, sign_cmds)
from borderx.cli.common import EXIT_FAILED, EXIT_USAGE, _extra_of, _missing_extras, _needs_message, _usage
from borderx.errors import BorderxError, ConfigError
from borderx.text import PrintableFormatter, printable

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
  borderx airflow --home demo-home       the hub under Airflow on this machine; drop files, watch the UI
  borderx s3-intake setup --home /srv/borderx   announce agencies' S3 uploads to the intake queues
  borderx check --home /srv/borderx      check config/ and expectations/
  borderx run --once --home /srv/borderx process what waits in the intake folders
  borderx keys generate ZA-DHA --out keys/ZA-DHA
  borderx keys list --home /srv/borderx  every agency key with its status
  borderx keys request NA-MHAISS --ssh-key new.pub --sign-with current_key --out req.json   (the agency)
  borderx keys accept req.json --home /srv/borderx   verify an agency's signed key request and apply it
  borderx fetch --recipient NA-MHAISS --identity age.key --hub-key allowed_signers --out inbox
  borderx due --home /srv/borderx        which extracts are due, received or late
  borderx audit verify --home /srv/borderx
  borderx audit report --from 2026-11-01 --to 2026-11-30 --format html --out report.html
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="borderx", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"borderx {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress (-v INFO, -vv DEBUG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Registered in the order `borderx --help` lists the commands.
    for group in (config_cmds, keys_cmds, recipient_cmds, run_cmds, due_cmds, airflow_cmds, intake_cmds,
                  deliveries_cmds, audit_cmds, sign_cmds):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    # Log lines name files as agencies named them: shown as text, never as terminal control.
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    logging.captureWarnings(True)
    if not getattr(args, "func", None):
        return _usage(parser)
    command = getattr(args, "command_name", f"borderx {args.command}")
    missing = _missing_extras(getattr(args, "extras", ()))
    if missing:
        print(_needs_message(command, missing), file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:
        # A part of the hub reached from a command not marked as needing it: still one line, not a traceback.
        extra = _extra_of(exc.name)
        if extra is None:
            raise
        print(_needs_message(command, [extra]), file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        for problem in exc.problems:
            print(printable(problem), file=sys.stderr)
        print("nothing was run: fix the configuration first (borderx check)", file=sys.stderr)
        return EXIT_FAILED
    except BorderxError as exc:
        print(printable(f"borderx: {exc}"), file=sys.stderr)
        return EXIT_FAILED
