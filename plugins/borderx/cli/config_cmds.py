"""`borderx check`: the deployment's configuration, one line per problem."""

from __future__ import annotations

import sys

from borderx.cli.common import EXIT_FAILED, EXIT_OK, _home_arg
from borderx.text import printable


def register(sub) -> None:
    p = sub.add_parser("check", help="check config/ and expectations/; one line per problem",
                       description="Checks every file in config/ and the expectation suites they name. "
                       "Prints one line per problem as `file: field: what is wrong` and exits 1 if there is any.")
    _home_arg(p)
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    from borderx.config.loader import check_config
    from borderx.home import Home

    home = Home.resolve(args.home)
    problems = check_config(home.root)
    for problem in problems:
        print(printable(problem))
    if problems:
        print(printable(f"{len(problems)} problem(s) in {home.config}"), file=sys.stderr)
        return EXIT_FAILED
    print(printable(f"ok: {home.config}"))
    return EXIT_OK
