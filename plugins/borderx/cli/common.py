"""Exit codes and the arguments and help layout the command groups share."""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _home_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", metavar="DIR", help="deployment home (env BORDERX_HOME, default .)")


def _s3_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-endpoint", metavar="URL", help="S3 endpoint (env BORDERX_S3_ENDPOINT_URL; else settings)")
    parser.add_argument("--bucket", help="bucket (env BORDERX_BUCKET; else settings)")


def _wrap(text: str) -> str:
    # These commands keep their examples as written, so their description is wrapped here instead.
    import textwrap

    return textwrap.fill(text, 100)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE
