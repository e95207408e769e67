"""The light client's commands import nothing of the hub, even where the hub is installed: they stay quick to
start, and work from the base install (tests/e2e/test_light_client.py installs it alone)."""

from __future__ import annotations

import subprocess
import sys

HUB_MODULES = ("airflow", "great_expectations", "pandas", "pyarrow", "numpy", "moto", "sqlalchemy")
# What `fetch`, `verify`, `decrypt`, `keys generate`, `keys request`, `sign` and `audit verify` import when run.
LIGHT_MODULES = ("borderx.cli", "borderx.recipient", "borderx.audit.verify_cmd", "borderx.agency_keys",
                 "borderx.keys", "borderx.intake.signatures", "borderx.home", "borderx.config.loader")


def test_light_commands_import_no_part_of_the_hub():
    script = (f"import sys\nfor name in {LIGHT_MODULES!r}:\n    __import__(name)\n"
              "from borderx.cli import build_parser\nbuild_parser()\n"
              f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & set({HUB_MODULES!r})))")
    loaded = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"

