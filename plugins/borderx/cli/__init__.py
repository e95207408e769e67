"""The `borderx` command: a thin front door onto the same functions the Airflow tasks call.

:mod:`.parser` builds the top-level parser and runs the command picked; each ``*_cmds`` module adds one
group of commands (check, keys, fetch/verify/decrypt, run/demo, deliveries/access, audit) and holds
their ``cmd_*`` functions; :mod:`.common` has the exit codes and the arguments they share.
"""

from __future__ import annotations

from borderx.cli.audit_cmds import cmd_audit_report, cmd_audit_show, cmd_audit_verify
from borderx.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from borderx.cli.config_cmds import cmd_check
from borderx.cli.deliveries_cmds import cmd_access_policy, cmd_deliveries_list, cmd_deliveries_revoke
from borderx.cli.keys_cmds import cmd_keys_accept, cmd_keys_generate, cmd_keys_list, cmd_keys_request
from borderx.cli.parser import DESCRIPTION, EPILOG, build_parser, main
from borderx.cli.recipient_cmds import cmd_decrypt, cmd_fetch, cmd_verify
from borderx.cli.run_cmds import cmd_demo, cmd_run

__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "cmd_access_policy",
    "cmd_audit_report",
    "cmd_audit_show",
    "cmd_audit_verify",
    "cmd_check",
    "cmd_decrypt",
    "cmd_deliveries_list",
    "cmd_deliveries_revoke",
    "cmd_demo",
    "cmd_fetch",
    "cmd_keys_accept",
    "cmd_keys_generate",
    "cmd_keys_list",
    "cmd_keys_request",
    "cmd_run",
    "cmd_verify",
    "main",
]
