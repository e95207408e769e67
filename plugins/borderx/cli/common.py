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


# The optional parts of an install, each known by modules only it brings, and how a message names it.
EXTRAS = {
    "hub": (("airflow", "great_expectations", "pyarrow"), "the hub"),
    "demo": (("moto",), "a local S3 endpoint"),
}


def _needs(parser: argparse.ArgumentParser, *extras: str) -> None:
    """Marks a command that runs only where these extras are installed (the base install is the light client)."""
    parser.set_defaults(extras=extras, command_name=parser.prog)


def _missing_extras(extras) -> list[str]:
    import importlib.util

    return [extra for extra in extras if any(importlib.util.find_spec(m) is None for m in EXTRAS[extra][0])]


def _extra_of(module: str | None) -> str | None:
    top = (module or "").partition(".")[0]
    return next((extra for extra, (modules, _) in EXTRAS.items() if top in modules), None)


def _needs_message(command: str, extras) -> str:
    what = " and ".join(EXTRAS[extra][1] for extra in extras)
    return f"{command} needs {what}: pip install 'borderx[{','.join(extras)}]'"
