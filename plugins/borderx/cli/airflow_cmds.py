"""`borderx airflow`: the hub under a real Airflow on this machine, until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from borderx.cli.common import EXIT_FAILED, EXIT_OK, _needs
from borderx.text import printable

DESCRIPTION = """\
Runs `airflow standalone` (scheduler, triggerer, DAG processor and API server, on SQLite, with the
LocalExecutor) on this project's dags/ and plugins/, for one deployment home. A home that does not
exist yet is made with the demo's set-up: sample agencies, keys, agreements and empty intake folders.

It also starts a local S3 endpoint on 127.0.0.1 (unless --s3-endpoint is given), keeps Airflow's own
files under HOME/airflow (AIRFLOW_HOME, the database, standalone.log), turns Airflow's example DAGs
off, creates the pool borderx_uploads and unpauses the borderx DAGs. When everything is up it prints
the UI address, where the login is, and the intake folders to drop extracts into: a file that lands
there (copied in, or better written under a .part name and renamed) is validated, published and
audited within seconds. Ctrl-C stops everything it started.
"""

EPILOG = """\
examples:
  borderx airflow                                   demo home ./demo-home, UI on http://127.0.0.1:8080
  borderx airflow --home /srv/borderx --port 8793   an existing home, another port
  borderx airflow --s3-endpoint http://127.0.0.1:9000 --bucket exchange   a MinIO of your own

login: user admin; Airflow generates its password on the first start and keeps it in
HOME/airflow/simple_auth_manager_passwords.json.generated
"""


def register(sub) -> None:
    import argparse

    p = sub.add_parser("airflow", help="run the hub under Airflow standalone on this machine (Ctrl-C stops)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", metavar="DIR", default=None,
                   help="deployment home (env BORDERX_HOME; default ./demo-home, made with the demo's set-up)")
    p.add_argument("--port", type=int, default=8080, metavar="N", help="port of the Airflow UI and API (default 8080)")
    p.add_argument("--s3-endpoint", metavar="URL", help="use this S3 endpoint instead of starting a local one")
    p.add_argument("--bucket", help="bucket (env BORDERX_BUCKET; else settings)")
    p.set_defaults(func=cmd_airflow)
    _needs(p, "hub", "demo")


def cmd_airflow(args) -> int:
    from borderx.dev import stack as airflow_stack
    from borderx.dev.demo import DEFAULT_HOME

    def say(line: str) -> None:
        print(printable(line), flush=True)

    if args.bucket:
        os.environ["BORDERX_BUCKET"] = args.bucket
    root = Path(args.home or os.environ.get("BORDERX_HOME") or DEFAULT_HOME)
    home, made = airflow_stack.ensure_home(root)
    say(f"{'made a demo home in' if made else 'home:'} {home.root}")
    # SIGTERM (a service manager, `kill`) ends the command as Ctrl-C does: through the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: _interrupt())
    try:
        with airflow_stack.running(home, port=args.port, s3_endpoint=args.s3_endpoint, on_progress=say) as stack:
            _print_ready(stack, airflow_stack.intake_folders(home), say)
            while True:
                time.sleep(2)
                if stack.process.poll() is not None:
                    say(f"airflow standalone exited with {stack.process.returncode}; see {stack.paths.log}")
                    return EXIT_FAILED
                stack.remember_descendants()
    except KeyboardInterrupt:
        say("stopped: everything this command started is down")
        return EXIT_OK
    except (RuntimeError, TimeoutError) as exc:
        print(printable(f"borderx airflow: {exc}"), file=sys.stderr)
        return EXIT_FAILED


def _interrupt() -> None:
    raise KeyboardInterrupt


def _print_ready(stack, folders: list[Path], say) -> None:
    say("")
    say(f"Airflow UI:   {stack.url}   (DAGs: borderx_exchange runs on each dropped file)")
    say(f"login:        admin, password in {stack.paths.password_file}")
    say(f"S3 endpoint:  {stack.s3_endpoint}")
    say(f"Airflow log:  {stack.paths.log}")
    say("drop extracts into:")
    for folder in folders:
        say(f"  {folder}")
    say("quarantined files and their reports land in " + str(stack.paths.home.quarantine))
    say("Ctrl-C stops Airflow" + (" and the local S3 endpoint" if stack.started_s3 else ""))
